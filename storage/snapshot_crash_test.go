package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

var errSimulatedCrash = errors.New("simulated crash at the snapshot-restore failpoint")

// TestStore_CrashDuringSnapshotInstall reproduces issue 7 finding 2: a
// follower that was cut off while the leader compacted its log is sent a
// snapshot, and dies after raft persisted it but before the FSM's restore
// made it live (the snapshot-restore failpoint). The crash is simulated
// without killing the test process: at the failpoint the follower's data dir
// is copied (nothing else writes to it then: raft's main goroutine waits for
// the restore and the FSM goroutine is the one running it), which is exactly
// what a SIGKILL at that instant leaves on disk. A store reopened on that
// copy, under a new leader, must hold every acknowledged booking before it
// serves, and after it became leader it must refuse a booking overlapping one
// of them.
func TestStore_CrashDuringSnapshotInstall(t *testing.T) {
	cfg := slowElections()
	cfg.Logger = st.Logger()
	stores, trans := st.MustOpenInmemClusterWith(t, 3, cfg)
	leader, lagger := stores[0], stores[2]
	ctx := context.Background()

	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	var acked []string
	book := func(j int) {
		id := fmt.Sprint("b", j)
		off := time.Duration(j) * hour
		mustPropose(t, leader, st.CreateBooking(st.Booking(id, "p", off, off+min30, off+min30)))
		acked = append(acked, id)
	}
	for j := range 5 {
		book(j)
	}
	// The follower's fsm.db holds the first bookings: the crash leaves an old,
	// not an empty, FSM behind.
	waitFor(t, "follower applies the first bookings", st.ReadyTimeout, func() bool {
		return lagger.Stats().AppliedIndex >= leader.Stats().AppliedIndex
	})

	cut := func(connect bool) {
		for i := range trans[:2] {
			if connect {
				trans[i].Connect(trans[2].LocalAddr(), trans[2])
				trans[2].Connect(trans[i].LocalAddr(), trans[i])
			} else {
				trans[i].Disconnect(trans[2].LocalAddr())
				trans[2].Disconnect(trans[i].LocalAddr())
			}
		}
	}
	cut(false)
	for j := 5; j < 30; j++ {
		book(j)
	}
	compactLogNow(t, leader)

	crashDir := filepath.Join(t.TempDir(), "crashed")
	var once sync.Once
	crashed := make(chan error, 1)
	storage.SetInstallHook(lagger, func() error {
		once.Do(func() { crashed <- copyDir(storage.DataDir(lagger), crashDir) })
		return errSimulatedCrash // and every retry fails too: this node is dead
	})
	cut(true)
	select {
	case err := <-crashed:
		if err != nil {
			t.Fatalf("copying the crashed follower's data dir: %v", err)
		}
	case <-time.After(st.ReadyTimeout):
		t.Fatalf("the leader never sent the lagging follower a snapshot: %+v", lagger.Stats())
	}
	addr := lagger.Addr()
	if err := lagger.Close(); err != nil {
		t.Fatal(err)
	}
	// What the crash left: the snapshot in snapshots/ and the FSM's restore
	// copy beside an fsm.db that was never replaced.
	if left, _ := filepath.Glob(filepath.Join(crashDir, storage.FSMFile+".restore-*")); len(left) != 1 {
		t.Fatalf("crash image has restore copies %v, want one", left)
	}
	// Leadership moves while the node is down. The old leader would resend
	// the snapshot whose install failed; a new one starts from what the node
	// reports (its last index is the snapshot's, which raft counts as
	// applied) and sends only the entries after it.
	waitFor(t, "the other survivor leads", st.ReadyTimeout, func() bool {
		if !stores[1].IsLeader() && leader.IsLeader() {
			_ = leader.Raft().LeadershipTransferToServer(stores[1].ID(), stores[1].Addr()).Error()
		}
		return stores[1].IsLeader()
	})

	// Restart the node on what the crash left, with a fresh transport at the
	// same address that the others do not reach yet.
	c := cfg
	c.NodeID, c.DataDir, c.Bootstrap = string(lagger.ID()), crashDir, false
	_, tr := raft.NewInmemTransport(addr)
	c.Transport = tr
	restarted := st.MustOpen(t, c)
	if left, _ := filepath.Glob(filepath.Join(crashDir, storage.FSMFile+".restore-*")); len(left) != 0 {
		t.Errorf("restore copies left after Open: %v", left)
	}
	if missing := missingBookings(restarted, acked); len(missing) > 0 {
		t.Errorf("after Open, before serving: %d of %d acknowledged bookings missing: %v", len(missing), len(acked), missing)
	}

	rejoin(t, restarted, tr, trans[:2])
	if missing := missingBookings(restarted, acked); len(missing) > 0 {
		t.Errorf("Ready, yet %d of %d acknowledged bookings missing: %v", len(missing), len(acked), missing)
	}

	// Make the restarted node the leader: it must judge overlaps against
	// every booking the group acknowledged.
	waitFor(t, "leadership moves to the restarted node", st.ReadyTimeout, func() bool {
		if restarted.IsLeader() {
			return true
		}
		if l := leaderOf(stores[0], stores[1]); l != nil {
			_ = l.Raft().LeadershipTransferToServer(restarted.ID(), restarted.Addr()).Error()
		}
		return restarted.IsLeader()
	})
	for _, j := range []int{2, 20} { // one from before the cut, one from the snapshot
		off := time.Duration(j)*hour + 10*time.Minute
		_, err := restarted.Propose(ctx, st.CreateBooking(st.Booking(fmt.Sprint("x", j), "p", off, off+min30, off+min30)))
		if !errors.Is(err, storage.ErrSlotTaken) {
			t.Errorf("new leader, booking overlapping b%d: %v; want ErrSlotTaken", j, err)
		}
	}
	// All three replicas converge on one state.
	mustPropose(t, restarted, st.CancelBooking("b0"))
	want := restarted.Stats().AppliedIndex
	for _, s := range stores[:2] {
		waitFor(t, "replicas apply the new leader's entries", st.ReadyTimeout, func() bool { return s.Stats().AppliedIndex >= want })
	}
	d0, _ := restarted.Digest()
	for _, s := range stores[:2] {
		if d, _ := s.Digest(); !bytes.Equal(d, d0) {
			t.Errorf("%s digest differs from the restarted leader's", s.ID())
		}
	}
}

