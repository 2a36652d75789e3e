package storage_test

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// idemReviewLogs: provider, K@1m (h1), [Compact@49h deleting K, K again@49h (h2)],
// then K with h1 @50h (mismatch expected), K with h2 @50h (replay expected).
func idemReviewLogs(t *testing.T) [][]*raft.Log {
	return [][]*raft.Log{
		{commandLog(t, 1, st.CreateProvider(st.Provider("p1")))},
		{commandLog(t, 2, at(keyedBooking("b1", 10, "K", "h1"), time.Minute))},
		{commandLog(t, 3, compactCmd(49*time.Hour, 24*time.Hour, 0, 100)),
			commandLog(t, 4, at(keyedBooking("b2", 12, "K", "h2"), 49*time.Hour))},
		{commandLog(t, 5, at(keyedBooking("b3", 14, "K", "h1"), 50*time.Hour)),
			commandLog(t, 6, at(keyedBooking("b4", 16, "K", "h2"), 50*time.Hour))},
	}
}

func TestIdemLocatorReview_RedoAfterFailedCommitWithCompactAndReuse(t *testing.T) {
	ref, f := idemReviewPair(t)
	batches := idemReviewLogs(t)
	for i, b := range batches {
		want := ref.ApplyLogs(b)
		got := f.ApplyLogs(b)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("batch %d: %v, want %v", i, got, want)
		}
		if i == 1 {
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if i == 2 {
			if !f.FailPendingCommit() {
				t.Fatal("nothing pending")
			}
			// Reads while the logs wait to be redone see the reused record (h2).
			rec, err := f.ViewFailedIdempotency("K")
			if err != nil || rec == nil || string(rec.RequestHash) != "h2" {
				t.Fatalf("viewFailed read: %v %v", rec, err)
			}
			rec, err = f.PeekIdempotency("K")
			if err != nil || rec == nil || string(rec.RequestHash) != "h2" {
				t.Fatalf("peek read (redoes the failed logs): %v %v", rec, err)
			}
		}
	}
	requireSameDigest(t, f, ref)
	rec, err := f.PeekIdempotency("K")
	if err != nil || rec == nil || string(rec.RequestHash) != "h2" {
		t.Fatalf("end read: %v %v", rec, err)
	}
}

// Restore a snapshot (ref's, taken before the reuse) while f has the reuse pending.
func TestIdemLocatorReview_RestoreWhilePending(t *testing.T) {
	ref, f := idemReviewPair(t)
	batches := idemReviewLogs(t)
	for _, b := range batches[:2] {
		ref.ApplyLogs(b)
		f.ApplyLogs(b)
	}
	snap, err := ref.SnapshotBytes()
	if err != nil {
		t.Fatal(err)
	}
	f.ApplyLogs(batches[2])
	if err := f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	for i, b := range batches[2:] {
		want := ref.ApplyLogs(b)
		got := f.ApplyLogs(b)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("batch %d: %v, want %v", i+2, got, want)
		}
	}
	requireSameDigest(t, f, ref)
}

// Concurrent reads (peek) while the FSM applies keyed bookings, compacts and
// commits from the sync loop: run with -race.
func TestIdemLocatorReview_ConcurrentReadsRace(t *testing.T) {
	f := openDeferringFSM(t, filepath.Join(t.TempDir(), "f.db"), time.Millisecond)
	f.ApplyLogs([]*raft.Log{commandLog(t, 1, st.CreateProvider(st.Provider("p1")))})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprint("k", (i+g)%50)
				if _, err := f.PeekIdempotency(key); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	idx := uint64(1)
	for i := range 600 {
		idx++
		h := time.Duration(i)
		var cmd *bookingv1.Command
		if i%7 == 6 {
			cmd = compactCmd(h*time.Hour, 2*time.Hour, 0, 100)
		} else {
			cmd = at(keyedBooking(fmt.Sprint("b", i), 2*h, fmt.Sprint("k", i%50), "h"), h*time.Hour)
		}
		f.ApplyLogs([]*raft.Log{commandLog(t, idx, cmd)})
	}
	close(stop)
	wg.Wait()
}

// Legacy record K; a rolled back Compact+reuse of K; then a repeat of the
// legacy request must replay it, and a Compact for real then a reuse must
// take effect anew.
func TestIdemLocatorReview_LegacyRolledBackReuse(t *testing.T) {
	s := newFSMSeq(t)
	s.ok(st.CreateProvider(st.Provider("p1")))
	b := s.ok(at(keyedBooking("b1", 10, "other", "x"), time.Minute)).Booking
	if err := s.fsm.PutLegacyIdempotency(&bookingv1.IdempotencyRecord{
		Key: "K", RequestHash: []byte("h1"), ResourceId: b.Id, CreatedAtMs: st.At(time.Minute),
	}); err != nil {
		t.Fatal(err)
	}
	logs := []*raft.Log{
		commandLog(t, s.idx+1, compactCmd(48*time.Hour, 24*time.Hour, 0, 100)),
		commandLog(t, s.idx+2, at(keyedBooking("b2", 12, "K", "h2"), 49*time.Hour)),
	}
	if err := s.fsm.ApplyRolledBack(logs); err != nil {
		t.Fatal(err)
	}
	if r := s.ok(at(keyedBooking("b3", 14, "K", "h1"), 2*time.Minute)); r.Booking.GetId() != b.Id {
		t.Fatalf("repeat of legacy answered %q", r.Booking.GetId())
	}
	if r := s.apply(at(keyedBooking("b3", 14, "K", "h2"), 3*time.Minute)); r.Code != bookingv1.ResultCode_RESULT_CODE_IDEMPOTENCY_MISMATCH {
		t.Fatalf("h2 with legacy K: %v", r.Code)
	}
	s.ok(compactCmd(48*time.Hour, 24*time.Hour, 0, 100))
	if r := s.ok(at(keyedBooking("b4", 16, "K", "h2"), 49*time.Hour)); r.Booking.GetId() != "b4" {
		t.Fatalf("reuse after expiry answered %q", r.Booking.GetId())
	}
	if r := s.ok(at(keyedBooking("b5", 18, "K", "h2"), 50*time.Hour)); r.Booking.GetId() != "b4" {
		t.Fatalf("repeat answered %q", r.Booking.GetId())
	}
}

// idemReviewPair is a reference FSM committing every batch and one deferring
// its commits (an hour), both closed at the test's end.
func idemReviewPair(t *testing.T) (ref, f *storage.TestFSM) {
	t.Helper()
	ref, err := storage.OpenTestFSM(filepath.Join(t.TempDir(), "ref.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ref.Close() })
	return ref, openDeferringFSM(t, filepath.Join(t.TempDir(), "f.db"), time.Hour)
}

// requireSameDigest flushes f and fails unless its file's digest is ref's.
func requireSameDigest(t *testing.T, f, ref *storage.TestFSM) {
	t.Helper()
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := f.Digest()
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the digest differs from the reference FSM's")
	}
}
