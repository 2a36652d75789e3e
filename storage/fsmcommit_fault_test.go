package storage_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/storage/disktest"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestFSM_DeferredCommitsThroughRepeatedDiskFull: the disk fills and frees
// again and again while batches are answered into the open transaction (their
// commit fails while the disk is full). Through
// every episode: a batch is answered only once the logs before it are in
// fsm.db, its answer is a healthy FSM's (also when it depends on logs that
// were applied again after a failed commit), a local read sees exactly the
// answered logs, and the final state is the healthy FSM's.
func TestFSM_DeferredCommitsThroughRepeatedDiskFull(t *testing.T) {
	f, dir := openDeferringFSMOnSmallDisk(t)
	ref, err := storage.OpenTestFSM(filepath.Join(t.TempDir(), "ref.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()

	idx := uint64(0)
	next := func(cmds ...*bookingv1.Command) *raft.Log {
		idx++
		return commandLog(t, idx, cmds...)
	}
	apply := func(l *raft.Log) []interface{} {
		got, want := f.ApplyLogs([]*raft.Log{l}), ref.ApplyLogs([]*raft.Log{l})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("log %d answered %v, want %v", l.Index, got, want)
		}
		return got
	}
	sameState := func(when string) {
		t.Helper()
		got, err := f.Digest()
		want, _ := ref.Digest()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: local read err %v, sees exactly the answered logs: %v", when, err, bytes.Equal(got, want))
		}
	}
	apply(next(st.CreateProvider(st.Provider("p"))))
	for round := range 8 {
		off := time.Duration(round) * 1000 * time.Hour
		ownCommit := round%4 >= 2 // the waiting batch's own commit fails
		var free func()
		if !ownCommit {
			free = disktest.FillDisk(t, dir)
		}
		// Answered into the open transaction, some cancelled again.
		for k := range 3 {
			apply(next(bookingBatch("p", fmt.Sprint("c", round, k), off+time.Duration(k)*100*time.Hour, 30)...))
		}
		apply(next(st.CancelBooking(fmt.Sprintf("p-b%d", int(off/time.Hour)+3))))
		if ownCommit {
			// The next batch finds the transaction due (its age) and
			// commits it, with the answered logs, on a full disk.
			free = disktest.FillDisk(t, dir)
			f.SetCommitEvery(time.Millisecond)
			time.Sleep(5 * time.Millisecond)
		} else {
			// The commit fails (a read, the sync loop); the answered
			// logs stay visible.
			if err := f.Flush(); err == nil {
				t.Fatalf("round %d: commit on a full disk succeeded (the test does not exercise a failed commit)", round)
			}
			sameState(fmt.Sprintf("round %d, disk full", round))
		}
		// A batch whose answers depend on the failed logs: a booking over
		// a cancelled one (OK), one over a live one (taken), a cancel.
		cancelled := off + 3*time.Hour
		live := off + 5*time.Hour
		l := next(
			st.CreateBooking(st.Booking(fmt.Sprint("x", round), "p", cancelled, cancelled+30*time.Minute, cancelled+30*time.Minute)),
			st.CreateBooking(st.Booking(fmt.Sprint("y", round), "p", live, live+30*time.Minute, live+30*time.Minute)),
			st.CancelBooking(fmt.Sprintf("p-b%d", int(off/time.Hour)+7)),
		)
		done := make(chan []interface{}, 1)
		go func() { done <- f.ApplyLogs([]*raft.Log{l}) }()
		time.Sleep(30 * time.Millisecond)
		select {
		case <-done:
			t.Fatalf("round %d: a batch was answered while the logs before it cannot be committed", round)
		default:
		}
		sameState(fmt.Sprintf("round %d, batch waiting", round))
		if ownCommit {
			f.SetCommitEvery(time.Hour)
		}
		free()
		if round%2 == 1 {
			// The sync loop applies the failed logs again (the waiting
			// batch among them) while ApplyBatch waits to retry.
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		var got []interface{}
		select {
		case got = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the FSM did not resume after space returned", round)
		}
		if want := ref.ApplyLogs([]*raft.Log{l}); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: log %d answered %v after resuming, want %v", round, l.Index, got, want)
		}
		sameState(fmt.Sprintf("round %d, resumed", round))
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteFault(); err != nil {
		t.Fatalf("fault after the last round: %v", err)
	}
	if f.CommittedIndex() != idx {
		t.Fatalf("committed %d, want %d", f.CommittedIndex(), idx)
	}
	sameState("end")
}

// TestFSM_CloseWhileDeferredCommitFails: the node stops while the answered
// logs of a failed deferred commit cannot be committed (disk full; a Raft
// snapshot is refused meanwhile). fsm.db keeps its last commit; at the next
// start raft hands the FSM every entry after its latest snapshot (none
// here) and the FSM applies those past fsm.db's index again, to the
// answers it gave and the state a healthy FSM has.
func TestFSM_CloseWhileDeferredCommitFails(t *testing.T) {
	dir := disktest.MountTmpfs(t, "4m")
	path := filepath.Join(dir, "fsm.db")
	f := openDeferringFSM(t, path, time.Hour)
	f.SetRetry(2*time.Millisecond, 10*time.Millisecond)
	ref, err := storage.OpenTestFSM(filepath.Join(t.TempDir(), "ref.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	logs := []*raft.Log{commandLog(t, 1, st.CreateProvider(st.Provider("p")))}
	f.ApplyLogs(logs)
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	free := disktest.FillDisk(t, dir)
	var answers []string
	for k := range 3 {
		l := commandLog(t, uint64(2+k), bookingBatch("p", fmt.Sprint("c", k), time.Duration(k)*100*time.Hour, 30)...)
		logs = append(logs, l)
		answers = append(answers, fmt.Sprint(f.ApplyLogs([]*raft.Log{l})[0]))
	}
	if err := f.Flush(); err == nil {
		t.Fatal("commit on a full disk succeeded (the test does not exercise a failed commit)")
	}
	if err := f.Snapshot(); err == nil {
		t.Fatal("a Raft snapshot was taken while answered logs are not in fsm.db")
	}
	_ = f.Close() // may fail to mark fsm.db clean on the full disk
	free()

	g, err := storage.OpenTestFSM(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.AppliedIndex() != 1 {
		t.Fatalf("fsm.db at index %d after the close, want 1 (its last commit)", g.AppliedIndex())
	}
	want := ref.ApplyLogs(logs)
	got := g.ApplyLogs(logs) // raft's replay
	for i := 1; i < len(logs); i++ {
		if a, w := fmt.Sprint(got[i]), fmt.Sprint(want[i]); a != w || a != answers[i-1] {
			t.Fatalf("log %d: replayed answer equals the first %v, the healthy FSM's %v", i+1, a == answers[i-1], a == w)
		}
	}
	d, _ := g.Digest()
	wd, _ := ref.Digest()
	if !bytes.Equal(d, wd) {
		t.Fatal("state after the restart and replay differs from a healthy FSM's")
	}
}

// TestFSM_DeferredCommitsEraseAfterCommit: an erasure applied after batches
// that were answered into the open transaction commits them and itself
// before OnErase runs (the KEK ledger destroys the client's keys on it):
// fsm.db then holds the erasure, whatever the process does next.
func TestFSM_DeferredCommitsEraseAfterCommit(t *testing.T) {
	storage.SetBootID(t, "boot-1")
	var f *storage.TestFSM
	type seen struct{ applied, committed uint64 }
	var at []seen
	f, err := storage.OpenTestFSMWith(filepath.Join(t.TempDir(), "fsm.db"), "ar", func(string, []string) {
		at = append(at, seen{f.AppliedIndex(), f.CommittedIndex()})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.StartSyncing(time.Hour)
	logs := []*raft.Log{
		commandLog(t, 1, cmdAt(0, &bookingv1.PutClientKey{Key: clientKey("c1", "key_a")})),
		commandLog(t, 2, cmdAt(0, &bookingv1.PutClientKey{Key: clientKey("c2", "key_b")})),
		commandLog(t, 3, cmdAt(time.Hour, &bookingv1.EraseHealthData{ClientId: "c1"})),
	}
	for _, l := range logs[:2] {
		f.ApplyLogs([]*raft.Log{l})
	}
	if f.CommittedIndex() >= 2 {
		t.Fatalf("committed %d before the erasure: the test needs answered logs left in the open transaction", f.CommittedIndex())
	}
	f.ApplyLogs(logs[2:])
	if len(at) != 1 || at[0] != (seen{3, 3}) {
		t.Fatalf("OnErase calls with (applied, committed) %v, want one at (3, 3)", at)
	}
}
