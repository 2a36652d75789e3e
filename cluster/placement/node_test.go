package placement_test

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/barberpro/edge/cluster/membership"
	mt "github.com/barberpro/edge/cluster/membership/membershiptest"
	"github.com/barberpro/edge/cluster/placement"
)

// whoAmI is the test grain: any StringValue is answered with the node id.
func whoAmI(nodeID string) *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*wrapperspb.StringValue); ok {
			ctx.Respond(wrapperspb.String(nodeID))
		}
	})
}

// phantoms wraps a real Membership and adds members that exist only in this
// process's view (no actor system behind them), so a single-remote test can
// change the topology under the race detector.
type phantoms struct {
	*membership.Membership
	mu    sync.Mutex
	extra []membership.Member
}

func (p *phantoms) set(ms ...membership.Member) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.extra = ms
}

func (p *phantoms) Members() []membership.Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append(p.Membership.Members(), p.extra...)
}

func (p *phantoms) MemberByActorID(id string) (membership.Member, bool) {
	p.mu.Lock()
	for _, m := range p.extra {
		if m.MemberID() == id {
			p.mu.Unlock()
			return m, true
		}
	}
	p.mu.Unlock()
	return p.Membership.MemberByActorID(id)
}

// singleNode is one real node (membership, actor system, remote, Provider,
// Lookup) whose topology the subtests change with phantom members. Each
// subtest uses its own kind, so activation counts do not mix.
//
// One node for all of them: protoactor's Remote.Start writes grpc's global
// logger (grpclog.SetLoggerV2), which the race detector reports against the
// grpc goroutines an earlier remote of the process left dialing its phantoms.
type singleNode struct {
	src     *phantoms
	system  *actor.ActorSystem
	c       *cluster.Cluster
	lookup  *placement.Lookup
	resyncs atomic.Int32 // Resync messages the grains received
}

// The kinds the single node hosts, one per subtest that counts activations.
const (
	kindCalendar = "calendar-ar" // PlacementFollowsTopology, MemberBackFromDeadRejoins
	kindStale    = "stale-ar"    // StaleActivationStops
	kindResync   = "resync-ar"   // EndedDuplicateResyncsSurvivor
)

func startSingleNode(t *testing.T) *singleNode {
	logger := mt.Logger().With("node", "ba-1")
	mc := mt.Config("ba-1", "buenos-aires", "ar", "127.0.0.41")
	mc.Logger = logger
	n := &singleNode{src: &phantoms{Membership: mt.MustStart(t, mc)}}
	n.system = placement.NewActorSystem(n.src.Local().MemberID(), logger, slog.LevelWarn)
	provider, err := placement.NewProvider(placement.ProviderConfig{Membership: n.src, ResyncInterval: 50 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	lc := placement.LocalLookupConfig()
	lc.Directory, lc.Logger = n.src, logger
	if n.lookup, err = placement.NewLookup(lc); err != nil {
		t.Fatal(err)
	}
	grain := actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *placement.Resync:
			n.resyncs.Add(1)
		case *wrapperspb.StringValue:
			ctx.Respond(wrapperspb.String("ba-1"))
		}
	})
	var kinds []*cluster.Kind
	for _, k := range []string{kindCalendar, kindStale, kindResync} {
		kinds = append(kinds, cluster.NewKind(k, grain))
	}
	n.c = cluster.New(n.system, cluster.Configure("barberpro-test", provider, n.lookup, remote.Configure("127.0.0.41", 0),
		cluster.WithKinds(kinds...), cluster.WithRequestTimeout(time.Second), placement.GossipOff()))
	n.c.StartMember()
	t.Cleanup(func() { n.c.Shutdown(false) })
	return n
}

func (n *singleNode) ask(id, kind string) (string, error) {
	res, err := n.c.Request(id, kind, wrapperspb.String("who"), cluster.WithTimeout(time.Second))
	if err != nil {
		return "", err
	}
	return res.(*wrapperspb.StringValue).Value, nil
}

func (n *singleNode) count(kind string) int32 { k, _ := n.c.TryGetClusterKind(kind); return k.Count() }

// phantom is a member with no actor system behind it.
func phantom(nodeID, bootID, city, jurisdiction, addr string, kinds ...string) membership.Member {
	return membership.Member{State: membership.StateAlive, Meta: membership.Meta{
		NodeID: nodeID, BootID: bootID, City: city, Jurisdiction: jurisdiction, ActorAddr: addr, Kinds: kinds}}
}

