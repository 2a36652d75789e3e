package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/storage/disktest"
	st "github.com/barberpro/edge/storage/storagetest"
)

// openDeferringFSM opens a test FSM that commits without fsync and defers
// its commits (fsmcommit.go) by `every`, as a node's does by FSMSyncInterval.
func openDeferringFSM(t *testing.T, path string, every time.Duration) *storage.TestFSM {
	t.Helper()
	storage.SetBootID(t, "boot-1")
	f, err := storage.OpenTestFSM(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	f.StartSyncing(every)
	return f
}

// openDeferringFSMOnSmallDisk is openDeferringFSM (commits when told, an
// hour at most) on an 8 MiB tmpfs of its own, retrying a failed commit within
// milliseconds: the set-up of the disk-full tests, which fill the returned
// dir with fillDisk.
func openDeferringFSMOnSmallDisk(t *testing.T) (f *storage.TestFSM, dir string) {
	t.Helper()
	dir = disktest.MountTmpfs(t, "8m")
	f = openDeferringFSM(t, filepath.Join(dir, "fsm.db"), time.Hour)
	f.SetRetry(2*time.Millisecond, 10*time.Millisecond)
	return f, dir
}

// bookingLogs are n logs from index first on, each one booking of provider p
// (created by the first log).
func bookingLogs(t *testing.T, first uint64, n int) []*raft.Log {
	t.Helper()
	logs := []*raft.Log{commandLog(t, first, st.CreateProvider(st.Provider("p")))}
	for i := 1; i < n; i++ {
		off := time.Duration(i) * 2 * time.Hour
		logs = append(logs, commandLog(t, first+uint64(i), st.CreateBooking(st.Booking(fmt.Sprint("b", i), "p", off, off+time.Hour, off+time.Hour))))
	}
	return logs
}

// TestFSM_DeferredCommitsBatchAndReadsSeeEverything: batches applied one by
// one share one transaction (fewer commits than batches: without deferral
// every batch commits), yet a read right after a batch sees it, a snapshot
// holds every applied log, and the final state equals an FSM's that
// committed every batch.
func TestFSM_DeferredCommitsBatchAndReadsSeeEverything(t *testing.T) {
	logs := bookingLogs(t, 1, 40)
	ref, err := storage.OpenTestFSM(filepath.Join(t.TempDir(), "ref.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	f := openDeferringFSM(t, filepath.Join(t.TempDir(), "fsm.db"), time.Hour)
	for i, l := range logs[:20] {
		if got, want := fmt.Sprint(f.ApplyLogs([]*raft.Log{l})), fmt.Sprint(ref.ApplyLogs([]*raft.Log{l})); got != want {
			t.Fatalf("log %d answered %s, want %s", i+1, got, want)
		}
	}
	if f.AppliedIndex() != 20 || f.CommittedIndex() >= 20 || f.Commits() > 1 {
		t.Fatalf("after 20 batches: applied %d, committed %d, %d commits; want 20 applied and the commits deferred",
			f.AppliedIndex(), f.CommittedIndex(), f.Commits())
	}
	// A read commits what is pending first.
	got, err := f.Digest()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ref.Digest()
	if !bytes.Equal(got, want) || f.CommittedIndex() != 20 {
		t.Fatalf("read after 20 batches: digest equal %v, committed %d; want the whole state, committed 20", bytes.Equal(got, want), f.CommittedIndex())
	}
	for _, l := range logs[20:] {
		f.ApplyLogs([]*raft.Log{l})
		ref.ApplyLogs([]*raft.Log{l})
	}
	// A Raft snapshot is labelled with the last log raft handed over: it
	// must hold the pending ones.
	snap, err := f.SnapshotBytes()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := storage.OpenTestFSM(filepath.Join(t.TempDir(), "restored.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	if err := restored.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	got, _ = restored.Digest()
	want, _ = ref.Digest()
	if !bytes.Equal(got, want) || restored.AppliedIndex() != 40 {
		t.Fatalf("snapshot after 40 batches restores applied index %d, digest equal %v; want 40 and the whole state", restored.AppliedIndex(), bytes.Equal(got, want))
	}
}

// TestFSM_DeferredCommitFailureKeepsAnsweredLogs: a deferred commit fails on
// a full disk. The batches it held were answered: local reads still see
// them, the FSM reports the write fault, the next batch waits (ApplyBatch
// retries) and, once space returns, every log is committed once and the
// state equals a healthy FSM's.
func TestFSM_DeferredCommitFailureKeepsAnsweredLogs(t *testing.T) {
	dir := disktest.MountTmpfs(t, "2m")
	f := openDeferringFSM(t, filepath.Join(dir, "fsm.db"), time.Hour)
	f.SetRetry(5*time.Millisecond, 20*time.Millisecond)
	ref, err := storage.OpenTestFSM(filepath.Join(t.TempDir(), "ref.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()

	first := bookingLogs(t, 1, 1)
	f.ApplyLogs(first)
	ref.ApplyLogs(first)
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	free := disktest.FillDisk(t, dir)
	// Answered, not committed: two big batches that need pages the file lacks.
	answered := []*raft.Log{
		commandLog(t, 2, bookingBatch("p", "c1", 0, 150)...),
		commandLog(t, 3, bookingBatch("p", "c2", 200*time.Hour, 150)...),
	}
	for _, l := range answered {
		got, want := f.ApplyLogs([]*raft.Log{l}), ref.ApplyLogs([]*raft.Log{l})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("log %d answered %v, want %v", l.Index, got, want)
		}
	}
	if err := f.Flush(); !errors.Is(err, storage.ErrStorageUnavailable) {
		t.Fatalf("commit on a full disk: %v, want ErrStorageUnavailable (the test does not exercise a failed commit)", err)
	}
	if err := f.WriteFault(); !errors.Is(err, storage.ErrStorageUnavailable) {
		t.Fatalf("WriteFault after the failed commit = %v", err)
	}
	if f.CommittedIndex() != 1 {
		t.Fatalf("committed %d after the failed commit, want 1", f.CommittedIndex())
	}
	want, _ := ref.Digest()
	if got, err := f.Digest(); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("local read during the fault: err %v, sees the answered logs %v", err, bytes.Equal(got, want))
	}

	next := commandLog(t, 4, st.CancelBooking("p-b0"))
	done := make(chan []interface{}, 1)
	go func() { done <- f.ApplyLogs([]*raft.Log{next}) }()
	time.Sleep(100 * time.Millisecond) // several failed retries
	select {
	case <-done:
		t.Fatal("a batch applied while the logs before it cannot be committed")
	default:
	}
	free()
	out := resumed(t, done)
	if w := ref.ApplyLogs([]*raft.Log{next}); fmt.Sprint(out) != fmt.Sprint(w) {
		t.Fatalf("log 4 answered %v after resuming, want %v", out, w)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteFault(); err != nil {
		t.Fatalf("fault not cleared after resuming: %v", err)
	}
	want, _ = ref.Digest()
	if got, _ := f.Digest(); !bytes.Equal(got, want) || f.CommittedIndex() != 4 {
		t.Fatalf("after resuming: committed %d, digest equal %v; want 4 and the reference state", f.CommittedIndex(), bytes.Equal(got, want))
	}
}

// TestStore_ReadYourWriteWithDeferredCommits: on a node (FSMSyncInterval
// long, so nothing commits by time), a write's answer is followed at once by
// a local read and a linearizable read that both see it.
func TestStore_ReadYourWriteWithDeferredCommits(t *testing.T) {
	cfg := st.Config(t)
	cfg.FSMSyncInterval = time.Hour
	s := st.MustOpen(t, cfg)
	ctx := context.Background()
	if _, err := s.Propose(ctx, st.CreateProvider(st.Provider("p"))); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		id := fmt.Sprint("b", i)
		off := time.Duration(i) * 2 * time.Hour
		res, err := s.Propose(ctx, st.CreateBooking(st.Booking(id, "p", off, off+time.Hour, off+time.Hour)))
		if err != nil || res.Code != bookingv1.ResultCode_RESULT_CODE_OK {
			t.Fatalf("booking %d: %v %v", i, res, err)
		}
		if b, err := s.Booking(ctx, id); err != nil || b.Id != id {
			t.Fatalf("local read right after booking %d was answered: %v", i, err)
		}
		if err := s.LinearizableRead(ctx); err != nil {
			t.Fatal(err)
		}
		if b, err := s.Booking(ctx, id); err != nil || b.Id != id {
			t.Fatalf("linearizable read after booking %d: %v", i, err)
		}
	}
}

// TestStore_LinearizableReadCostsNoCommit: a linearizable read waits until
// the FSM has applied the read index, not until fsm.db holds it, and the
// reads a request makes after it (a booking, a page of a client's bookings)
// see the open transaction: in mixed traffic each read used to commit the
// FSM's transaction, many times per FSMSyncInterval. A read that takes a read
// transaction (a provider list: view) still commits first.
func TestStore_LinearizableReadCostsNoCommit(t *testing.T) {
	cfg := st.Config(t)
	cfg.FSMSyncInterval = time.Hour // nothing commits by time
	s := st.MustOpen(t, cfg)
	ctx := context.Background()
	if _, err := s.Propose(ctx, st.CreateProvider(st.Provider("p"))); err != nil {
		t.Fatal(err)
	}
	before := s.Stats().FSMCommits
	for i := range 10 {
		id := fmt.Sprint("b", i)
		off := time.Duration(i) * 2 * time.Hour
		if res, err := s.Propose(ctx, st.CreateBooking(st.Booking(id, "p", off, off+time.Hour, off+time.Hour))); err != nil || res.Code != bookingv1.ResultCode_RESULT_CODE_OK {
			t.Fatalf("booking %d: %v %v", i, res, err)
		}
		if err := s.LinearizableRead(ctx); err != nil {
			t.Fatal(err)
		}
		if b, err := s.Booking(ctx, id); err != nil || b.Id != id {
			t.Fatalf("booking %d after a linearizable read: %v", i, err)
		}
		items, _, err := s.ClientBookings(ctx, "client1", storage.Page{Limit: 3})
		if err != nil || len(items) == 0 || items[0].Id != id {
			t.Fatalf("client's bookings after booking %d: %v %v, want %s first", i, items, err, id)
		}
	}
	if got := s.Stats().FSMCommits; got != before {
		t.Fatalf("%d FSM commits during 10 bookings each read back linearizably, want none", got-before)
	}
	if _, _, err := s.ListProviders(ctx, storage.ProviderFilter{}); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().FSMCommits; got != before+1 {
		t.Fatalf("a provider list (a read transaction) made %d commits, want 1", got-before)
	}
}

// TestStore_ProvidersVersionMovesWithProviderWrites: the version the edge
// keys its provider list pages on moves with every provider write (create,
// update) and not with a booking; a read after the new version sees the
// write; a closed store answers ErrClosed.
func TestStore_ProvidersVersionMovesWithProviderWrites(t *testing.T) {
	cfg := st.Config(t)
	cfg.FSMSyncInterval = time.Hour // deferred: the version must move before any commit
	s := st.MustOpen(t, cfg)
	ctx := context.Background()
	version := func() uint64 {
		t.Helper()
		v, err := s.ProvidersVersion()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v0 := version()
	if _, err := s.Propose(ctx, st.CreateProvider(st.Provider("p"))); err != nil {
		t.Fatal(err)
	}
	v1 := version()
	if v1 == v0 {
		t.Fatal("a provider was created and the version stayed")
	}
	if items, _, err := s.ListProviders(ctx, storage.ProviderFilter{}); err != nil || len(items) != 1 {
		t.Fatalf("list at the new version: %d items, %v", len(items), err)
	}
	if _, err := s.Propose(ctx, st.CreateBooking(st.Booking("b", "p", time.Hour, 2*time.Hour, 2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if version() != v1 {
		t.Fatal("a booking moved the providers version")
	}
	p := st.Provider("p")
	p.Name = "renamed"
	if _, err := s.Propose(ctx, &bookingv1.Command{Op: &bookingv1.Command_UpdateProvider{UpdateProvider: &bookingv1.UpdateProvider{Provider: p}}}); err != nil {
		t.Fatal(err)
	}
	if version() == v1 {
		t.Fatal("a provider was updated and the version stayed")
	}
	if got, err := s.Provider(ctx, "p"); err != nil || got.Name != "renamed" {
		t.Fatalf("read at the new version: %v %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ProvidersVersion(); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("ProvidersVersion of a closed store: %v, want ErrClosed", err)
	}
}
