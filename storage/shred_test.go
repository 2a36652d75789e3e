package storage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// newMarker returns a random marker that no file holds by chance.
func newMarker(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "shred-marker-" + hex.EncodeToString(b)
}

// needles are marker and its base64 encodings (standard and URL alphabets) at
// each of the three alignments it can have inside a longer encoded value, the
// characters that depend on the neighbouring bytes trimmed.
func needles(marker string) [][]byte {
	out := [][]byte{[]byte(marker)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for pad := range 3 {
			e := enc.EncodeToString(append(bytes.Repeat([]byte{0}, pad), marker...))
			e = strings.TrimRight(e, "=")
			skip := []int{0, 2, 3}[pad] // characters mixing the padding bytes in
			out = append(out, []byte(e[skip:len(e)-2]))
		}
	}
	return out
}

// filesHolding returns the files under dir holding any of the needles.
func filesHolding(t *testing.T, dir string, needles [][]byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a shred's temporary file, renamed or removed while we walked
		}
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(data, n) {
				rel, _ := filepath.Rel(dir, p)
				hits = append(hits, rel)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// markRecordThenRemoveIt writes an idempotency record whose key and request
// hash hold marker (a keyed CreateBooking), snapshots every store so the
// marker is in a snapshot too, then has a Compact past the TTL remove the
// record: the live state no longer holds the marker, the data dirs still do
// (log entry, snapshot, free pages).
func markRecordThenRemoveIt(t *testing.T, stores []*storage.Store, marker string) {
	t.Helper()
	leader := stores[0]
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	mustPropose(t, leader, st.WithKey(st.CreateBooking(st.Booking("b1", "p", time.Hour, 2*time.Hour, 2*time.Hour)), marker, marker+"-hash"))
	waitSameDigest(t, stores)
	for _, s := range stores {
		if err := s.Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
	}
	// The record's time is its entry time (the wall clock here): compact as if
	// two hours later, with a one-hour TTL.
	res := mustPropose(t, leader, &bookingv1.Command{ProposedAtMs: time.Now().Add(2 * time.Hour).UnixMilli(),
		Op: &bookingv1.Command_Compact{Compact: &bookingv1.Compact{IdempotencyTtlMs: time.Hour.Milliseconds(), MaxRemovals: 100}}})
	if res.GetRemoved() != 1 {
		t.Fatalf("Compact removed %d records, want the marked one", res.GetRemoved())
	}
	mustPropose(t, leader, st.CreateBooking(st.Booking("b2", "p", 3*time.Hour, 4*time.Hour, 4*time.Hour)))
	waitSameDigest(t, stores)
	for _, s := range stores {
		d, err := storage.DumpStore(s)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(fmt.Sprint(d), marker) {
			t.Fatal("the FSM still holds the marked record after Compact")
		}
		if hits := filesHolding(t, storage.DataDir(s), needles(marker)); len(hits) == 0 {
			t.Fatal("no file holds the marker before the shred: the test could not fail")
		}
	}
}

// TestShred_NoByteLeftInDataDirs: after ShredNow on every node of a 3-node
// group, no file of any data dir (raft.db, fsm.db, snapshots/**) holds a
// removed record's marker, plain or base64, while before they did; the group
// keeps its state and keeps working, and a restarted node opens its rewritten
// files.
func TestShred_NoByteLeftInDataDirs(t *testing.T) {
	cfg := storage.LocalConfig()
	cfg.CompactInterval = -1 // only the test's Compact
	cfg.ShredWithin = time.Hour
	stores, _ := st.MustOpenInmemClusterWith(t, 3, cfg)
	marker := newMarker(t)
	markRecordThenRemoveIt(t, stores, marker)
	want, err := stores[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, s := range stores {
		if err := s.ShredNow(ctx); err != nil {
			t.Fatalf("ShredNow on %s: %v", s.Stats().LeaderID, err)
		}
	}
	for i, s := range stores {
		dir := storage.DataDir(s)
		if hits := filesHolding(t, dir, needles(marker)); len(hits) > 0 {
			t.Errorf("node %d: after the shred the marker is still in %v", i, hits)
		}
		snaps, err := os.ReadDir(filepath.Join(dir, storage.SnapshotsDir, "snapshots"))
		if err != nil || len(snaps) != 1 {
			t.Errorf("node %d: %d snapshot dirs after the shred (%v), want 1", i, len(snaps), err)
		}
		if got, err := s.Digest(); err != nil || !bytes.Equal(got, want) {
			t.Errorf("node %d: digest changed by the shred (%v)", i, err)
		}
		if _, err := s.Booking(ctx, "b2"); err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	// The group still takes writes, every node applies them.
	mustPropose(t, stores[0], st.CreateBooking(st.Booking("b3", "p", 5*time.Hour, 6*time.Hour, 6*time.Hour)))
	waitSameDigest(t, stores)
	// Nothing new since the last shred: a second one still succeeds.
	if err := stores[1].ShredNow(ctx); err != nil {
		t.Fatalf("second ShredNow: %v", err)
	}
}

// TestShred_RestartAfterShred: a single node shreds, closes and reopens on its
// rewritten fsm.db and raft.db with its state, and takes writes.
func TestShred_RestartAfterShred(t *testing.T) {
	cfg := st.Config(t)
	cfg.CompactInterval = -1
	s := st.MustOpen(t, cfg)
	marker := newMarker(t)
	markRecordThenRemoveIt(t, []*storage.Store{s}, marker)
	want, _ := s.Digest()
	if err := s.ShredNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	if hits := filesHolding(t, cfg.DataDir, needles(marker)); len(hits) > 0 {
		t.Fatalf("after the shred the marker is still in %v", hits)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := st.MustOpen(t, cfg)
	if got, _ := s2.Digest(); !bytes.Equal(got, want) {
		t.Fatal("state differs after reopening the rewritten files")
	}
	mustPropose(t, s2, st.CreateBooking(st.Booking("b3", "p", 5*time.Hour, 6*time.Hour, 6*time.Hour)))
	if _, err := s2.Booking(context.Background(), "b3"); err != nil {
		t.Fatal(err)
	}
}

// TestShred_LoopAfterErasure: the shred loop does nothing while no erasure is
// applied, and shreds within ShredWithin once one is.
func TestShred_LoopAfterErasure(t *testing.T) {
	cfg := st.Config(t)
	cfg.CompactInterval = -1
	cfg.ShredWithin = 400 * time.Millisecond
	s := st.MustOpen(t, cfg)
	marker := newMarker(t)
	markRecordThenRemoveIt(t, []*storage.Store{s}, marker)
	time.Sleep(2 * cfg.ShredWithin)
	if hits := filesHolding(t, cfg.DataDir, needles(marker)); len(hits) == 0 {
		t.Fatal("shredded without an erasure")
	}
	storage.NoteErasureApplied(s)
	start := time.Now()
	for {
		hits := filesHolding(t, cfg.DataDir, needles(marker))
		if len(hits) == 0 {
			break
		}
		if time.Since(start) > cfg.ShredWithin+5*time.Second {
			t.Fatalf("%s after the erasure the marker is still in %v", time.Since(start), hits)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "shred.pending")); err == nil {
		time.Sleep(100 * time.Millisecond) // removed right after the shred returns
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "shred.pending")); err == nil {
			t.Fatal("shred.pending left after the shred")
		}
	}
	t.Logf("shredded %s after the erasure", time.Since(start).Round(time.Millisecond))
}

// TestShred_ConfigValidate: ShredWithin must be positive; Open fills a zero one.
func TestShred_ConfigValidate(t *testing.T) {
	if got := storage.DefaultConfig().ShredWithin; got != time.Minute {
		t.Fatalf("DefaultConfig ShredWithin %s", got)
	}
	if got := storage.LocalConfig().ShredWithin; got != 3*time.Second {
		t.Fatalf("LocalConfig ShredWithin %s", got)
	}
	c := storage.LocalConfig()
	c.NodeID, c.DataDir, c.RaftAddr = "n", "/tmp/x", "127.0.0.1:0"
	for _, d := range []time.Duration{0, -time.Second} {
		c.ShredWithin = d
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ShredWithin") {
			t.Fatalf("ShredWithin %s: Validate = %v", d, err)
		}
	}
}

// TestShred_PendingAtOpen: a shred recorded as pending (shred.pending, left by
// a crash between an erasure and its shred) runs after the next Open.
func TestShred_PendingAtOpen(t *testing.T) {
	cfg := st.Config(t)
	cfg.CompactInterval = -1
	cfg.ShredWithin = 400 * time.Millisecond
	s := st.MustOpen(t, cfg)
	marker := newMarker(t)
	markRecordThenRemoveIt(t, []*storage.Store{s}, marker)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pending := filepath.Join(cfg.DataDir, "shred.pending")
	if err := os.WriteFile(pending, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if hits := filesHolding(t, cfg.DataDir, needles(marker)); len(hits) == 0 {
		t.Fatal("no file holds the marker before reopening")
	}
	st.MustOpen(t, cfg)
	deadline := time.Now().Add(cfg.ShredWithin + 5*time.Second)
	for {
		_, err := os.Stat(pending)
		hits := filesHolding(t, cfg.DataDir, needles(marker))
		if len(hits) == 0 && os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after reopening: marker in %v, shred.pending: %v", hits, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShred_UnderLoad: shreds on every node while proposals and reads run
// lose no acknowledged write, fail no read, and leave equal replicas.
func TestShred_UnderLoad(t *testing.T) {
	cfg := storage.LocalConfig()
	cfg.CompactInterval = -1
	cfg.ShredWithin = time.Hour
	stores, _ := st.MustOpenInmemClusterWith(t, 3, cfg)
	st.NewRouter(stores...)
	ctx := context.Background()
	mustPropose(t, stores[0], st.CreateProvider(st.Provider("p")))
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		acked  []string
		errs   []error
		stop   = make(chan struct{})
		writer = func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				off := time.Duration(w*100000+i) * time.Hour
				s := stores[i%len(stores)]
				// Keyed, so that a write whose leader lost leadership mid-commit
				// (under -race on a loaded 2-core CI machine an election happens)
				// is retried as a client must: same key, at most once applied.
				cmd := st.WithKey(st.CreateBooking(st.Booking(id, "p", off, off+min30, off+min30)), "k-"+id, "h")
				_, err := s.Propose(ctx, cmd)
				for try := 0; try < 20 && errors.Is(err, storage.ErrNotLeader); try++ {
					time.Sleep(50 * time.Millisecond)
					_, err = s.Propose(ctx, cmd)
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("propose %s: %w", id, err))
				} else {
					acked = append(acked, id)
				}
				mu.Unlock()
				if _, err := s.Provider(ctx, "p"); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("read: %w", err))
					mu.Unlock()
				}
			}
		}
	)
	for w := range 4 {
		wg.Add(1)
		go writer(w)
	}
	for round := range 3 {
		for i, s := range stores {
			if err := s.ShredNow(ctx); err != nil {
				t.Errorf("round %d node %d: ShredNow: %v", round, i, err)
			}
		}
	}
	close(stop)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	waitSameDigest(t, stores)
	for _, s := range stores {
		for _, id := range acked {
			if _, err := s.Booking(ctx, id); err != nil {
				t.Fatalf("acknowledged booking lost after shreds: %v", err)
			}
		}
	}
	t.Logf("%d writes acknowledged during 9 shreds", len(acked))
}

// TestShred_ErasureRecordsAtOpen: an Open whose FSM holds more Erasure records
// than the last complete shred saw (shred.done) shreds, even without
// shred.pending (an erasure applied right before a crash, or received in a
// snapshot), and records the count it covered.
func TestShred_ErasureRecordsAtOpen(t *testing.T) {
	cfg := st.Config(t)
	cfg.CompactInterval = -1
	cfg.ShredWithin = 400 * time.Millisecond
	s := st.MustOpen(t, cfg)
	marker := newMarker(t)
	markRecordThenRemoveIt(t, []*storage.Store{s}, marker)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(cfg.DataDir, storage.FSMFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("erasures"))
		if err != nil {
			return err
		}
		return b.Put([]byte("client1"), []byte{})
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	st.MustOpen(t, cfg)
	done := filepath.Join(cfg.DataDir, "shred.done")
	deadline := time.Now().Add(cfg.ShredWithin + 5*time.Second)
	for {
		raw, _ := os.ReadFile(done)
		hits := filesHolding(t, cfg.DataDir, needles(marker))
		if len(hits) == 0 && string(raw) == "1\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after reopening: marker in %v, shred.done %q", hits, raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
