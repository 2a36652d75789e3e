package storage_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
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
	p := proposeHeld(t, stores, nil)
	leader, idx, done, calls := p.leader, p.idx, p.done, p.calls
	defer p.release()
	waitFor(t, "the leader to count the entry committed", 5*time.Second, func() bool { return leader.Stats().CommitIndex >= idx })
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

	p.release()
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
	p := proposeHeld(t, stores, nil)
	old, release := p.leader, p.release
	defer release()
	var rest []*storage.Store
	oi := -1
	for i, s := range stores {
		if s == old {
			oi = i
			continue
		}
		rest = append(rest, s)
	}
	each := func(f func(x, y *raft.InmemTransport)) {
		for i := range trans {
			if i != oi {
				f(trans[oi], trans[i])
			}
		}
	}
	each(cut)
	next := st.WaitLeader(t, rest...)
	each(link)
	time.Sleep(300 * time.Millisecond) // the new leader's AppendEntries reach the old one meanwhile
	if got := old.Stats().LeaderID; got == string(next.ID()) {
		t.Fatalf("%s followed the new leader %s before its own log's fdatasync ended", old.ID(), got)
	}
	release()
	waitFor(t, string(old.ID())+" to follow "+string(next.ID())+" once its fdatasync ended", 10*time.Second,
		func() bool { return old.Stats().LeaderID == string(next.ID()) })
	waitSameDigest(t, stores)
}

