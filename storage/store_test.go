package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestStore_ConcurrentOverlappingProposals: 200 goroutines propose bookings of
// one provider that all contain the instant T0+30m (same slot, and different
// starts, durations and buffers). Exactly one may win.
func TestStore_ConcurrentOverlappingProposals(t *testing.T) {
	s := st.MustOpen(t, st.Config(t))
	mustPropose(t, s, st.CreateProvider(st.Provider("hot")))
	const n = 200
	var (
		wg                  sync.WaitGroup
		mu                  sync.Mutex
		ok, taken, other    int
		winner, otherErrors string
	)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b *bookingv1.Booking
			if i%2 == 0 {
				b = st.Booking(fmt.Sprintf("b%03d", i), "hot", 0, 45*time.Minute, 45*time.Minute) // the same slot
			} else {
				startOff := time.Duration(i%30) * time.Minute            // 0..29m
				end := 31*time.Minute + time.Duration(i%7)*5*time.Minute // 31..61m
				blocked := end + time.Duration(i%3)*10*time.Minute       // buffers 0..20m
				b = st.Booking(fmt.Sprintf("b%03d", i), "hot", startOff, end, blocked)
			}
			<-start
			res, err := s.Propose(context.Background(), st.CreateBooking(b))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
				winner = res.Booking.Id
			case errors.Is(err, storage.ErrSlotTaken):
				taken++
			default:
				other++
				otherErrors += err.Error() + "; "
			}
		}()
	}
	close(start)
	wg.Wait()
	if ok != 1 || taken != n-1 || other != 0 {
		t.Fatalf("ok=%d taken=%d other=%d (%s)", ok, taken, other, otherErrors)
	}
	got, err := s.ProviderBookings(context.Background(), "hot", st.T0.Add(-time.Hour), st.T0.Add(3*time.Hour))
	if err != nil || len(got) != 1 || got[0].Id != winner {
		t.Fatalf("ProviderBookings = %v, %v; winner %s", got, err, winner)
	}
	t.Logf("last batch size %d, applied index %d", s.Stats().LastBatchSize, s.Stats().AppliedIndex)
}

