package placement_test

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
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

// Test_SingleNode_PlacementFollowsTopology runs one real node (membership,
// actor system, remote, Provider, Lookup) and moves a phantom Córdoba node in
// and out of its topology.
func Test_SingleNode_PlacementFollowsTopology(t *testing.T) {
	logger := mt.Logger().With("node", "ba-1")
	mc := mt.Config("ba-1", "buenos-aires", "ar", "127.0.0.41")
	mc.Logger = logger
	src := &phantoms{Membership: mt.MustStart(t, mc)}

	system := placement.NewActorSystem(src.Local().MemberID(), logger, slog.LevelWarn)
	provider, err := placement.NewProvider(placement.ProviderConfig{Membership: src, ResyncInterval: 50 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	lc := placement.LocalLookupConfig()
	lc.Directory, lc.Logger = src, logger
	lookup, err := placement.NewLookup(lc)
	if err != nil {
		t.Fatal(err)
	}
	c := cluster.New(system, cluster.Configure("barberpro-test", provider, lookup, remote.Configure("127.0.0.41", 0),
		cluster.WithKinds(cluster.NewKind("calendar-ar", whoAmI("ba-1"))), cluster.WithRequestTimeout(time.Second), placement.GossipOff()))
	c.StartMember()
	t.Cleanup(func() { c.Shutdown(false) })

	// Provider advertised the actor address and kinds through membership.
	self := src.Local()
	if self.ActorAddr != system.Address() || !slices.Equal(self.Kinds, []string{"calendar-ar", cluster.TopicActorKind}) {
		t.Fatalf("advertised meta %+v (actor system at %s)", self.Meta, system.Address())
	}
	mt.WaitFor(t, 3*time.Second, "self in the topology", func() bool { return len(lookup.Candidates()) == 1 })

	ask := func(id string) (string, error) {
		res, err := c.Request(id, "calendar-ar", wrapperspb.String("who"), cluster.WithTimeout(time.Second))
		if err != nil {
			return "", err
		}
		return res.(*wrapperspb.StringValue).Value, nil
	}
	calendars := func() int32 { k, _ := c.TryGetClusterKind("calendar-ar"); return k.Count() }

	// Concurrent requests for a Córdoba provider: no Córdoba node, so here, once.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got, err := ask("prv_cordoba_p1"); err != nil || got != "ba-1" {
				t.Errorf("ask: %q %v", got, err)
			}
		}()
	}
	wg.Wait()
	if got, err := ask("prv_buenos-aires_p2"); err != nil || got != "ba-1" {
		t.Fatalf("ask: %q %v", got, err)
	}
	if n := calendars(); n != 2 {
		t.Fatalf("%d activations, want 2 (one per identity)", n)
	}
	if _, err := c.Request("prv_us-east_p3", "calendar-us", wrapperspb.String("who"), cluster.WithTimeout(300*time.Millisecond)); err == nil {
		t.Fatal("a kind no node hosts answered")
	}
	if _, err := lookup.Owner("prv_us-east_p3", "calendar-us"); !errors.Is(err, placement.ErrNoMember) {
		t.Fatalf("Owner: %v", err)
	}

	// A Córdoba node appears: the Córdoba calendar is no longer ours and stops;
	// the Buenos Aires one stays.
	cba := membership.Member{State: membership.StateAlive, Meta: membership.Meta{
		NodeID: "cba-1", BootID: "b1", City: "cordoba", Jurisdiction: "ar", ActorAddr: "127.0.0.42:1", Kinds: []string{"calendar-ar"}}}
	src.set(cba)
	mt.WaitFor(t, 3*time.Second, "topology with cba-1", func() bool { return len(lookup.Candidates()) == 2 })
	mt.WaitFor(t, 3*time.Second, "the Córdoba calendar moves away", func() bool { return calendars() == 1 })
	if o, err := lookup.Owner("prv_cordoba_p1", "calendar-ar"); err != nil || o.NodeID != "cba-1" {
		t.Fatalf("Owner: %+v %v", o, err)
	}
	if got, err := ask("prv_buenos-aires_p2"); err != nil || got != "ba-1" {
		t.Fatalf("the Buenos Aires calendar: %q %v", got, err)
	}

	// A US node hosting calendar-ar (misconfigured) is never chosen.
	rogue := membership.Member{State: membership.StateAlive, Meta: membership.Meta{
		NodeID: "use-1", BootID: "b1", City: "us-east", Jurisdiction: "us", ActorAddr: "127.0.0.43:1", Kinds: []string{"calendar-ar"}}}
	src.set(rogue)
	mt.WaitFor(t, 3*time.Second, "topology with use-1 instead of cba-1", func() bool {
		cs := lookup.Candidates()
		return len(cs) == 2 && slices.ContainsFunc(cs, func(c placement.Candidate) bool { return c.NodeID == "use-1" })
	})
	for _, id := range []string{"prv_cordoba_p1", "prv_us-east_p4", "prv_rosario_p5"} {
		if got, err := ask(id); err != nil || got != "ba-1" {
			t.Fatalf("%s: %q %v", id, got, err)
		}
	}
}
