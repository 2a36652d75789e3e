package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestForward_ProposeOnFollower: a follower forwards proposals to the leader
// and hands back the leader's verdict, OK or not.
func TestForward_ProposeOnFollower(t *testing.T) {
	stores := st.MustOpenCluster(t, 3)
	st.NewRouter(stores...)
	leader, follower := stores[0], stores[1]
	ctx := context.Background()
	if _, err := follower.Propose(ctx, st.CreateProvider(st.Provider("p"))); err != nil {
		t.Fatal(err)
	}
	res, err := follower.Propose(ctx, st.CreateBooking(st.Booking("b1", "p", 0, min30, min30)))
	if err != nil || res.Booking.GetId() != "b1" || res.Index == 0 {
		t.Fatalf("forwarded CreateBooking = %v, %v", res, err)
	}
	// The leader applied it (it answered), so a local read there sees it.
	if _, err := leader.Booking(ctx, "b1"); err != nil {
		t.Fatalf("leader does not have b1: %v", err)
	}
	res, err = follower.Propose(ctx, st.CreateBooking(st.Booking("b2", "p", 0, min30, min30)))
	if !errors.Is(err, storage.ErrSlotTaken) || res.GetCode() != bookingv1.ResultCode_RESULT_CODE_SLOT_TAKEN {
		t.Fatalf("forwarded overlapping booking = %v, %v; want SLOT_TAKEN", res, err)
	}
	// ProposeLocal never forwards.
	if _, err := follower.ProposeLocal(ctx, st.CancelBooking("b1")); !errors.Is(err, storage.ErrNotLeader) || errors.Is(err, storage.ErrOutcomeUnknown) {
		t.Fatalf("ProposeLocal on follower: %v", err)
	}
	if _, err := follower.ReadIndexLocal(ctx); !errors.Is(err, storage.ErrNotLeader) {
		t.Fatalf("ReadIndexLocal on follower: %v", err)
	}
	// A keyed command retried through another follower has one effect.
	cmd := st.WithKey(st.RescheduleBooking("b1", hour, hour+min30, hour+min30), "k1", "h1")
	for _, s := range []*storage.Store{stores[1], stores[2], stores[0]} {
		if _, err := s.Propose(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := leader.Booking(ctx, "b1"); b.GetVersion() != 2 {
		t.Fatalf("keyed reschedule applied %d times", b.GetVersion()-1)
	}
}

// TestForward_LinearizableReadOnFollower: after a write acknowledged by the
// leader, LinearizableRead on a follower that has not received it yet must
// wait until it has, then the local read sees the write.
func TestForward_LinearizableReadOnFollower(t *testing.T) {
	// Timeouts well above the cut below, so no election starts even on a
	// loaded machine under -race.
	cfg := storage.LocalConfig()
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 2*time.Second, 2*time.Second, time.Second
	stores, trans := st.MustOpenInmemClusterWith(t, 3, cfg)
	st.NewRouter(stores...)
	leader, lagger := stores[0], stores[2]
	ctx := context.Background()
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	// Cut raft traffic between leader and lagger (the router still reaches
	// the leader), shorter than a heartbeat timeout so no election starts.
	trans[0].Disconnect(trans[2].LocalAddr())
	trans[2].Disconnect(trans[0].LocalAddr())
	mustPropose(t, leader, st.CreateBooking(st.Booking("b1", "p", 0, min30, min30)))
	if _, err := lagger.Booking(ctx, "b1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("lagger already has b1 (%v): the test cannot tell a stale read", err)
	}
	done := make(chan error, 1)
	go func() { done <- lagger.LinearizableRead(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("LinearizableRead returned (%v) before the follower applied the write", err)
	case <-time.After(60 * time.Millisecond):
	}
	trans[0].Connect(trans[2].LocalAddr(), trans[2])
	trans[2].Connect(trans[0].LocalAddr(), trans[0])
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("LinearizableRead did not return after heal")
	}
	if _, err := lagger.Booking(ctx, "b1"); err != nil {
		t.Fatalf("read after LinearizableRead misses b1: %v", err)
	}
	// The plain case: write via the leader, read at once on a follower.
	for i := range 20 {
		id := fmt.Sprint("c", i)
		off := time.Duration(i+2) * hour
		mustPropose(t, leader, st.CreateBooking(st.Booking(id, "p", off, off+min30, off+min30)))
		f := stores[1+i%2]
		if err := f.LinearizableRead(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Booking(ctx, id); err != nil {
			t.Fatalf("follower read after LinearizableRead misses %s: %v", id, err)
		}
	}
}

// TestForward_RetryPolicy: with the leader unreachable, a keyed command is
// retried until LeaderWaitTimeout and then fails with ErrNotLeader; a
// command without a key is not retried once its outcome is unknown.
func TestForward_RetryPolicy(t *testing.T) {
	cfg := storage.LocalConfig()
	cfg.LeaderWaitTimeout = 400 * time.Millisecond
	stores, _ := st.MustOpenInmemClusterWith(t, 3, cfg)
	follower := stores[1]
	var calls atomic.Int32
	follower.SetForwarder(failingForwarder{calls: &calls})
	ctx := context.Background()

	start := time.Now()
	_, err := follower.Propose(ctx, st.WithKey(st.CreateProvider(st.Provider("p")), "k", "h"))
	took := time.Since(start)
	if !errors.Is(err, storage.ErrNotLeader) || !errors.Is(err, storage.ErrOutcomeUnknown) {
		t.Fatalf("keyed: %v", err)
	}
	if took < cfg.LeaderWaitTimeout || took > cfg.LeaderWaitTimeout+3*time.Second || calls.Load() < 3 {
		t.Fatalf("keyed: gave up after %s and %d calls; want ~%s and several", took, calls.Load(), cfg.LeaderWaitTimeout)
	}
	calls.Store(0)
	_, err = follower.Propose(ctx, st.CreateProvider(st.Provider("p")))
	if !errors.Is(err, storage.ErrNotLeader) || !errors.Is(err, storage.ErrOutcomeUnknown) || calls.Load() != 1 {
		t.Fatalf("unkeyed: %v after %d calls; want one call, outcome unknown", err, calls.Load())
	}
	// A refusal before proposing is retried for unkeyed commands too.
	calls.Store(0)
	follower.SetForwarder(failingForwarder{calls: &calls, err: fmt.Errorf("%w: far side", storage.ErrNotLeader)})
	_, err = follower.Propose(ctx, st.CreateProvider(st.Provider("p")))
	if !errors.Is(err, storage.ErrNotLeader) || errors.Is(err, storage.ErrOutcomeUnknown) || calls.Load() < 3 {
		t.Fatalf("refused: %v after %d calls", err, calls.Load())
	}
	// Reads are always retried.
	calls.Store(0)
	if err := follower.LinearizableRead(ctx); !errors.Is(err, storage.ErrNotLeader) || calls.Load() < 3 {
		t.Fatalf("read: %v after %d calls", err, calls.Load())
	}
}

// TestForward_ReadAsksAgainAfterALostRequest: a follower's read-index
// request that never gets an answer (lost on the way: a peer's actor
// connection was being re-established) must leave time to ask again within
// LeaderWaitTimeout. Before, one request could take ApplyTimeout (5 s), more
// than the whole 2 s budget: a calendar activation failed with 503 in
// Test_Cluster_GracefulLeaveLosesNoRequest.
func TestForward_ReadAsksAgainAfterALostRequest(t *testing.T) {
	stores, _ := st.MustOpenInmemClusterWith(t, 3, storage.LocalConfig())
	leader := st.WaitLeader(t, stores...)
	follower := stores[0]
	if follower == leader {
		follower = stores[1]
	}
	var calls atomic.Int32
	follower.SetForwarder(lostOnceForwarder{calls: &calls, leader: leader})
	if err := follower.LinearizableRead(context.Background()); err != nil {
		t.Fatalf("read after one lost request: %v (%d requests)", err, calls.Load())
	}
	if calls.Load() < 2 {
		t.Fatalf("%d read-index requests, want the lost one and another", calls.Load())
	}
}

// lostOnceForwarder loses its first read-index request (no answer until the
// caller gives up) and serves the others on leader.
type lostOnceForwarder struct {
	calls  *atomic.Int32
	leader *storage.Store
}

func (f lostOnceForwarder) Propose(context.Context, raft.ServerID, raft.ServerAddress, *bookingv1.Command) (*bookingv1.CommandResult, error) {
	return nil, errors.New("not used")
}

func (f lostOnceForwarder) ReadIndex(ctx context.Context, _ raft.ServerID, _ raft.ServerAddress) (uint64, error) {
	if f.calls.Add(1) == 1 {
		<-ctx.Done()
		return 0, fmt.Errorf("lost: %w", ctx.Err())
	}
	return f.leader.ReadIndexLocal(ctx)
}

type failingForwarder struct {
	calls *atomic.Int32
	err   error
}

func (f failingForwarder) Propose(context.Context, raft.ServerID, raft.ServerAddress, *bookingv1.Command) (*bookingv1.CommandResult, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return nil, errors.New("connection reset by peer")
}

func (f failingForwarder) ReadIndex(context.Context, raft.ServerID, raft.ServerAddress) (uint64, error) {
	f.calls.Add(1)
	return 0, errors.New("connection reset by peer")
}

// TestFailover_LeaderLost kills the leader of a 3-node group (Close without
// handover, or cut off from everyone) while writers
// on the survivors keep proposing keyed bookings through their own store.
// A proposal started right after the kill must succeed within
// LeaderWaitTimeout; every acknowledged booking must be on both survivors;
// after heal (disconnect case) all three digests are equal.
func TestFailover_LeaderLost(t *testing.T) {
	for _, mode := range []string{"shutdown", "disconnect"} {
		t.Run(mode, func(t *testing.T) { testFailover(t, mode) })
	}
}

func testFailover(t *testing.T, mode string) {
	cfg := storage.LocalConfig()
	cfg.CloseTransferTimeout = -1 // a kill, not a graceful leave
	stores, trans := st.MustOpenInmemClusterWith(t, 3, cfg)
	router := st.NewRouter(stores...)
	old, survivors := stores[0], stores[1:]
	ctx := context.Background()
	mustPropose(t, old, st.CreateProvider(st.Provider("p")))
	oldTerm := old.Stats().Term

	var (
		seq   atomic.Int64
		mu    sync.Mutex
		acked []string
		fails []string
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := range 4 {
		s := survivors[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := seq.Add(1)
				id := fmt.Sprint("b", i)
				off := time.Duration(i) * hour
				cmd := st.WithKey(st.CreateBooking(st.Booking(id, "p", off, off+min30, off+min30)), "key-"+id, "h")
				_, err := s.Propose(ctx, cmd)
				mu.Lock()
				if err == nil {
					acked = append(acked, id)
				} else {
					fails = append(fails, err.Error())
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)

	killed := time.Now()
	router.SetDown(old.ID(), true)
	switch mode {
	case "shutdown":
		if err := old.Close(); err != nil { // raft and batcher down, no handover
			t.Fatal(err)
		}
	case "disconnect":
		trans[0].DisconnectAll()
		for _, tr := range trans[1:] {
			tr.Disconnect(trans[0].LocalAddr())
		}
	}
	res, err := survivors[0].Propose(ctx, st.WithKey(st.CreateBooking(st.Booking("after", "p", -hour, -min30, -min30)), "key-after", "h"))
	took := time.Since(killed)
	if err != nil {
		t.Fatalf("Propose after leader loss failed after %s: %v", took, err)
	}
	if took > 2*storage.LocalConfig().LeaderWaitTimeout {
		t.Fatalf("Propose after leader loss took %s", took)
	}
	newLeader := st.WaitLeader(t, survivors...)
	t.Logf("leader %s lost; write acknowledged %s later (index %d) by new leader %s, term %d -> %d",
		old.ID(), took, res.Index, newLeader.ID(), oldTerm, newLeader.Stats().Term)
	time.Sleep(100 * time.Millisecond) // writes on the new leader
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(fails) > 0 {
		t.Fatalf("%d keyed writes on survivors failed, e.g. %s", len(fails), fails[0])
	}
	acked = append(acked, "after")
	if len(acked) < 10 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	for _, s := range survivors {
		if err := s.LinearizableRead(ctx); err != nil {
			t.Fatal(err)
		}
		for _, id := range acked {
			if _, err := s.Booking(ctx, id); err != nil {
				t.Fatalf("acknowledged %s missing on %s: %v", id, s.ID(), err)
			}
		}
	}
	group := survivors
	if mode == "disconnect" {
		for _, tr := range trans[1:] {
			tr.Connect(trans[0].LocalAddr(), trans[0])
			trans[0].Connect(tr.LocalAddr(), tr)
		}
		router.SetDown(old.ID(), false)
		group = stores
	}
	waitSameDigest(t, group)
	t.Logf("%d writes acknowledged, digests equal on %d nodes", len(acked), len(group))
}

func waitSameDigest(t *testing.T, stores []*storage.Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		want, _ := stores[0].Digest()
		same := true
		for _, s := range stores[1:] {
			if got, _ := s.Digest(); !bytes.Equal(got, want) || s.Stats().AppliedIndex != stores[0].Stats().AppliedIndex {
				same = false
			}
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			for _, s := range stores {
				t.Logf("%s: %+v", s.ID(), s.Stats())
			}
			t.Fatal("digests differ")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openJoiners opens n stores (ids node2..) on InmemTransports connected to
// each other and to the given ones, not bootstrapped.
func openJoiners(t *testing.T, n int, existing []*raft.InmemTransport) ([]*storage.Store, []*raft.InmemTransport) {
	t.Helper()
	var stores []*storage.Store
	trans := existing
	for i := range n {
		_, tr := raft.NewInmemTransport("")
		for _, o := range trans {
			tr.Connect(o.LocalAddr(), o)
			o.Connect(tr.LocalAddr(), tr)
		}
		trans = append(trans, tr)
		cfg := storage.LocalConfig()
		cfg.NodeID = fmt.Sprintf("node%d", len(existing)+i+1)
		cfg.Transport = tr
		stores = append(stores, st.MustOpen(t, cfg))
	}
	return stores, trans
}

func voterIDs(t *testing.T, s *storage.Store) (voters, nonVoters []string) {
	t.Helper()
	servers, err := s.Servers()
	if err != nil {
		t.Fatal(err)
	}
	for _, sv := range servers {
		if sv.Voter {
			voters = append(voters, sv.ID)
		} else {
			nonVoters = append(nonVoters, sv.ID)
		}
	}
	return voters, nonVoters
}

// TestMembership_AddRemove: six nodes join a one-node group: five voters and
// one non-voter. AddServer is idempotent; removing a voter promotes the
// non-voter; the group keeps replicating to everyone.
func TestMembership_AddRemove(t *testing.T) {
	_, tr1 := raft.NewInmemTransport("")
	cfg := storage.LocalConfig()
	cfg.NodeID, cfg.Transport, cfg.Bootstrap = "node1", tr1, true
	leader := st.MustOpen(t, cfg)
	joiners, trans := openJoiners(t, 5, []*raft.InmemTransport{tr1})
	ctx := context.Background()
	if err := joiners[0].AddServer(ctx, "x", "y"); !errors.Is(err, storage.ErrNotLeader) {
		t.Fatalf("AddServer on a non-leader: %v", err)
	}
	for _, j := range joiners {
		if err := leader.AddServer(ctx, string(j.ID()), string(j.Addr())); err != nil {
			t.Fatal(err)
		}
	}
	voters, nonVoters := voterIDs(t, leader)
	if fmt.Sprint(voters) != "[node1 node2 node3 node4 node5]" || fmt.Sprint(nonVoters) != "[node6]" {
		t.Fatalf("voters %v, non-voters %v", voters, nonVoters)
	}
	if s := leader.Stats(); s.Voters != 5 || s.NonVoters != 1 || len(s.Servers) != 6 {
		t.Fatalf("stats %+v", s)
	}

	// Idempotent: same address is a no-op (no new log entry).
	last := leader.Stats().LastLogIndex
	for _, j := range joiners {
		if err := leader.AddServer(ctx, string(j.ID()), string(j.Addr())); err != nil {
			t.Fatal(err)
		}
	}
	if got := leader.Stats().LastLogIndex; got != last {
		t.Fatalf("re-adding existing servers wrote %d entries", got-last)
	}
	// A new address is an update that keeps the suffrage. raft v1.8.0 reads
	// a replicated peer's ID without its lock after a successful append
	// while an address update rewrites it (a data race inside raft), so the
	// update is made while node6 is cut off.
	node6 := joiners[4]
	tr1.Disconnect(trans[5].LocalAddr())
	time.Sleep(20 * time.Millisecond) // let an in-flight append to node6 finish
	if err := leader.AddServer(ctx, "node6", "elsewhere"); err != nil {
		t.Fatal(err)
	}
	servers, _ := leader.Servers()
	if sv := servers[5]; sv.ID != "node6" || sv.Addr != "elsewhere" || sv.Voter {
		t.Fatalf("after address update: %+v", sv)
	}
	if err := leader.AddServer(ctx, "node6", string(node6.Addr())); err != nil {
		t.Fatal(err)
	}
	tr1.Connect(trans[5].LocalAddr(), trans[5])

	// Removing a voter promotes nobody; Promote does, once asked.
	if err := leader.RemoveServer(ctx, "node3"); err != nil {
		t.Fatal(err)
	}
	voters, nonVoters = voterIDs(t, leader)
	if fmt.Sprint(voters) != "[node1 node2 node4 node5]" || fmt.Sprint(nonVoters) != "[node6]" {
		t.Fatalf("after removing node3: voters %v, non-voters %v", voters, nonVoters)
	}
	if err := leader.Promote(ctx, "node6"); err != nil {
		t.Fatal(err)
	}
	voters, nonVoters = voterIDs(t, leader)
	if fmt.Sprint(voters) != "[node1 node2 node4 node5 node6]" || len(nonVoters) != 0 {
		t.Fatalf("after promoting node6: voters %v, non-voters %v", voters, nonVoters)
	}
	if err := leader.Promote(ctx, "node6"); err != nil {
		t.Fatalf("promoting a voter: %v", err)
	}
	if err := leader.Promote(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("promoting an unknown server: %v", err)
	}
	if err := leader.RemoveServer(ctx, "node3"); err != nil {
		t.Fatalf("removing a missing server: %v", err)
	}
	// Removing a non-voter promotes nobody.
	if err := leader.AddServer(ctx, "node3", string(joiners[1].Addr())); err != nil {
		t.Fatal(err)
	}
	if _, nv := voterIDs(t, leader); fmt.Sprint(nv) != "[node3]" {
		t.Fatalf("re-added node3 should be a non-voter, non-voters %v", nv)
	}
	if err := leader.RemoveServer(ctx, "node3"); err != nil {
		t.Fatal(err)
	}
	if v, nv := voterIDs(t, leader); len(v) != 5 || len(nv) != 0 {
		t.Fatalf("voters %v non-voters %v", v, nv)
	}
	if err := leader.AddNonvoter(ctx, "node3", string(joiners[1].Addr())); err != nil {
		t.Fatal(err)
	}
	if err := leader.Promote(ctx, "node3"); !errors.Is(err, storage.ErrTooManyVoters) {
		t.Fatalf("promoting past MaxVoters: %v", err)
	}
	if err := leader.RemoveServer(ctx, "node3"); err != nil {
		t.Fatal(err)
	}

	// Everyone in the group replicates.
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	group := []*storage.Store{leader, joiners[0], joiners[2], joiners[3], joiners[4]}
	waitSameDigest(t, group)
	for _, s := range group[1:] {
		if _, err := s.Provider(ctx, "p"); err != nil {
			t.Fatalf("%s: %v", s.ID(), err)
		}
	}
}

// TestMembership_LeaderRemovesItself: the leader removing itself leaves the
// non-voter a non-voter (it is promoted once known to be caught up); the rest
// elect a leader, which can promote it.
func TestMembership_LeaderRemovesItself(t *testing.T) {
	_, tr1 := raft.NewInmemTransport("")
	cfg := storage.LocalConfig()
	cfg.NodeID, cfg.Transport, cfg.Bootstrap, cfg.MaxVoters = "node1", tr1, true, 3
	leader := st.MustOpen(t, cfg)
	joiners, _ := openJoiners(t, 3, []*raft.InmemTransport{tr1})
	ctx := context.Background()
	for _, j := range joiners {
		if err := leader.AddServer(ctx, string(j.ID()), string(j.Addr())); err != nil {
			t.Fatal(err)
		}
	}
	if v, nv := voterIDs(t, leader); len(v) != 3 || fmt.Sprint(nv) != "[node4]" {
		t.Fatalf("voters %v non-voters %v", v, nv)
	}
	if err := leader.RemoveServer(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	nl := st.WaitLeader(t, joiners...)
	if v, nv := voterIDs(t, nl); fmt.Sprint(v) != "[node2 node3]" || fmt.Sprint(nv) != "[node4]" {
		t.Fatalf("after leader left: voters %v non-voters %v", v, nv)
	}
	mustPropose(t, nl, st.CreateProvider(st.Provider("p")))
	if err := nl.Promote(ctx, "node4"); err != nil {
		t.Fatal(err)
	}
	if v, _ := voterIDs(t, nl); fmt.Sprint(v) != "[node2 node3 node4]" {
		t.Fatalf("after promotion: voters %v", v)
	}
}

// TestMembership_LastVoterRemovesItself: a group of one voter and one
// non-voter survives its voter leaving: the non-voter is promoted first.
func TestMembership_LastVoterRemovesItself(t *testing.T) {
	_, tr1 := raft.NewInmemTransport("")
	cfg := storage.LocalConfig()
	cfg.NodeID, cfg.Transport, cfg.Bootstrap = "node1", tr1, true
	leader := st.MustOpen(t, cfg)
	joiners, _ := openJoiners(t, 1, []*raft.InmemTransport{tr1})
	ctx := context.Background()
	if err := leader.AddNonvoter(ctx, string(joiners[0].ID()), string(joiners[0].Addr())); err != nil {
		t.Fatal(err)
	}
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	waitSameDigest(t, []*storage.Store{leader, joiners[0]})
	if err := leader.RemoveServer(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	nl := st.WaitLeader(t, joiners...)
	if v, nv := voterIDs(t, nl); fmt.Sprint(v) != "[node2]" || len(nv) != 0 {
		t.Fatalf("voters %v non-voters %v", v, nv)
	}
}

// TestTransferLeadership moves the leader; the group keeps accepting writes
// (also through the old leader, which now forwards); LeaderChanges reports
// both sides of the flip.
func TestTransferLeadership(t *testing.T) {
	stores := st.MustOpenCluster(t, 3)
	st.NewRouter(stores...)
	old := stores[0]
	ctx := context.Background()
	oldCh, unsubOld := old.LeaderChanges()
	defer unsubOld()
	if v := <-oldCh; !v {
		t.Fatal("leader's first LeaderChanges value is false")
	}
	var chs []<-chan bool
	for _, s := range stores[1:] {
		ch, unsub := s.LeaderChanges()
		defer unsub()
		if v := <-ch; v {
			t.Fatal("follower's first LeaderChanges value is true")
		}
		chs = append(chs, ch)
	}
	if err := stores[1].TransferLeadership(ctx); !errors.Is(err, storage.ErrNotLeader) {
		t.Fatalf("TransferLeadership on follower: %v", err)
	}
	mustPropose(t, old, st.CreateProvider(st.Provider("p")))
	if err := old.TransferLeadership(ctx); err != nil {
		t.Fatal(err)
	}
	id, _ := old.Leader()
	if id == "" || id == old.ID() || old.IsLeader() {
		t.Fatalf("leader after transfer: %q (old %s, still leader %v)", id, old.ID(), old.IsLeader())
	}
	select {
	case v := <-oldCh:
		if v {
			t.Fatal("old leader notified true")
		}
	case <-time.After(time.Second):
		t.Fatal("old leader not notified")
	}
	got := false
	for i, s := range stores[1:] {
		if s.ID() == id {
			select {
			case v := <-chs[i]:
				got = v
			case <-time.After(time.Second):
			}
		}
	}
	if !got {
		t.Fatal("new leader not notified true")
	}
	for i, s := range stores {
		off := time.Duration(i) * hour
		if _, err := s.Propose(ctx, st.CreateBooking(st.Booking(fmt.Sprint("b", i), "p", off, off+min30, off+min30))); err != nil {
			t.Fatalf("write via %s after transfer: %v", s.ID(), err)
		}
	}
	unsubOld()
	if _, ok := <-oldCh; ok {
		t.Fatal("channel open after unsubscribe")
	}

	single := st.MustOpen(t, st.Config(t))
	if err := single.TransferLeadership(ctx); !errors.Is(err, storage.ErrNoOtherVoter) {
		t.Fatalf("single node: %v", err)
	}
}

// TestClose_HandsLeadershipOver: closing the leader of a 3-node group
// transfers leadership first, so a survivor leads sooner than any follower
// could time out the old leader (HeartbeatTimeout).
func TestClose_HandsLeadershipOver(t *testing.T) {
	stores := st.MustOpenCluster(t, 3)
	old := stores[0]
	start := time.Now()
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	closed := time.Since(start)
	nl := st.WaitLeader(t, stores[1:]...)
	took := time.Since(start)
	t.Logf("Close took %s; %s leads %s after Close began", closed, nl.ID(), took)
	if hb := storage.LocalConfig().HeartbeatTimeout; took >= hb {
		t.Fatalf("new leader after %s >= HeartbeatTimeout %s: no handover on Close", took, hb)
	}
	ch, _ := old.LeaderChanges()
	if _, ok := <-ch; ok {
		t.Fatal("LeaderChanges after Close returned an open channel")
	}
}

// TestStats_Cluster checks the cluster fields of Stats.
func TestStats_Cluster(t *testing.T) {
	stores := st.MustOpenCluster(t, 3)
	l, f := stores[0].Stats(), stores[1].Stats()
	if l.Term == 0 || l.LeaderID != string(stores[0].ID()) || l.Voters != 3 || l.NonVoters != 0 || len(l.Servers) != 3 || l.LastContact != 0 {
		t.Fatalf("leader stats %+v", l)
	}
	if f.Term != l.Term || f.LeaderID != l.LeaderID || f.LastContact < 0 || f.LastContact > time.Second {
		t.Fatalf("follower stats %+v", f)
	}
}

// TestErrorKinds: sentinels survive the round trip a Forwarder makes.
func TestErrorKinds(t *testing.T) {
	orig := fmt.Errorf("%w: %w: boom", storage.ErrNotLeader, storage.ErrOutcomeUnknown)
	got := storage.ErrorFromKinds(storage.ErrorKinds(orig), orig.Error())
	if !errors.Is(got, storage.ErrNotLeader) || !errors.Is(got, storage.ErrOutcomeUnknown) || errors.Is(got, storage.ErrClosed) || got.Error() != orig.Error() {
		t.Fatalf("round trip: %v %v", storage.ErrorKinds(orig), got)
	}
	if got := storage.ErrorFromKinds(nil, "x"); errors.Is(got, storage.ErrNotLeader) || got.Error() != "x" {
		t.Fatalf("no kinds: %v", got)
	}
}
