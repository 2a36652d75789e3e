package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestLeaderAppend_NothingAppliesBeforeTheLeadersFdatasync: a leader's log
// append returns before its fdatasync, so replication starts at once and
// raft counts the entry committed once a follower acked it. Until the
// leader's fdatasync ends nothing may act on it: not the leader's FSM (the
// proposal stays unanswered), not a follower's (the commit index the leader
// sends is capped at what its log holds on disk). Then the proposal is
// answered and every replica applies it. It fails if appends wait for their
// fdatasync (no follower stores the entry while it is held), without the
// FSM's wait (the leader answers) or without the cap (a follower applies).
func TestLeaderAppend_NothingAppliesBeforeTheLeadersFdatasync(t *testing.T) {
	stores := st.MustOpenCluster(t, 3)
	leader := st.WaitLeader(t, stores...)
	ctx := context.Background()
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	waitSameDigest(t, stores)
	idx := leader.Stats().LastLogIndex + 1

	release, calls := storage.HoldLeaderLogSync(leader)
	defer release()
	done := make(chan error, 1)
	go func() {
		_, err := leader.Propose(ctx, st.CreateBooking(st.Booking("b1", "p", 0, min30, min30)))
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s, while the leader's fdatasync was held", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	for _, s := range stores {
		if s != leader {
			waitFor(string(s.ID())+" never stored the entry (replication waited for the leader's fdatasync)",
				func() bool { return s.Stats().LastLogIndex >= idx })
		}
	}
	waitFor("the leader never counted the entry committed", func() bool { return leader.Stats().CommitIndex >= idx })
	time.Sleep(200 * time.Millisecond) // time for anything that would act on it
	select {
	case err := <-done:
		t.Fatalf("the proposal was answered (err %v) before the leader's log held it on disk", err)
	default:
	}
	for _, s := range stores {
		if st := s.Stats(); st.AppliedIndex >= idx || (s != leader && st.CommitIndex >= idx) {
			t.Fatalf("%s: applied %d, commit index %d: it learned of entry %d before the leader's log held it on disk",
				s.ID(), st.AppliedIndex, st.CommitIndex, idx)
		}
	}
	if storage.LogDurableIndex(leader) >= idx || calls() == 0 {
		t.Fatalf("the leader's log counts %d durable with %d fdatasyncs held: the test did not hold the append's",
			storage.LogDurableIndex(leader), calls())
	}

	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the proposal was not answered after the leader's fdatasync ended")
	}
	waitSameDigest(t, stores)
}

// TestLeaderAppend_AStaleLeaderFollowsNobodyBeforeItsFdatasync: a leader cut
// off with a deferred append pending, replaced, then reconnected, must not
// let raft process the new leader's AppendEntries (and ack its own log,
// duplicates included, which raft acks without storing them) before its
// fdatasync ended: the vote guard fences every incoming AppendEntries
// through the log, which first makes what is pending durable. It fails if
// the Store does not wire the fence into the guard.
func TestLeaderAppend_AStaleLeaderFollowsNobodyBeforeItsFdatasync(t *testing.T) {
	stores, trans := st.MustOpenInmemCluster(t, 3)
	old := st.WaitLeader(t, stores...)
	ctx := context.Background()
	mustPropose(t, old, st.CreateProvider(st.Provider("p")))
	waitSameDigest(t, stores)
	idx := old.Stats().LastLogIndex + 1

	release, _ := storage.HoldLeaderLogSync(old)
	defer release()
	go func() { _, _ = old.Propose(ctx, st.CreateBooking(st.Booking("b1", "p", 0, min30, min30))) }()
	var rest []*storage.Store
	oi := -1
	for i, s := range stores {
		if s == old {
			oi = i
			continue
		}
		rest = append(rest, s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range rest {
		for s.Stats().LastLogIndex < idx {
			if time.Now().After(deadline) {
				t.Fatalf("%s never stored entry %d", s.ID(), idx)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	link := func(on bool) {
		for i := range trans {
			if i == oi {
				continue
			}
			if on {
				trans[oi].Connect(trans[i].LocalAddr(), trans[i])
				trans[i].Connect(trans[oi].LocalAddr(), trans[oi])
			} else {
				trans[oi].Disconnect(trans[i].LocalAddr())
				trans[i].Disconnect(trans[oi].LocalAddr())
			}
		}
	}
	link(false)
	var next *storage.Store
	for next == nil {
		if time.Now().After(deadline) {
			t.Fatal("the two others never elected a leader")
		}
		for _, s := range rest {
			if s.IsLeader() {
				next = s
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	link(true)
	time.Sleep(300 * time.Millisecond) // the new leader's AppendEntries reach the old one meanwhile
	if got := old.Stats().LeaderID; got == string(next.ID()) {
		t.Fatalf("%s followed the new leader %s before its own log's fdatasync ended", old.ID(), got)
	}
	release()
	for old.Stats().LeaderID != string(next.ID()) {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("%s never followed %s after its fdatasync ended", old.ID(), next.ID())
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitSameDigest(t, stores)
}
