//go:build !race

// These scenarios run several protoactor remotes in one process. Each
// remote.Start calls grpclog.SetLoggerV2, an unsynchronised write to grpc's
// global logger that the race detector reports against the other nodes' grpc
// goroutines (an upstream issue; one node per process, as in production, never
// hits it). So they are built without -race; node_test.go covers the same code
// paths with a single remote under -race.

package placement_test

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/barberpro/edge/cluster/membership"
	mt "github.com/barberpro/edge/cluster/membership/membershiptest"
	"github.com/barberpro/edge/cluster/placement"
)

// testNode is one in-process node: membership, actor system, remote on its own
// loopback IP, Provider and Lookup, hosting kinds whose grains answer the node id.
type testNode struct {
	id      string
	m       *membership.Membership
	c       *cluster.Cluster
	lookup  *placement.Lookup
	once    sync.Once
	stopped bool
}

type nodeSpec struct {
	id, city, jurisdiction, ip string
	kinds                      []string
	// net, if set, is a partition that can cut the node off (heal_test.go).
	net *partition
}

// startNode starts a node's actor cluster. Unless joinLater, its membership is
// started (joining through join) first; with joinLater the node's actor system
// and remote are up but it is in no cluster until n.join is called.
//
// All nodes of a test are started before any grain traffic: protoactor's
// Remote.Start writes grpc's global logger (grpclog.SetLoggerV2), which races
// with live grpc connections of other in-process nodes. One node per process,
// as in production, never hits it.
func startNode(t *testing.T, s nodeSpec, joinLater bool, join ...string) *testNode {
	t.Helper()
	logger := mt.Logger().With("node", s.id)
	mc := mt.Config(s.id, s.city, s.jurisdiction, s.ip, join...)
	mc.Logger = logger
	ro := []remote.ConfigOption{}
	if s.net != nil {
		mc.Drop = func(peer string) bool { return s.net.isCut(s.ip, peer) }
		// Stop gossiping to members declared dead soon: a long partition, whose
		// halves only meet again because nodes knock on their dead (knock).
		mc.GossipToTheDeadTime = 300 * time.Millisecond
		ro = append(ro, remote.WithDialOptions(
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(s.net.dial(s.ip))))
	}
	m, err := membership.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{id: s.id, m: m}
	if !joinLater {
		n.join(t)
	}

	system := placement.NewActorSystem(m.Local().MemberID(), logger, slog.LevelWarn)
	provider, err := placement.NewProvider(placement.ProviderConfig{Membership: m, ResyncInterval: 500 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	lc := placement.LocalLookupConfig()
	lc.Directory, lc.Logger = m, logger
	lookup, err := placement.NewLookup(lc)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []*cluster.Kind
	for _, k := range s.kinds {
		kinds = append(kinds, cluster.NewKind(k, whoAmI(s.id)))
	}
	cfg := cluster.Configure("barberpro-test", provider, lookup, remote.Configure(s.ip, 0, ro...),
		cluster.WithKinds(kinds...), cluster.WithRequestTimeout(time.Second), placement.GossipOff())
	n.c = cluster.New(system, cfg)
	n.c.StartMember()
	n.lookup = lookup
	t.Cleanup(n.kill)
	return n
}

func (n *testNode) join(t *testing.T) {
	t.Helper()
	if err := n.m.Start(); err != nil {
		t.Fatalf("%s: %v", n.id, err)
	}
}

// kill stops the node the way a crash does: no leave, no goodbye.
func (n *testNode) kill() {
	n.once.Do(func() {
		n.stopped = true
		_ = n.m.Shutdown()
		n.c.Remote.Shutdown(false)
		n.c.ActorSystem.Shutdown()
	})
}

// ask sends one request for identity of kind and returns the answering node id.
func (n *testNode) ask(identity, kind string, timeout time.Duration) (string, error) {
	res, err := n.c.Request(identity, kind, wrapperspb.String("who"), cluster.WithTimeout(timeout))
	if err != nil {
		return "", err
	}
	sv, ok := res.(*wrapperspb.StringValue)
	if !ok {
		return "", errors.New("unexpected answer")
	}
	return sv.Value, nil
}

func (n *testNode) mustAsk(t *testing.T, identity, kind string) string {
	t.Helper()
	got, err := n.ask(identity, kind, 3*time.Second)
	if err != nil {
		t.Fatalf("%s asks %s/%s: %v", n.id, kind, identity, err)
	}
	return got
}

func waitTopology(t *testing.T, nodes []*testNode, want int) {
	t.Helper()
	for _, n := range nodes {
		mt.WaitFor(t, 5*time.Second, n.id+" sees the actor topology", func() bool {
			return len(n.lookup.Candidates()) == want
		})
	}
}

func Test_MultiNode_PlacementAffinityFailoverRestartLeave(t *testing.T) {
	ba := startNode(t, nodeSpec{"ba-1", "buenos-aires", "ar", "127.0.0.31", []string{"calendar-ar"}, nil}, false)
	cba := startNode(t, nodeSpec{"cba-1", "cordoba", "ar", "127.0.0.32", []string{"calendar-ar", "special"}, nil}, false, ba.m.GossipAddr())
	us := startNode(t, nodeSpec{"use-1", "us-east", "us", "127.0.0.33", []string{"calendar-us"}, nil}, false, ba.m.GossipAddr())
	// ba-1 after a restart: same node id, new boot id, another address. Its
	// actor system is up already (see startNode); it joins in phase 3.
	ba2 := startNode(t, nodeSpec{"ba-1", "buenos-aires", "ar", "127.0.0.34", []string{"calendar-ar"}, nil}, true, cba.m.GossipAddr())
	if ba2.m.Local().MemberID() == ba.m.Local().MemberID() {
		t.Fatal("the restarted node reuses its member id")
	}
	waitTopology(t, []*testNode{ba, cba, us}, 3)

	// Phase 1: city affinity, jurisdiction constraint, kinds registered on some
	// nodes only.
	baProviders := []string{"prv_buenos-aires_a1", "prv_buenos-aires_b2", "prv_buenos-aires_c3"}
	for _, n := range []*testNode{ba, cba, us} {
		for _, id := range baProviders {
			if got := n.mustAsk(t, id, "calendar-ar"); got != "ba-1" {
				t.Fatalf("%s: %s answered by %s, want its home city's ba-1", n.id, id, got)
			}
		}
		if got := n.mustAsk(t, "prv_cordoba_x1", "calendar-ar"); got != "cba-1" {
			t.Fatalf("%s: cordoba provider on %s", n.id, got)
		}
		for _, id := range []string{"prv_rosario_x1", "prv_rosario_x2", "prv_la-plata_x3", "prv_us-east_x4"} {
			if got := n.mustAsk(t, id, "calendar-ar"); got == "use-1" {
				t.Fatalf("the ar calendar %s activated on the US node", id)
			}
		}
		if got := n.mustAsk(t, "prv_us-east_x1", "calendar-us"); got != "use-1" {
			t.Fatalf("us provider on %s", got)
		}
		for _, id := range []string{"s1", "s2", "s3", "prv_buenos-aires_s4", "prv_us-east_s5"} {
			if got := n.mustAsk(t, id, "special"); got != "cba-1" {
				t.Fatalf("special/%s activated on %s, which does not register it", id, got)
			}
		}
	}
	if o, err := us.lookup.Owner("prv_buenos-aires_a1", "calendar-ar"); err != nil || o.NodeID != "ba-1" || o.City != "buenos-aires" || o.BootID != ba.m.Local().BootID {
		t.Fatalf("Owner: %+v %v", o, err)
	}

	k, _ := cba.c.TryGetClusterKind("calendar-ar")
	cbaBefore := k.Count()

	// Phase 2: crash the home node (no leave): its calendars re-activate on
	// another node of the jurisdiction.
	start := time.Now()
	ba.kill()
	for _, n := range []*testNode{cba, us} {
		mt.WaitFor(t, 10*time.Second, n.id+" reaches prv_buenos-aires_a1 again", func() bool {
			got, err := n.ask("prv_buenos-aires_a1", "calendar-ar", 500*time.Millisecond)
			return err == nil && got == "cba-1"
		})
		t.Logf("FAILOVER: %s got its first answer from cba-1 %v after ba-1 crashed", n.id, time.Since(start))
	}
	if failover := time.Since(start); failover > 5*time.Second {
		t.Errorf("failover took %v, want a few seconds", failover)
	}
	for _, id := range baProviders {
		if got := us.mustAsk(t, id, "calendar-ar"); got != "cba-1" {
			t.Fatalf("after failover %s on %s", id, got)
		}
	}
	if o, err := us.lookup.Owner("prv_buenos-aires_a1", "calendar-ar"); err != nil || o.NodeID != "cba-1" {
		t.Fatalf("Owner after failover: %+v %v", o, err)
	}

	// Phase 3: ba-1 restarts: its calendars go home and cba-1 stops its copies.
	ba2.join(t)
	waitTopology(t, []*testNode{cba, us, ba2}, 3)
	mt.WaitFor(t, 5*time.Second, "the calendar returns to buenos-aires", func() bool {
		got, err := us.ask("prv_buenos-aires_a1", "calendar-ar", 500*time.Millisecond)
		return err == nil && got == "ba-1"
	})
	mt.WaitFor(t, 3*time.Second, "cba-1 stops the buenos-aires calendars", func() bool {
		k, _ := cba.c.TryGetClusterKind("calendar-ar")
		return k.Count() == cbaBefore
	})

	// Phase 4: cba-1 leaves gracefully: the others drop it at once.
	start = time.Now()
	if err := cba.m.Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	mt.WaitFor(t, 3*time.Second, "use-1 drops cba-1", func() bool { return len(us.lookup.Candidates()) == 2 })
	t.Logf("LEAVE: a graceful leave reached the actor cluster in %v", time.Since(start))
	if got := us.mustAsk(t, "prv_cordoba_x1", "calendar-ar"); got != "ba-1" {
		t.Fatalf("cordoba provider after cba-1 left: on %s", got)
	}
	cba.kill()

	// Phase 5: only the US is left for ar: a clear error, no fallback abroad.
	ba2.kill()
	mt.WaitFor(t, 5*time.Second, "use-1 drops ba-1", func() bool { return len(us.lookup.Candidates()) == 1 })
	if _, err := us.lookup.Owner("prv_buenos-aires_a1", "calendar-ar"); !errors.Is(err, placement.ErrNoMember) {
		t.Fatalf("Owner with no ar node: %v", err)
	}
	if got, err := us.ask("prv_buenos-aires_a1", "calendar-ar", time.Second); err == nil {
		t.Fatalf("an ar calendar answered from %s with no ar node up", got)
	}
	if got := us.mustAsk(t, "prv_us-east_x1", "calendar-us"); got != "use-1" {
		t.Fatalf("us calendar on %s", got)
	}
	if !strings.HasPrefix(us.c.ActorSystem.ID, "use-1@") {
		t.Fatalf("actor system id %q", us.c.ActorSystem.ID)
	}
}