// TestStore_GroupCommitFormsBatches checks that concurrent proposals share
// Raft entries: far fewer entries than commands.
func TestStore_GroupCommitFormsBatches(t *testing.T) {
	cfg := st.Config(t)
	cfg.MaxInflight = 1
	s := st.MustOpen(t, cfg)
	mustPropose(t, s, st.CreateProvider(st.Provider("p")))
	before := s.Stats().LastLogIndex
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := time.Duration(i) * time.Hour
			_, err := s.Propose(context.Background(), st.CreateBooking(st.Booking(fmt.Sprint("b", i), "p", off, off+time.Minute, off+time.Minute)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	entries := s.Stats().LastLogIndex - before
	if entries >= n/2 {
		t.Fatalf("%d commands took %d raft entries; group commit did not batch", n, entries)
	}
	t.Logf("%d commands in %d raft entries", n, entries)
}

// TestStore_RestartKeepsState: state survives Close and reopen with
// Bootstrap still set, and committed entries are not applied twice.
func TestStore_RestartKeepsState(t *testing.T) {
	cfg := st.Config(t)
	s, err := storage.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.MustWaitLeader(t, s)
	mustPropose(t, s, st.CreateProvider(st.Provider("p")))
	mustPropose(t, s, st.CreateBooking(st.Booking("b1", "p", 0, min30, min30)))
	// A reschedule re-applied would bump the version again.
	mustPropose(t, s, st.RescheduleBooking("b1", hour, hour+min30, hour+min30))
	digest, _ := s.Digest()
	lastIndex := s.Stats().LastLogIndex
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s2 := st.MustOpen(t, cfg) // Bootstrap is still true: must resume, not re-bootstrap
	if err := s2.LinearizableRead(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s2.Stats().LastLogIndex; got <= lastIndex {
		t.Fatalf("last log index %d after restart, want > %d (resumed log plus new term's entry)", got, lastIndex)
	}
	conf := s2.Raft().GetConfiguration()
	if err := conf.Error(); err != nil || len(conf.Configuration().Servers) != 1 {
		t.Fatalf("configuration %v %v", conf.Configuration(), err)
	}
	// A new write is applied after raft's replay of the old log, so reading
	// after it would show any double application.
	_, err = s2.Propose(context.Background(), st.CreateBooking(st.Booking("b2", "p", hour, hour+min30, hour+min30)))
	if !errors.Is(err, storage.ErrSlotTaken) {
		t.Fatalf("slot after restart: %v", err)
	}
	b, err := s2.Booking(context.Background(), "b1")
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != 2 || b.StartMs != st.At(hour) {
		t.Fatalf("booking after restart %v: re-applied or lost", b)
	}
	if d, _ := s2.Digest(); !bytes.Equal(d, digest) {
		t.Fatal("digest changed across restart")
	}
}

// TestStore_RecoversEntriesTheFSMMissed simulates a crash between Raft
// committing entries and the FSM applying them: fsm.db is rolled back to an
// older copy while raft.db keeps the newer log. On reopen the node must
// re-apply exactly the missing entries before Ready.
func TestStore_RecoversEntriesTheFSMMissed(t *testing.T) {
	cfg := st.Config(t)
	s, err := storage.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.MustWaitLeader(t, s)
	mustPropose(t, s, st.CreateProvider(st.Provider("p")))
	mustPropose(t, s, st.CreateBooking(st.Booking("b1", "p", 0, min30, min30)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fsmPath := filepath.Join(cfg.DataDir, storage.FSMFile)
	old, err := os.ReadFile(fsmPath)
	if err != nil {
		t.Fatal(err)
	}

	s, err = storage.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.MustWaitLeader(t, s)
	mustPropose(t, s, st.CreateBooking(st.Booking("b2", "p", hour, hour+min30, hour+min30)))
	mustPropose(t, s, st.RescheduleBooking("b1", 2*hour, 2*hour+min30, 2*hour+min30))
	want, _ := s.Digest()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fsmPath, old, 0o600); err != nil {
		t.Fatal(err)
	}

	s = st.MustOpen(t, cfg)
	if got, _ := s.Digest(); !bytes.Equal(got, want) {
		t.Fatal("digest after recovery differs from before the crash")
	}
	b, err := s.Booking(context.Background(), "b1")
	if err != nil || b.Version != 2 || b.StartMs != st.At(2*hour) {
		t.Fatalf("b1 after recovery: %v %v", b, err)
	}
}

// TestStore_SnapshotRestore takes a Raft snapshot of a store and restores it
// into a fresh FSM that already holds other data: every record of every
// bucket, and the digest, must match.
func TestStore_SnapshotRestore(t *testing.T) {
	s := st.MustOpen(t, st.Config(t))
	for i := range 3 {
		p := fmt.Sprint("p", i)
		mustPropose(t, s, st.CreateProvider(st.Provider(p)))
		for j := range 10 {
			off := time.Duration(j) * hour
			cmd := st.WithKey(st.CreateBooking(st.Booking(fmt.Sprint(p, "-b", j), p, off, off+min30, off+min30+10*time.Minute)), fmt.Sprint(p, j), "h")
			mustPropose(t, s, cmd)
		}
		mustPropose(t, s, st.CancelBooking(p+"-b3"))
	}
	snap := s.Raft().Snapshot()
	if err := snap.Error(); err != nil {
		t.Fatal(err)
	}
	meta, rc, err := snap.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	f, err := storage.OpenTestFSM(filepath.Join(t.TempDir(), "fresh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Apply(1, mustMarshal(t, st.CreateProvider(st.Provider("stale"))))
	if err := f.Restore(rc); err != nil {
		t.Fatal(err)
	}
	want, err := storage.DumpStore(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Dump()
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for bucket, wm := range want {
		gm := got[bucket]
		if len(gm) != len(wm) {
			t.Errorf("bucket %s: %d records, want %d", bucket, len(gm), len(wm))
		}
		for k, v := range wm {
			records++
			if gm[k] != v {
				t.Errorf("bucket %s key %q differs", bucket, k)
			}
		}
	}
	if records < 3+30+30+27+30 {
		t.Fatalf("only %d records compared", records)
	}
	wd, _ := s.Digest()
	gd, _ := f.Digest()
	if !bytes.Equal(wd, gd) {
		t.Fatal("digest differs after restore")
	}
	if f.AppliedIndex() != s.Stats().AppliedIndex || meta.Index < f.AppliedIndex() {
		t.Fatalf("applied index %d, store %d, snapshot %d", f.AppliedIndex(), s.Stats().AppliedIndex, meta.Index)
	}
	// Garbage must not replace the db.
	if err := f.Restore(io.NopCloser(bytes.NewReader([]byte("not a bolt file")))); err == nil {
		t.Fatal("restore of garbage succeeded")
	}
	if gd2, _ := f.Digest(); !bytes.Equal(gd2, wd) {
		t.Fatal("failed restore changed the db")
	}
}

// TestStore_ThreeNodeReplication: a 3-voter in-memory group replicates every
// write; all replicas end with equal digests; followers refuse writes.
func TestStore_ThreeNodeReplication(t *testing.T) {
	stores := st.MustOpenCluster(t, 3)
	leader := stores[0]
	ctx := context.Background()
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	for j := range 20 {
		off := time.Duration(j) * hour
		mustPropose(t, leader, st.CreateBooking(st.Booking(fmt.Sprint("b", j), "p", off, off+min30, off+min30)))
	}
	mustPropose(t, leader, st.CancelBooking("b5"))
	if _, err := stores[1].Propose(ctx, st.CancelBooking("b6")); !errors.Is(err, storage.ErrNotLeader) {
		t.Fatalf("follower Propose: %v", err)
	}
	if err := stores[1].LinearizableRead(ctx); !errors.Is(err, storage.ErrNotLeader) {
		t.Fatalf("follower LinearizableRead: %v", err)
	}
	if err := leader.LinearizableRead(ctx); err != nil {
		t.Fatal(err)
	}
	want, _ := leader.Digest()
	target := leader.Stats().AppliedIndex
	deadline := time.Now().Add(5 * time.Second)
	for _, f := range stores[1:] {
		for f.Stats().AppliedIndex < target {
			if time.Now().After(deadline) {
				t.Fatalf("follower stuck at %+v, leader applied %d", f.Stats(), target)
			}
			time.Sleep(5 * time.Millisecond)
		}
		got, _ := f.Digest()
		if !bytes.Equal(got, want) {
			t.Fatalf("follower digest differs")
		}
		b, err := f.Booking(ctx, "b5")
		if err != nil || b.Status != bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
			t.Fatalf("follower b5 = %v, %v", b, err)
		}
	}
}

// TestStore_ClosedAndCanceled covers ErrClosed and context handling.
func TestStore_ClosedAndCanceled(t *testing.T) {
	s, err := storage.Open(st.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	st.MustWaitLeader(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Propose(ctx, st.CreateProvider(st.Provider("p"))); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Propose: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	if _, err := s.Propose(bg, st.CreateProvider(st.Provider("p"))); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Propose after Close: %v", err)
	}
	if _, err := s.Booking(bg, "x"); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Booking after Close: %v", err)
	}
	if err := s.Ready(); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("Ready after Close: %v", err)
	}
}

// TestConfig_Validate checks the config presets validate and bad ones do not.
func TestConfig_Validate(t *testing.T) {
	base := storage.LocalConfig()
	base.NodeID, base.DataDir, base.RaftAddr = "n", "/tmp/x", "127.0.0.1:0"
	if err := base.Validate(); err != nil {
		t.Fatalf("LocalConfig: %v", err)
	}
	d := storage.DefaultConfig()
	d.NodeID, d.DataDir, d.RaftAddr = "n", "/tmp/x", "127.0.0.1:0"
	if err := d.Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	tests := []struct {
		name string
		mod  func(c *storage.Config)
	}{
		{"no node id", func(c *storage.Config) { c.NodeID = "" }},
		{"no data dir", func(c *storage.Config) { c.DataDir = "" }},
		{"no address", func(c *storage.Config) { c.RaftAddr = "" }},
		{"lease above heartbeat", func(c *storage.Config) { c.LeaderLeaseTimeout = c.HeartbeatTimeout + 1 }},
		{"election below heartbeat", func(c *storage.Config) { c.ElectionTimeout = c.HeartbeatTimeout - 1 }},
		{"zero batch", func(c *storage.Config) { c.MaxBatch = 0 }},
		{"negative inflight", func(c *storage.Config) { c.MaxInflight = -1 }},
		{"zero leader wait", func(c *storage.Config) { c.LeaderWaitTimeout = 0 }},
		{"zero max voters", func(c *storage.Config) { c.MaxVoters = 0 }},
		{"tiny heartbeat", func(c *storage.Config) {
			c.HeartbeatTimeout = time.Millisecond
			c.LeaderLeaseTimeout = time.Millisecond
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("Validate accepted it")
			}
		})
	}
}

// TestStore_FollowerCatchesUpBySnapshot: a follower cut off while the leader
// compacts its log must be brought back by InstallSnapshot, which runs the
// FSM's Restore on a live store, and end with the leader's digest.
func TestStore_FollowerCatchesUpBySnapshot(t *testing.T) {
	stores, trans := st.MustOpenInmemCluster(t, 3)
	leader, lagger := stores[0], stores[2]
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	for i := range trans {
		if i != 2 {
			trans[i].Disconnect(trans[2].LocalAddr())
			trans[2].Disconnect(trans[i].LocalAddr())
		}
	}
	for j := range 30 {
		off := time.Duration(j) * hour
		mustPropose(t, leader, st.CreateBooking(st.Booking(fmt.Sprint("b", j), "p", off, off+min30, off+min30)))
	}
	// Both connected nodes keep no log for the lagger: under a loaded machine
	// leadership may move between them, and the lagger must still need the
	// snapshot from whichever leads.
	waitSameDigest(t, stores[:2])
	compactLogNow(t, stores[0])
	compactLogNow(t, stores[1])
	for i := range trans {
		if i != 2 {
			trans[i].Connect(trans[2].LocalAddr(), trans[2])
			trans[2].Connect(trans[i].LocalAddr(), trans[i])
		}
	}
	want, _ := leader.Digest()
	target := leader.Stats().AppliedIndex
	// raft records the installed snapshot (last_snapshot_index) only after
	// the FSM's Restore returned, and the FSM's applied index moves inside
	// Restore: wait for both, or a loaded machine reads the stat in between.
	snapshotted := func() bool { return lagger.Raft().Stats()["last_snapshot_index"] != "0" }
	deadline := time.Now().Add(10 * time.Second)
	for lagger.Stats().AppliedIndex < target || !snapshotted() {
		if time.Now().After(deadline) {
			if lagger.Stats().AppliedIndex >= target {
				t.Fatalf("follower caught up without installing a snapshot (last_snapshot_index %s)", lagger.Raft().Stats()["last_snapshot_index"])
			}
			t.Fatalf("lagging follower stuck at %+v, leader applied %d", lagger.Stats(), target)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, _ := lagger.Digest(); !bytes.Equal(got, want) {
		t.Fatal("digest differs after snapshot install")
	}
	if _, err := lagger.Booking(context.Background(), "b29"); err != nil {
		t.Fatal(err)
	}
}