// TestLeaderAppend_AFailedFdatasyncSaysRestart: the leader's background
// fdatasync fails while a proposal waits for it. The FSM gives the batch up
// and the log breaks; WriteFault and Ready (what /readyz and the
// barberpro_storage_write_fault alert point the operator to) name the
// broken log, whose cure is a restart, through the batch the FSM gave up on
// because of it. It fails if the FSM's fault does not carry its cause.
func TestLeaderAppend_AFailedFdatasyncSaysRestart(t *testing.T) {
	stores := st.MustOpenCluster(t, 3)
	p := proposeHeld(t, stores, errors.New("injected fdatasync failure"))
	waitFor(t, "the leader to count the entry committed", 5*time.Second, func() bool { return p.leader.Stats().CommitIndex >= p.idx })
	p.release()
	select {
	case err := <-p.done:
		if err == nil {
			t.Fatal("the proposal succeeded though the leader's fdatasync of it failed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the proposal was not answered after the leader's fdatasync failed")
	}
	waitFor(t, "the FSM to give the batch up", 5*time.Second, func() bool { return p.leader.WriteFault() != nil })
	for what, err := range map[string]error{"WriteFault": p.leader.WriteFault(), "Ready": p.leader.Ready()} {
		if !errors.Is(err, storage.ErrLogBroken) || !strings.Contains(err.Error(), "restart") {
			t.Errorf("%s after a failed fdatasync of the leader's log = %v, want ErrLogBroken, saying to restart", what, err)
		}
	}
}

// TestLeaderAppend_AKeyedProposalWhoseFdatasyncFailedStaysUnknown: a keyed
// booking reaches both followers, then the leader's fdatasync of it fails. The
// leader's FSM gives it up (outcome unknown) and Propose retries with its
// key, but this node's raft stops (haltRaft) and no later attempt can find a
// leader. Propose must stop retrying then and name the broken log, and its
// error must still say the outcome is unknown: the followers hold the entry
// and the next leader commits it. It fails if a later "no leader known"
// replaces the unknown outcome (Propose then reported a booking that exists
// as certainly not made), or if Propose retries on a halted node until its
// LeaderWaitTimeout (a minute here).
func TestLeaderAppend_AKeyedProposalWhoseFdatasyncFailedStaysUnknown(t *testing.T) {
	cfg := storage.LocalConfig()
	// Far longer than the halt takes (a maintenance tick): Propose must stop
	// retrying once its node halted, not wait this out.
	cfg.LeaderWaitTimeout = time.Minute
	stores, _ := st.MustOpenInmemClusterWith(t, 3, cfg)
	st.NewRouter(stores...)
	p := proposeHeldCmd(t, stores, errors.New("injected fdatasync failure"),
		st.WithKey(st.CreateBooking(st.Booking("b1", "p", 0, min30, min30)), "k1", "h1"))
	waitFor(t, "the leader to count the entry committed", 5*time.Second, func() bool { return p.leader.Stats().CommitIndex >= p.idx })
	p.release()
	select {
	case err := <-p.done:
		if !errors.Is(err, storage.ErrOutcomeUnknown) {
			t.Fatalf("Propose = %v; want ErrOutcomeUnknown: the followers hold the entry", err)
		}
		if !errors.Is(err, storage.ErrLogBroken) {
			t.Fatalf("Propose = %v; want it to name the broken log (its node halted)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the proposal was not answered within 30 s: Propose kept retrying on a halted node")
	}
	var rest []*storage.Store
	for _, s := range stores {
		if s != p.leader {
			rest = append(rest, s)
		}
	}
	next := st.WaitLeader(t, rest...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := next.LinearizableRead(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := next.Booking(ctx, "b1"); err != nil {
		t.Fatalf("the booking on the next leader %s: %v (the test meant it to commit)", next.ID(), err)
	}
}

// TestLeaderAppend_ABrokenLogLeaderGivesWay: the leader's background
// fdatasync fails for an entry no follower holds: its AppendEntries that
// carry entries are dropped (its heartbeats are not), as when its followers
// cannot store them. Its log is cut back and broken. The proposal must be
// answered, and the other two must elect one of themselves and take a
// booking while the drops go on: the broken node stops its raft (haltRaft).
// Both fail while it keeps its raft running (it stays the leader: no
// hand-off can bring a follower up to its last index).
func TestLeaderAppend_ABrokenLogLeaderGivesWay(t *testing.T) {
	drops := map[raft.ServerAddress]*atomic.Bool{}
	stores, _ := st.MustOpenInmemClusterWrapped(t, 3, storage.LocalConfig(), func(tr *raft.InmemTransport) raft.Transport {
		d := &dropEntries{InmemTransport: tr}
		drops[tr.LocalAddr()] = &d.drop
		return d
	})
	leader := st.WaitLeader(t, stores...)
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	waitSameDigest(t, stores)
	idx := leader.Stats().LastLogIndex + 1
	drops[leader.Addr()].Store(true)
	release, _ := storage.HoldLeaderLogSync(t, leader, errors.New("injected fdatasync failure"))
	done := make(chan error, 1)
	go func() {
		_, err := leader.Propose(context.Background(), st.CreateBooking(st.Booking("b1", "p", 0, min30, min30)))
		done <- err
	}()
	waitFor(t, "the leader to append the entry", 5*time.Second, func() bool { return leader.Stats().LastLogIndex >= idx })
	release()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the proposal succeeded though the leader's fdatasync of it failed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the proposal was not answered after the leader's fdatasync failed")
	}
	for _, s := range stores {
		if s != leader && s.Stats().LastLogIndex >= idx {
			t.Fatalf("%s holds entry %d: the test meant no follower to", s.ID(), idx)
		}
	}
	var rest []*storage.Store
	for _, s := range stores {
		if s != leader {
			rest = append(rest, s)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		for _, s := range rest {
			if s.IsLeader() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err = s.Propose(ctx, st.CreateBooking(st.Booking("b2", "p", time.Hour, time.Hour+min30, time.Hour+min30)))
				cancel()
				if err == nil {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no other node took writes within 20s of the leader's log breaking (leader %s still %s; last error %v)",
				leader.ID(), leader.Stats().State, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dropEntries is a transport that, while drop is set, fails the
// AppendEntries that carry entries (heartbeats and empty probes pass) and
// offers no pipeline, so that every append goes through AppendEntries.
type dropEntries struct {
	*raft.InmemTransport
	drop atomic.Bool
}

func (d *dropEntries) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if d.drop.Load() && len(args.Entries) > 0 {
		return errors.New("dropped by the test")
	}
	return d.InmemTransport.AppendEntries(id, target, args, resp)
}

func (d *dropEntries) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// heldProposal is a booking proposed on a leader whose log fdatasyncs are
// held (storage.HoldLeaderLogSync), once both followers stored its entry.
type heldProposal struct {
	leader  *storage.Store
	idx     uint64     // the booking's log index
	done    chan error // the proposal's outcome
	release func()
	calls   func() int32
}

// proposeHeld waits for stores' leader, creates a provider, holds the
// leader's log fdatasyncs (to fail with fail, if not nil, once released) and
// proposes a booking, then waits until every other store holds its entry:
// replication does not wait for the leader's fdatasync.
func proposeHeld(t *testing.T, stores []*storage.Store, fail error) heldProposal {
	t.Helper()
	return proposeHeldCmd(t, stores, fail, st.CreateBooking(st.Booking("b1", "p", 0, min30, min30)))
}

// proposeHeldCmd is proposeHeld proposing cmd, a command on provider "p".
func proposeHeldCmd(t *testing.T, stores []*storage.Store, fail error, cmd *bookingv1.Command) heldProposal {
	t.Helper()
	leader := st.WaitLeader(t, stores...)
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	waitSameDigest(t, stores)
	p := heldProposal{leader: leader, idx: leader.Stats().LastLogIndex + 1, done: make(chan error, 1)}
	p.release, p.calls = storage.HoldLeaderLogSync(t, leader, fail)
	go func() {
		_, err := leader.Propose(context.Background(), cmd)
		p.done <- err
	}()
	for _, s := range stores {
		if s != leader {
			waitFor(t, string(s.ID())+" to store the entry (replication must not wait for the leader's fdatasync)", 5*time.Second,
				func() bool { return s.Stats().LastLogIndex >= p.idx })
		}
	}
	return p
}
