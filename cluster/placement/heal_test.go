//go:build !race

// Several protoactor remotes in one process: built without -race, see
// cluster_test.go.

package placement_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster/membership"
	mt "github.com/barberpro/edge/cluster/membership/membershiptest"
)

// partition cuts loopback IPs off from each other, in-process, like a
// firewall: gossip through membership.Config.Drop, actor traffic through the
// remote's dialer (new dials fail, established connections break on their next
// read or write).
type partition struct {
	mu  sync.Mutex
	cut map[[2]string]bool
}

func newPartition() *partition { return &partition{cut: map[[2]string]bool{}} }

// split cuts every IP of a from every IP of b, both ways.
func (p *partition) split(a, b []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			p.cut[[2]string{x, y}], p.cut[[2]string{y, x}] = true, true
		}
	}
}

func (p *partition) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.cut)
}

func (p *partition) isCut(from, to string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut[[2]string{from, to}]
}

var errCut = errors.New("test partition: cut off")

// dial dials addr from ip unless the partition cuts them apart.
func (p *partition) dial(ip string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if p.isCut(ip, host) {
			return nil, errCut
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &cutConn{Conn: c, cut: func() bool { return p.isCut(ip, host) }}, nil
	}
}

// cutConn breaks once its partition cuts the two ends apart.
type cutConn struct {
	net.Conn
	cut func() bool
}

func (c *cutConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err == nil && c.cut() {
		_ = c.Conn.Close()
		return 0, errCut
	}
	return n, err
}

func (c *cutConn) Write(b []byte) (int, error) {
	if c.cut() {
		_ = c.Conn.Close()
		return 0, errCut
	}
	return c.Conn.Write(b)
}

// knock does what cluster.Node's keepPeers does: it keeps joining the members
// gossip declared dead (memberlist stops talking to them after
// GossipToTheDeadTime), so the halves of a healed split merge again.
func knock(t *testing.T, nodes []*testNode) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, n := range nodes {
		go func() {
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				var dead []string
				for _, m := range n.m.AllMembers() {
					if m.State == membership.StateDead {
						dead = append(dead, m.Addr)
					}
				}
				if len(dead) > 0 {
					_, _ = n.m.Join(dead)
				}
			}
		}()
	}
}

// activations is how many activations of kind each node holds.
func activations(nodes []*testNode, kind string) (per map[string]int32, total int32) {
	per = map[string]int32{}
	for _, n := range nodes {
		k, ok := n.c.TryGetClusterKind(kind)
		if ok {
			per[n.id] = k.Count()
			total += k.Count()
		}
	}
	return per, total
}

// Test_MultiNode_LongPartitionHeals cuts ros-1 off from ba-1 and cba-1 until
// each side has declared the other dead (and stopped gossiping to it), lets
// both sides activate every calendar on their own, then heals the network.
// Within seconds every node must see all three again in its actor topology,
// requests from any node must reach each calendar's owner (through the remote
// when it is another node), and each calendar must have one activation.
func Test_MultiNode_LongPartitionHeals(t *testing.T) {
	cut := newPartition()
	specs := []nodeSpec{
		{"ba-1", "buenos-aires", "ar", "127.0.0.35", []string{"calendar-ar"}, nil},
		{"cba-1", "cordoba", "ar", "127.0.0.36", []string{"calendar-ar"}, nil},
		{"ros-1", "rosario", "ar", "127.0.0.37", []string{"calendar-ar"}, nil},
	}
	var nodes []*testNode
	for i, s := range specs {
		s.net = cut
		var join []string
		if i > 0 {
			join = []string{nodes[0].m.GossipAddr()}
		}
		nodes = append(nodes, startNode(t, s, false, join...))
	}
	ba, cba, ros := nodes[0], nodes[1], nodes[2]
	waitTopology(t, nodes, 3)
	knock(t, nodes)

	// Calendars of every city, and of cities without a node (placed by
	// rendezvous hashing over all three).
	var ids []string
	for i := range 4 {
		for _, city := range []string{"buenos-aires", "cordoba", "rosario", "la-plata", "mendoza"} {
			ids = append(ids, fmt.Sprintf("prv_%s_h%d", city, i))
		}
	}
	owners := map[string]string{}
	for _, id := range ids {
		owners[id] = ba.mustAsk(t, id, "calendar-ar")
		for _, n := range nodes[1:] {
			if got := n.mustAsk(t, id, "calendar-ar"); got != owners[id] {
				t.Fatalf("before the partition %s: ba-1 reaches it on %s, %s on %s", id, owners[id], n.id, got)
			}
		}
	}
	if _, total := activations(nodes, "calendar-ar"); total != int32(len(ids)) {
		t.Fatalf("%d activations before the partition, want %d", total, len(ids))
	}

	// The partition, past the dead timeout: each side declares the other dead.
	cut.split([]string{"127.0.0.37"}, []string{"127.0.0.35", "127.0.0.36"})
	for _, pair := range [][2]*testNode{{ba, ros}, {cba, ros}, {ros, ba}, {ros, cba}} {
		mt.WaitFor(t, 10*time.Second, pair[0].id+" declares "+pair[1].id+" dead", func() bool {
			st, _ := mt.StateOf(pair[0].m, pair[1].id)
			return st == membership.StateDead
		})
	}
	waitTopology(t, []*testNode{ba, cba}, 2)
	waitTopology(t, []*testNode{ros}, 1)
	// Each side serves every calendar on its own: the duplicates a split brings
	// (the store judges their writes).
	for _, id := range ids {
		for _, n := range nodes {
			if _, err := n.ask(id, "calendar-ar", 3*time.Second); err != nil {
				t.Fatalf("during the partition %s asks %s: %v", n.id, id, err)
			}
		}
	}
	if _, total := activations(nodes, "calendar-ar"); total <= int32(len(ids)) {
		t.Fatalf("%d activations during the partition, want the duplicates of a split", total)
	}

	// Heal.
	cut.heal()
	healed := time.Now()
	mt.WaitFor(t, 10*time.Second, "gossip merges again", func() bool {
		for _, n := range nodes {
			if len(n.m.Members()) != 3 {
				return false
			}
		}
		return true
	})
	gossip := time.Since(healed)
	for _, n := range nodes {
		mt.WaitFor(t, 5*time.Second, n.id+" has every node in its actor topology again", func() bool {
			return len(n.lookup.Candidates()) == 3
		})
	}
	topo := time.Since(healed)
	// Every node reaches every calendar on its owner again, through the remote
	// when the owner is another node.
	for _, id := range ids {
		for _, n := range nodes {
			mt.WaitFor(t, 5*time.Second, n.id+" reaches "+id+" on "+owners[id], func() bool {
				got, err := n.ask(id, "calendar-ar", time.Second)
				return err == nil && got == owners[id]
			})
		}
	}
	// One activation per calendar, on its owner.
	want := map[string]int32{}
	for _, o := range owners {
		want[o]++
	}
	mt.WaitFor(t, 5*time.Second, "one activation per calendar", func() bool {
		per, _ := activations(nodes, "calendar-ar")
		for _, n := range nodes {
			if per[n.id] != want[n.id] {
				return false
			}
		}
		return true
	})
	t.Logf("HEAL: gossip merged %v, actor topology whole %v, every calendar served once by its owner %v after the heal",
		gossip, topo, time.Since(healed))
}
