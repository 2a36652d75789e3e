package membership_test

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster/membership"
	mt "github.com/barberpro/edge/cluster/membership/membershiptest"
)

// deathBound is how long LocalConfig may take to declare a crashed node dead on
// a loaded test machine (nominally ~1 s: 200 ms probes, 600 ms suspicion).
const deathBound = 3 * time.Second

func startThree(t *testing.T, key []byte) []*membership.Membership {
	t.Helper()
	c1 := mt.Config("ba-1", "buenos-aires", "ar", "127.0.0.21")
	c1.Meta.RaftAddr, c1.Meta.ActorAddr, c1.Meta.HTTPAddr = "127.0.0.21:7000", "127.0.0.21:8090", "127.0.0.21:8080"
	c1.Meta.Kinds = []string{"calendar-ar"}
	c1.SecretKey = key
	n1 := mt.MustStart(t, c1)
	nodes := []*membership.Membership{n1}
	for _, n := range []struct{ id, city, jur, ip string }{
		{"cba-1", "cordoba", "ar", "127.0.0.22"},
		{"use-1", "us-east", "us", "127.0.0.23"},
	} {
		c := mt.Config(n.id, n.city, n.jur, n.ip, n1.GossipAddr())
		c.SecretKey = key
		nodes = append(nodes, mt.MustStart(t, c))
	}
	for _, n := range nodes {
		mt.WaitFor(t, 5*time.Second, n.Local().NodeID+" sees 3 members", func() bool { return len(n.Members()) == 3 })
	}
	return nodes
}

func Test_MultiNode_JoinAndMetaRoundTrip(t *testing.T) {
	nodes := startThree(t, []byte("0123456789abcdef"))
	want := nodes[0].Local().Meta
	for _, n := range nodes {
		ms := n.Members()
		ids := []string{ms[0].NodeID, ms[1].NodeID, ms[2].NodeID}
		if !slices.Equal(ids, []string{"ba-1", "cba-1", "use-1"}) {
			t.Fatalf("%s: members %v not sorted by node id", n.Local().NodeID, ids)
		}
		got := ms[0].Meta
		if got.BootID != want.BootID || got.City != "buenos-aires" || got.Jurisdiction != "ar" ||
			got.RaftAddr != want.RaftAddr || got.ActorAddr != want.ActorAddr || got.HTTPAddr != want.HTTPAddr ||
			!slices.Equal(got.Kinds, want.Kinds) {
			t.Fatalf("%s sees ba-1 as %+v, want %+v", n.Local().NodeID, got, want)
		}
		if ms[0].State != membership.StateAlive || ms[0].Addr != nodes[0].GossipAddr() {
			t.Fatalf("state/addr: %+v", ms[0])
		}
	}

	// A meta update reaches the others as an Update event.
	events, cancel := nodes[2].Subscribe()
	defer cancel()
	if err := nodes[1].UpdateMeta(func(m *membership.Meta) { m.ActorAddr = "127.0.0.22:9999"; m.Kinds = []string{"calendar-ar"} }); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(3 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Type == membership.EventUpdate && ev.Member.NodeID == "cba-1" && ev.Member.ActorAddr == "127.0.0.22:9999" {
				return
			}
		case <-deadline:
			t.Fatal("no update event for cba-1")
		}
	}
}

func Test_MultiNode_UpdateMetaRejectsIdentityChange(t *testing.T) {
	n := mt.MustStart(t, mt.Config("lp-1", "la-plata", "ar", "127.0.0.24"))
	if err := n.UpdateMeta(func(m *membership.Meta) { m.City = "rosario" }); !errors.Is(err, membership.ErrBadMeta) {
		t.Fatalf("got %v", err)
	}
}

func Test_MultiNode_GracefulLeaveShowsLeft(t *testing.T) {
	nodes := startThree(t, nil)
	events, cancel := nodes[0].Subscribe()
	defer cancel()
	if err := nodes[2].Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := nodes[2].Local().State; got != membership.StateLeft {
		t.Fatalf("leaver sees itself as %q", got)
	}
	for _, n := range nodes[:2] {
		took := mt.WaitFor(t, 3*time.Second, "use-1 shown as left", func() bool {
			st, _ := mt.StateOf(n, "use-1")
			return st == membership.StateLeft
		})
		t.Logf("%s saw the leave after %v", n.Local().NodeID, took)
		if len(n.Members()) != 2 {
			t.Fatalf("Members still lists the leaver: %+v", n.Members())
		}
	}
	for ev := range events {
		if ev.Member.NodeID == "use-1" {
			if ev.Type != membership.EventLeave {
				t.Fatalf("event %v, want leave", ev.Type)
			}
			break
		}
	}
}

