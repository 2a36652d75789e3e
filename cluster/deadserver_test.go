//go:build !race

// Several nodes (protoactor remotes) in one process: each remote.Start writes
// grpc's global logger unsynchronised, which the race detector reports (an
// upstream issue, never hit with one node per process). Built without -race, as
// cluster/placement/cluster_test.go is.

package cluster_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
)

// Test_GossipCutLeaderKeepsItsVoters: the leader's gossip is cut off (UDP/TCP
// gossip port firewalled, say) while Raft between the nodes works. Past
// DeadServerTimeout the leader's keeper removes every other voter one by one
// (each removal commits: Raft is fine), leaving a one-voter group whose only
// copy of every later write is the leader's disk, though all nodes are up.
func Test_GossipCutLeaderKeepsItsVoters(t *testing.T) {
	// The node cut off is whichever leads once the group has its three
	// voters: ba-1 founds it, but on a loaded machine leadership may have
	// moved by then (a setup that insisted on ba-1 failed in make test).
	var leaderIP atomic.Value // string; "" until chosen, nothing is dropped
	leaderIP.Store("")
	start := func(id, city, ip string, join []string, expect int) *cluster.Node {
		return clustertest.MustStartNode(t, func(c *cluster.Config) {
			c.ID, c.City, c.Bind, c.Join, c.BootstrapExpect = id, city, ip, join, expect
			c.DeadServerTimeout = 2 * time.Second
			c.Membership.Drop = func(peer string) bool {
				l := leaderIP.Load().(string)
				return l != "" && (ip == l) != (peer == l)
			}
		})
	}
	a := start("ba-1", "buenos-aires", "127.0.0.21", nil, 1)
	nodes := map[string]*cluster.Node{
		"127.0.0.21": a,
		"127.0.0.22": start("cba-1", "cordoba", "127.0.0.22", []string{a.GossipAddr()}, 0),
		"127.0.0.23": start("ros-1", "rosario", "127.0.0.23", []string{a.GossipAddr()}, 0),
	}
	var leader *cluster.Node
	var ip string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for nip, n := range nodes {
			if n.Store().IsLeader() && n.Store().Stats().Voters == 3 {
				leader, ip = n, nip
			}
		}
		if leader != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if leader == nil {
		t.Fatalf("setup: no leader with 3 voters within 20s (ba-1 sees %d voters)", a.Store().Stats().Voters)
	}
	leaderIP.Store(ip)
	deadline = time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		if st := leader.Store().Stats(); st.Voters < 3 {
			t.Fatalf("gossip cut only, Raft fine: voters now %+v (leader %s)", st.Servers, st.LeaderID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
