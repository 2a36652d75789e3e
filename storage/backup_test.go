package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
	bolt "go.etcd.io/bbolt"
)

// fillBookings creates providers and n bookings on s (64 proposers, so batches
// form), each client client1 and an hour apart per provider.
func fillBookings(t testing.TB, s *storage.Store, n int) []string {
	t.Helper()
	ctx := context.Background()
	const providers = 100
	for i := range providers {
		if _, err := s.Propose(ctx, st.CreateProvider(st.Provider(fmt.Sprintf("p%d", i)))); err != nil {
			t.Fatal(err)
		}
	}
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				start := time.Duration(i/providers) * time.Hour
				id := fmt.Sprintf("b%07d", i)
				ids[i] = id
				if _, err := s.Propose(ctx, st.CreateBooking(st.Booking(id, fmt.Sprintf("p%d", i%providers), start, start+30*time.Minute, start+40*time.Minute))); err != nil {
					errs <- fmt.Errorf("booking %s: %w", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

// TestBackup_RestoreSeedsANewGroup: a backup of a store holds every booking
// acknowledged before it; a corrupted or truncated copy is refused; restored
// into an empty data dir, the next Open founds a new single-voter group (a
// new cluster id, never the old one) holding them, which accepts writes; a
// non-empty data dir is refused. With BARBERPRO_BACKUP_BOOKINGS=100000 it is
// the measurement of docs/ARCHITECTURE.md "Backups":
//
//	BARBERPRO_BACKUP_BOOKINGS=100000 go test ./storage/ -run TestBackup_RestoreSeedsANewGroup -v
func TestBackup_RestoreSeedsANewGroup(t *testing.T) {
	n := 300
	if v := os.Getenv("BARBERPRO_BACKUP_BOOKINGS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	cfg := st.Config(t)
	cfg.Jurisdiction = "ar"
	s := st.MustOpen(t, cfg)
	t0 := time.Now()
	ids := fillBookings(t, s, n)
	t.Logf("filled %d bookings in %s", n, time.Since(t0).Round(time.Millisecond))
	deadline := time.Now().Add(st.ReadyTimeout)
	for s.ClusterID() == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	oldID := s.ClusterID()

	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "ar.bpbackup")
	t1 := time.Now()
	h, err := s.BackupToFile(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(t1)
	fi, _ := os.Stat(file)
	t.Logf("backup of %d bookings: %d bytes (%.1f MiB, fsm.db copy %d bytes) in %s; header %+v",
		n, fi.Size(), float64(fi.Size())/(1<<20), h.BodyBytes, took.Round(time.Millisecond), h)
	if h.ClusterID != oldID || h.Jurisdiction != "ar" || h.AppliedIndex == 0 || h.Format != storage.BackupFormat {
		t.Fatalf("header %+v, cluster id %s", h, oldID)
	}
	if got, err := storage.VerifyBackupFile(file); err != nil || got.AppliedIndex != h.AppliedIndex {
		t.Fatalf("verify: %+v %v", got, err)
	}

	// A flipped byte and a truncated copy are refused.
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)/2] ^= 0x40
	os.WriteFile(bad, flipped, 0o600)
	if _, err := storage.VerifyBackupFile(bad); !errors.Is(err, storage.ErrBadBackup) {
		t.Fatalf("a flipped byte: %v", err)
	}
	if _, err := storage.RestoreBackup(bad, t.TempDir(), storage.RestoreOptions{Jurisdiction: "ar"}); !errors.Is(err, storage.ErrBadBackup) {
		t.Fatalf("restore of a flipped byte: %v", err)
	}
	os.WriteFile(bad, raw[:len(raw)-10], 0o600)
	if _, err := storage.VerifyBackupFile(bad); !errors.Is(err, storage.ErrBadBackup) {
		t.Fatalf("a truncated copy: %v", err)
	}
	if _, err := storage.RestoreBackup(file, cfg.DataDir, storage.RestoreOptions{Jurisdiction: "ar"}); err == nil {
		t.Fatal("restore into a data dir in use was accepted")
	}

	// Restore and open: a new group.
	dir := filepath.Join(t.TempDir(), "restored")
	t2 := time.Now()
	res, err := storage.RestoreBackup(file, dir, storage.RestoreOptions{Jurisdiction: "ar"})
	if err != nil {
		t.Fatal(err)
	}
	// The new group's id is there before the node starts: it gossips it and
	// refuses the old group's Raft connections from its first second.
	id, err := storage.ReadIdentity(dir)
	if err != nil || !id.HasState || id.ClusterID == "" || id.ClusterID == oldID || id.ClusterID != res.NewClusterID {
		t.Fatalf("identity of a restored dir: %+v %v (want HasState and the new cluster id %s)", id, err, res.NewClusterID)
	}
	rcfg := st.Config(t)
	rcfg.NodeID, rcfg.DataDir, rcfg.Bootstrap, rcfg.Jurisdiction = "restored1", dir, false, "ar"
	r := st.MustOpen(t, rcfg)
	st.MustWaitLeader(t, r)
	for r.ClusterID() == "" {
		if time.Since(t2) > st.ReadyTimeout {
			t.Fatal("the restored group got no cluster id")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("restore of %d bookings (verify, write, open, elect, new cluster id): %s", n, time.Since(t2).Round(time.Millisecond))
	if r.ClusterID() == oldID {
		t.Fatalf("the restored group has the old cluster id %s", oldID)
	}
	if from, ok := r.RestoredFrom(); !ok || from.ClusterID != oldID || from.AppliedIndex != h.AppliedIndex {
		t.Fatalf("restored_from: %+v %v", from, ok)
	}
	if _, err := os.Stat(filepath.Join(dir, storage.RestoredMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the restore marker is still there: %v", err)
	}
	if err := r.Found(); !errors.Is(err, storage.ErrAlreadyFounded) {
		t.Fatalf("Found on a restored group: %v", err)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		if b, err := r.Booking(ctx, ids[i]); err != nil || b.GetId() != ids[i] {
			t.Fatalf("booking %s after restore: %v %v", ids[i], b, err)
		}
	}
	start := time.Duration(n/100+10) * time.Hour
	if _, err := r.Propose(ctx, st.CreateBooking(st.Booking("after", "p0", start, start+30*time.Minute, start+40*time.Minute))); err != nil {
		t.Fatalf("booking on the restored group: %v", err)
	}
	// A taken slot stays taken.
	if _, err := r.Propose(ctx, st.CreateBooking(st.Booking("clash", "p0", 0, 30*time.Minute, 40*time.Minute))); err == nil {
		t.Fatal("the restored group accepted a booking over an acknowledged one")
	}
}

// TestBackup_RestoredErasuresAreShredded: a backup of a store that holds an
// erasure restores into a data dir that is shredded at its first Open
// (shred.done written, no byte of a record removed before the backup in the
// new group's files). Whether the backup's free pages held such bytes depends
// on bbolt's page reuse; the test logs it (it did not in the runs so far, so
// the "no byte" check is the weaker half: the shred running is the point).
func TestBackup_RestoredErasuresAreShredded(t *testing.T) {
	cfg := st.Config(t)
	cfg.CompactInterval = -1
	cfg.ShredWithin = time.Hour // no shred before the backup
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
	s = st.MustOpen(t, cfg)
	file := filepath.Join(t.TempDir(), "b.bpbackup")
	if _, err := s.BackupToFile(context.Background(), file); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(file)
	inBackup := false
	for _, n := range needles(marker) {
		inBackup = inBackup || bytes.Contains(raw, n)
	}
	t.Logf("the backup file holds bytes of the removed record in free pages: %v", inBackup)

	dir := filepath.Join(t.TempDir(), "restored")
	kekPath, _ := newKEK(t) // the backup holds an erasure: a restore needs the ledger
	if _, err := storage.RestoreBackup(file, dir, storage.RestoreOptions{KEKFile: kekPath}); err != nil {
		t.Fatal(err)
	}
	rcfg := st.Config(t)
	rcfg.NodeID, rcfg.DataDir, rcfg.Bootstrap, rcfg.CompactInterval = "restored1", dir, false, -1
	rcfg.ShredWithin = 400 * time.Millisecond
	st.MustOpen(t, rcfg)
	deadline := time.Now().Add(rcfg.ShredWithin + 10*time.Second)
	for {
		done, _ := os.ReadFile(filepath.Join(dir, "shred.done"))
		hits := filesHolding(t, dir, needles(marker))
		if len(hits) == 0 && len(done) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored data dir: marker in %v, shred.done %q", hits, done)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBackup_RestoredNodeRestarts: a restored node closed after it founded
// the new group (marker gone) reopens as a member of that group — same
// cluster id, records kept — and never seeds again.
func TestBackup_RestoredNodeRestarts(t *testing.T) {
	cfg := st.Config(t)
	cfg.Jurisdiction = "ar"
	s := st.MustOpen(t, cfg)
	ids := fillBookings(t, s, 20)
	file := filepath.Join(t.TempDir(), "b.bpbackup")
	if _, err := s.BackupToFile(context.Background(), file); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := storage.RestoreBackup(file, dir, storage.RestoreOptions{Jurisdiction: "ar"}); err != nil {
		t.Fatal(err)
	}
	rcfg := st.Config(t)
	rcfg.NodeID, rcfg.DataDir, rcfg.Bootstrap, rcfg.Jurisdiction = "restored1", dir, false, "ar"
	r, err := storage.Open(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	st.MustWaitLeader(t, r)
	deadline := time.Now().Add(st.ReadyTimeout)
	for r.ClusterID() == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cid := r.ClusterID()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := st.MustOpen(t, rcfg)
	st.MustWaitLeader(t, r2)
	if r2.ClusterID() != cid || cid == "" {
		t.Fatalf("after a restart the cluster id is %q, was %q", r2.ClusterID(), cid)
	}
	if b, err := r2.Booking(context.Background(), ids[7]); err != nil || b.GetId() != ids[7] {
		t.Fatalf("booking after the restart: %v %v", b, err)
	}
}