// TestStore_FSMBehindSnapshotAtOpen: fsm.db lost (deleted, or recreated
// empty) while raft.db and snapshots/ survive. Open must bring the FSM to the
// snapshot before raft starts — from the log when it still holds the entries
// (and their term matches the snapshot's), else by restoring the snapshot —
// and must refuse to start when neither is possible.
func TestStore_FSMBehindSnapshotAtOpen(t *testing.T) {
	for _, tc := range []struct {
		name         string
		trailingLogs uint64 // raft keeps this many entries at the snapshot; 0 = compact all
		corrupt      bool   // damage the snapshot
		wantLog      string // what Open must have logged
	}{
		{"log covers the gap", 100000, false, "applied the missing entries from the log"},
		{"log compacted", 0, false, "restoring the snapshot before starting raft"},
		{"log compacted and snapshot corrupt", 0, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := st.Config(t)
			s, err := storage.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			st.MustWaitLeader(t, s)
			mustPropose(t, s, st.CreateProvider(st.Provider("p")))
			for j := range 20 {
				off := time.Duration(j) * hour
				mustPropose(t, s, st.CreateBooking(st.Booking(fmt.Sprint("b", j), "p", off, off+min30, off+min30)))
			}
			mustPropose(t, s, st.CancelBooking("b3"))
			rc := s.Raft().ReloadableConfig()
			rc.TrailingLogs = tc.trailingLogs
			if err := s.Raft().ReloadConfig(rc); err != nil {
				t.Fatal(err)
			}
			if err := s.Raft().Snapshot().Error(); err != nil {
				t.Fatal(err)
			}
			// An entry after the snapshot: raft itself applies it after Open.
			mustPropose(t, s, st.CreateBooking(st.Booking("after", "p", 30*hour, 31*hour, 31*hour)))
			want, _ := s.Digest()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(cfg.DataDir, storage.FSMFile)); err != nil {
				t.Fatal(err)
			}
			if tc.corrupt {
				corruptSnapshots(t, cfg.DataDir)
			}

			logs := &captureHandler{}
			cfg.Logger = slog.New(logs)
			s, err = storage.Open(cfg)
			if tc.corrupt {
				if err == nil {
					s.Close()
					t.Fatal("Open started a node whose FSM cannot reach the snapshot")
				}
				if !strings.Contains(err.Error(), "cannot catch up") {
					t.Fatalf("Open: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if !logs.contains(tc.wantLog) {
				t.Errorf("Open did not log %q", tc.wantLog)
			}
			var ids []string
			for j := range 20 {
				ids = append(ids, fmt.Sprint("b", j))
			}
			if missing := missingBookings(s, ids); len(missing) > 0 {
				t.Errorf("after Open: bookings %v missing", missing)
			}
			st.MustWaitLeader(t, s)
			if err := s.LinearizableRead(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Digest(); !bytes.Equal(got, want) {
				t.Errorf("digest after reopen differs from before fsm.db was lost")
			}
			if b, err := s.Booking(context.Background(), "b3"); err != nil || b.Version != 2 {
				t.Errorf("cancelled b3 after reopen: %v %v", b, err)
			}
		})
	}
}

// slowElections is LocalConfig with failure detection slow enough that a
// loaded machine (2 shared cores, -race) does not move leadership on its own
// in the middle of a test; the tests move it themselves when they need to.
func slowElections() storage.Config {
	c := storage.LocalConfig()
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
	return c
}

// rejoin connects s's transport tr with the transports of the group's other
// nodes (both ways) and waits until s is Ready.
func rejoin(t *testing.T, s *storage.Store, tr *raft.InmemTransport, others []*raft.InmemTransport) {
	t.Helper()
	for _, o := range others {
		o.Connect(tr.LocalAddr(), tr)
		tr.Connect(o.LocalAddr(), o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), st.ReadyTimeout)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// missingBookings returns the ids the local replica of s lacks.
func missingBookings(s *storage.Store, ids []string) []string {
	var missing []string
	for _, id := range ids {
		if _, err := s.Booking(context.Background(), id); err != nil {
			missing = append(missing, id)
		}
	}
	return missing
}

func leaderOf(stores ...*storage.Store) *storage.Store {
	for _, s := range stores {
		if s.IsLeader() {
			return s
		}
	}
	return nil
}

// copyDir copies the regular files under src to dst (created).
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// corruptSnapshots flips a byte in every snapshot's state file, so raft's
// CRC check refuses to open it.
func corruptSnapshots(t *testing.T, dataDir string) {
	t.Helper()
	var states []string // raft keeps them in snapshots/snapshots/<id>/state.bin
	_ = filepath.WalkDir(filepath.Join(dataDir, storage.SnapshotsDir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "state.bin" {
			states = append(states, p)
		}
		return nil
	})
	if len(states) == 0 {
		t.Fatal("no snapshot to corrupt")
	}
	for _, p := range states {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// captureHandler is a slog.Handler that keeps every message.
type captureHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	return nil
}
func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }

func (h *captureHandler) contains(sub string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}