func Test_SingleNode(t *testing.T) {
	n := startSingleNode(t)
	// Provider advertised the actor address and kinds through membership.
	self := n.src.Local()
	if want := []string{kindCalendar, cluster.TopicActorKind, kindResync, kindStale}; self.ActorAddr != n.system.Address() || !slices.Equal(self.Kinds, want) {
		t.Fatalf("advertised meta %+v (actor system at %s), want kinds %v", self.Meta, n.system.Address(), want)
	}
	mt.WaitFor(t, 3*time.Second, "self in the topology", func() bool { return len(n.lookup.Candidates()) == 1 })

	for _, sub := range []struct {
		name string
		run  func(*testing.T, *singleNode)
	}{
		{"PlacementFollowsTopology", placementFollowsTopology},
		{"StaleActivationStops", staleActivationStops},
		{"MemberBackFromDeadRejoins", memberBackFromDeadRejoins},
		{"EndedDuplicateResyncsSurvivor", endedDuplicateResyncsSurvivor},
	} {
		n.src.set()
		mt.WaitFor(t, 3*time.Second, "only self in the topology", func() bool { return len(n.lookup.Candidates()) == 1 })
		if !t.Run(sub.name, func(t *testing.T) { sub.run(t, n) }) {
			return
		}
	}
}

// placementFollowsTopology moves a phantom Córdoba node in and out of the
// topology.
func placementFollowsTopology(t *testing.T, n *singleNode) {
	// Concurrent requests for a Córdoba provider: no Córdoba node, so here, once.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := n.ask("prv_cordoba_p1", kindCalendar); err != nil || got != "ba-1" {
				t.Errorf("ask: %q %v", got, err)
			}
		}()
	}
	wg.Wait()
	if got, err := n.ask("prv_buenos-aires_p2", kindCalendar); err != nil || got != "ba-1" {
		t.Fatalf("ask: %q %v", got, err)
	}
	if c := n.count(kindCalendar); c != 2 {
		t.Fatalf("%d activations, want 2 (one per identity)", c)
	}
	if _, err := n.c.Request("prv_us-east_p3", "calendar-us", wrapperspb.String("who"), cluster.WithTimeout(300*time.Millisecond)); err == nil {
		t.Fatal("a kind no node hosts answered")
	}
	if _, err := n.lookup.Owner("prv_us-east_p3", "calendar-us"); !errors.Is(err, placement.ErrNoMember) {
		t.Fatalf("Owner: %v", err)
	}

	// A Córdoba node appears: the Córdoba calendar is no longer ours and stops;
	// the Buenos Aires one stays.
	n.src.set(phantom("cba-1", "b1", "cordoba", "ar", "127.0.0.42:1", kindCalendar))
	mt.WaitFor(t, 3*time.Second, "topology with cba-1", func() bool { return len(n.lookup.Candidates()) == 2 })
	mt.WaitFor(t, 3*time.Second, "the Córdoba calendar moves away", func() bool { return n.count(kindCalendar) == 1 })
	if o, err := n.lookup.Owner("prv_cordoba_p1", kindCalendar); err != nil || o.NodeID != "cba-1" {
		t.Fatalf("Owner: %+v %v", o, err)
	}
	if got, err := n.ask("prv_buenos-aires_p2", kindCalendar); err != nil || got != "ba-1" {
		t.Fatalf("the Buenos Aires calendar: %q %v", got, err)
	}

	// A US node hosting calendar-ar (misconfigured) is never chosen.
	n.src.set(phantom("use-1", "b1", "us-east", "us", "127.0.0.43:1", kindCalendar))
	mt.WaitFor(t, 3*time.Second, "topology with use-1 instead of cba-1", func() bool {
		cs := n.lookup.Candidates()
		return len(cs) == 2 && slices.ContainsFunc(cs, func(c placement.Candidate) bool { return c.NodeID == "use-1" })
	})
	for _, id := range []string{"prv_cordoba_p1", "prv_us-east_p4", "prv_rosario_p5"} {
		if got, err := n.ask(id, kindCalendar); err != nil || got != "ba-1" {
			t.Fatalf("%s: %q %v", id, got, err)
		}
	}
}

