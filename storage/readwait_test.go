package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/storage/disktest"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestStore_WaitAppliedNeverPassesABatchWhoseCommitFails: a follower's
// linearizable read waits for read index idx (the leader answered log idx).
// The local FSM applies log idx into its open transaction and, the
// transaction being due, commits it — on a full disk, so the batch is rolled
// back unanswered (ApplyBatch retries it). applied must not move past it
// before that commit: when it did (setApplied before the commit, found by
// session 19's second reader once waitApplied waited for applied instead of
// committed), waitApplied returned nil in that window and the read after it
// fell back to viewFailed without the batch — a linearizable read that missed
// a write the leader acknowledged, with no error. Failed 4 rounds in 10.
func TestStore_WaitAppliedNeverPassesABatchWhoseCommitFails(t *testing.T) {
	stale := 0
	const rounds = 10
	for round := range rounds {
		func() {
			f, dir := openDeferringFSMOnSmallDisk(t)
			f.ApplyLogs([]*raft.Log{commandLog(t, 1, st.CreateProvider(st.Provider("p")))})
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
			f.ApplyLogs([]*raft.Log{commandLog(t, 2, bookingBatch("p", "c0", 0, 30)...)}) // answered, in the open tx
			free := disktest.FillDisk(t, dir)
			f.SetCommitEvery(time.Millisecond)
			time.Sleep(5 * time.Millisecond)

			type res struct{ wait, read error }
			got := make(chan res, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			go func() {
				w, r := f.ReadAfterWait(ctx, 3, "x")
				got <- res{w, r}
			}()
			time.Sleep(20 * time.Millisecond) // the reader waits for index 3
			x := st.Booking("x", "p", 500*time.Hour, 501*time.Hour, 501*time.Hour)
			done := make(chan []interface{}, 1)
			go func() { done <- f.ApplyLogs([]*raft.Log{commandLog(t, 3, st.CreateBooking(x))}) }()
			r := <-got
			if r.wait == nil && errors.Is(r.read, storage.ErrNotFound) {
				stale++
				t.Logf("round %d: waitApplied(3) = nil, then Booking(x) (log 3) = %v", round, r.read)
			} else {
				t.Logf("round %d: wait %v, read %v", round, r.wait, r.read)
			}
			f.SetCommitEvery(time.Hour)
			free()
			select {
			case out := <-done:
				_ = out
			case <-time.After(10 * time.Second):
				t.Fatal("FSM did not resume")
			}
		}()
	}
	if stale > 0 {
		t.Fatalf("%d/%d rounds: a read after a successful wait for index 3 did not see log 3 (and reported no error)", stale, rounds)
	}
}