func Test_MultiNode_CrashShowsDead(t *testing.T) {
	nodes := startThree(t, nil)
	start := time.Now()
	if err := nodes[1].Shutdown(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*membership.Membership{nodes[0], nodes[2]} {
		mt.WaitFor(t, deathBound, "cba-1 shown as dead", func() bool {
			st, _ := mt.StateOf(n, "cba-1")
			return st == membership.StateDead
		})
		t.Logf("%s declared cba-1 dead %v after the crash", n.Local().NodeID, time.Since(start))
	}
}

func Test_MultiNode_RestartShowsNewBootID(t *testing.T) {
	nodes := startThree(t, nil)
	old := nodes[1].Local()
	port := old.Addr[len("127.0.0.22:"):]
	_ = nodes[1].Shutdown()

	// Same node id and address, new boot id, before anyone declared it dead.
	c := mt.Config("cba-1", "cordoba", "ar", "127.0.0.22", nodes[0].GossipAddr())
	c.BindPort = atoi(t, port)
	restarted := mt.MustStart(t, c)
	if restarted.Local().BootID == old.BootID {
		t.Fatal("same boot id")
	}
	for _, n := range []*membership.Membership{nodes[0], nodes[2]} {
		mt.WaitFor(t, 5*time.Second, "cba-1 shown alive with its new boot id", func() bool {
			st, boot := mt.StateOf(n, "cba-1")
			return st == membership.StateAlive && boot == c.Meta.BootID
		})
		if len(n.Members()) != 3 {
			t.Fatalf("the restarted node must replace its old boot: %+v", n.Members())
		}
	}

	// And once more after it has been declared dead, on a new port.
	_ = restarted.Shutdown()
	mt.WaitFor(t, deathBound, "cba-1 dead", func() bool { st, _ := mt.StateOf(nodes[0], "cba-1"); return st == membership.StateDead })
	c2 := mt.Config("cba-1", "cordoba", "ar", "127.0.0.22", nodes[2].GossipAddr())
	mt.MustStart(t, c2)
	mt.WaitFor(t, 5*time.Second, "cba-1 back after death with a new boot id", func() bool {
		st, boot := mt.StateOf(nodes[0], "cba-1")
		return st == membership.StateAlive && boot == c2.Meta.BootID
	})
}

func Test_MultiNode_WrongSecretKeyCannotJoin(t *testing.T) {
	c1 := mt.Config("ba-1", "buenos-aires", "ar", "127.0.0.25")
	c1.SecretKey = []byte("0123456789abcdef")
	n1 := mt.MustStart(t, c1)

	c2 := mt.Config("ros-1", "rosario", "ar", "127.0.0.26", n1.GossipAddr())
	c2.SecretKey = []byte("fedcba9876543210")
	c2.JoinTimeout = 500 * time.Millisecond
	m2, err := membership.New(c2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m2.Shutdown() })
	if err := m2.Start(); !errors.Is(err, membership.ErrJoin) {
		t.Fatalf("join with the wrong key: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := n1.Members(); len(got) != 1 {
		t.Fatalf("the cluster accepted a node with the wrong key: %+v", got)
	}

	// Plaintext is refused too.
	c3 := mt.Config("ros-2", "rosario", "ar", "127.0.0.27", n1.GossipAddr())
	c3.JoinTimeout = 500 * time.Millisecond
	m3, _ := membership.New(c3)
	t.Cleanup(func() { _ = m3.Shutdown() })
	if err := m3.Start(); !errors.Is(err, membership.ErrJoin) {
		t.Fatalf("join without a key: %v", err)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			t.Fatalf("bad port %q", s)
		}
		n = n*10 + int(r-'0')
	}
	return n
}

// Test_MultiNode_DropPartitionsAndHeals: Config.Drop cuts a node off like a
// firewall, both ways: each side declares the other dead. Once the cut is
// lifted, joining the dead members' addresses (as cluster.Node does) merges the
// halves again, each node under the boot id it had.
func Test_MultiNode_DropPartitionsAndHeals(t *testing.T) {
	var cut atomic.Bool
	isolated := "127.0.0.30"
	drop := func(self string) func(string) bool {
		return func(peer string) bool { return cut.Load() && (self == isolated) != (peer == isolated) }
	}
	var nodes []*membership.Membership
	for i, ip := range []string{"127.0.0.28", "127.0.0.29", isolated} {
		var join []string
		if i > 0 {
			join = []string{nodes[0].GossipAddr()}
		}
		c := mt.Config(fmt.Sprintf("n%d", i), "cordoba", "ar", ip, join...)
		c.Drop = drop(ip)
		nodes = append(nodes, mt.MustStart(t, c))
	}
	for _, n := range nodes {
		mt.WaitFor(t, 5*time.Second, n.Local().NodeID+" sees 3 members", func() bool { return len(n.Members()) == 3 })
	}
	boot := nodes[2].Local().BootID

	cut.Store(true)
	for _, pair := range [][2]int{{0, 2}, {1, 2}, {2, 0}, {2, 1}} {
		a, b := nodes[pair[0]], nodes[pair[1]]
		mt.WaitFor(t, 3*deathBound, a.Local().NodeID+" declares "+b.Local().NodeID+" dead", func() bool {
			st, _ := mt.StateOf(a, b.Local().NodeID)
			return st == membership.StateDead
		})
	}
	if n, err := nodes[2].Join([]string{nodes[0].GossipAddr()}); n != 0 || err == nil {
		t.Fatalf("a join across the cut answered: %d %v", n, err)
	}

	cut.Store(false)
	for _, n := range nodes {
		mt.WaitFor(t, 5*time.Second, n.Local().NodeID+" sees 3 members again", func() bool {
			var dead []string
			for _, m := range n.AllMembers() {
				if m.State == membership.StateDead {
					dead = append(dead, m.Addr)
				}
			}
			if len(dead) > 0 {
				_, _ = n.Join(dead)
			}
			return len(n.Members()) == 3
		})
	}
	for _, n := range nodes[:2] {
		if st, b := mt.StateOf(n, "n2"); st != membership.StateAlive || b != boot {
			t.Fatalf("%s sees n2 %s with boot %s, want alive with %s", n.Local().NodeID, st, b, boot)
		}
	}
}