// staleActivationStops: a requester whose view of the topology is older than
// this node's has it activate an identity that, by this node's view, belongs to
// another member (as happens while a healed partition's views converge). No
// topology change follows, yet the activation must stop within seconds:
// otherwise it lives on beside the owner's until it idles out.
func staleActivationStops(t *testing.T, n *singleNode) {
	n.src.set(phantom("cba-1", "s1", "cordoba", "ar", "127.0.0.45:1", kindStale))
	mt.WaitFor(t, 3*time.Second, "cba-1 in the topology", func() bool { return len(n.lookup.Candidates()) == 2 })
	if o, err := n.lookup.Owner("prv_cordoba_s1", kindStale); err != nil || o.NodeID != "cba-1" {
		t.Fatalf("Owner: %+v %v", o, err)
	}

	// The requester's (older) view names ba-1: it asks ba-1's placement actor.
	ci := cluster.NewClusterIdentity("prv_cordoba_s1", kindStale)
	res, err := n.system.Root.RequestFuture(actor.NewPID(n.system.Address(), placement.ActivatorName),
		&cluster.ActivationRequest{ClusterIdentity: ci}, time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	resp, ok := res.(*cluster.ActivationResponse)
	if !ok || resp.Failed || resp.Pid == nil {
		t.Fatalf("activation: %+v", res)
	}
	if got, err := n.system.Root.RequestFuture(resp.Pid, wrapperspb.String("who"), time.Second).Result(); err != nil || got.(*wrapperspb.StringValue).Value != "ba-1" {
		t.Fatalf("the activation does not answer: %v %v", got, err)
	}
	if c := n.count(kindStale); c != 1 {
		t.Fatalf("%d activations, want 1", c)
	}
	took := mt.WaitFor(t, 5*time.Second, "the activation ba-1 does not own stops", func() bool { return n.count(kindStale) == 0 })
	t.Logf("STALE: stopped %v after its activation", took)
}

// memberBackFromDeadRejoins: a member that leaves the topology (declared
// dead) and comes back with the same boot id (it was only cut off) is a
// candidate again, under a new incarnation of its member id: protoactor blocks
// every member id that left, for good.
func memberBackFromDeadRejoins(t *testing.T, n *singleNode) {
	cba := phantom("cba-1", "d1", "cordoba", "ar", "127.0.0.50:1", kindCalendar)
	owner := func() string {
		o, err := n.lookup.Owner("prv_cordoba_d1", kindCalendar)
		if err != nil {
			return err.Error()
		}
		return o.NodeID + "@" + o.BootID + " " + o.City
	}
	var ids []string
	for round := range 3 {
		n.src.set(cba)
		mt.WaitFor(t, 3*time.Second, fmt.Sprintf("round %d: cba-1 in the topology", round), func() bool { return len(n.lookup.Candidates()) == 2 })
		if got := owner(); got != "cba-1@d1 cordoba" {
			t.Fatalf("round %d: owner %q", round, got)
		}
		for _, cand := range n.lookup.Candidates() {
			if cand.NodeID == "cba-1" {
				ids = append(ids, cand.MemberID)
			} else if cand.MemberID != n.system.ID {
				t.Fatalf("this node is %q in its own topology, want its actor system id %q", cand.MemberID, n.system.ID)
			}
		}
		n.src.set() // declared dead
		mt.WaitFor(t, 3*time.Second, fmt.Sprintf("round %d: cba-1 out of the topology", round), func() bool { return len(n.lookup.Candidates()) == 1 })
	}
	if len(ids) != 3 || ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Fatalf("incarnations %v, want three different ones", ids)
	}
	for _, id := range ids {
		if placement.BaseMemberID(id) != "cba-1@d1" {
			t.Fatalf("BaseMemberID(%q) = %q", id, placement.BaseMemberID(id))
		}
	}
	if blocked := n.c.GetBlockedMembers(); blocked.Contains("cba-1@d1") || blocked.Contains(n.system.ID) {
		t.Fatalf("a real actor system id is blocked: %v", blocked.ToSlice())
	}
}

// endedDuplicateResyncsSurvivor: when another member reports
// (ActivationTerminated broadcast) that its activation of an identity this
// node also hosts has stopped, this node's activation is told to Resync: the
// two ran side by side, and the survivor may lack the other's writes.
func endedDuplicateResyncsSurvivor(t *testing.T, n *singleNode) {
	if _, err := n.ask("prv_buenos-aires_r1", kindResync); err != nil {
		t.Fatal(err)
	}
	before := n.resyncs.Load()
	ci := cluster.NewClusterIdentity("prv_buenos-aires_r1", kindResync)
	// A broadcast about the identity's other activation (elsewhere) ending...
	n.system.EventStream.Publish(&cluster.ActivationTerminated{Pid: actor.NewPID("127.0.0.47:1", kindResync+"/prv_buenos-aires_r1$1"), ClusterIdentity: ci})
	mt.WaitFor(t, 3*time.Second, "the surviving activation is told to resync", func() bool { return n.resyncs.Load() == before+1 })
	// ...but not one about an identity this node does not host, nor about this
	// node's own activation (the placement actor handles them in order, so the
	// second resync of r1 comes after both were ignored).
	other := cluster.NewClusterIdentity("prv_buenos-aires_r2", kindResync)
	n.system.EventStream.Publish(&cluster.ActivationTerminated{Pid: actor.NewPID("127.0.0.47:1", kindResync+"/prv_buenos-aires_r2$1"), ClusterIdentity: other})
	own, _ := n.c.PidCache.Get("prv_buenos-aires_r1", kindResync)
	if own == nil {
		t.Fatal("no cached PID of the local activation")
	}
	n.system.EventStream.Publish(&cluster.ActivationTerminated{Pid: own, ClusterIdentity: ci})
	n.system.EventStream.Publish(&cluster.ActivationTerminated{Pid: actor.NewPID("127.0.0.48:1", kindResync+"/prv_buenos-aires_r1$2"), ClusterIdentity: ci})
	mt.WaitFor(t, 3*time.Second, "the second resync", func() bool { return n.resyncs.Load() >= before+2 })
	if got := n.resyncs.Load() - before; got != 2 {
		t.Fatalf("%d resyncs, want 2", got)
	}
}
