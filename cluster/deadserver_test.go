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
	var cut atomic.Bool
	const leaderIP = "127.0.0.21"
	start := func(id, city, ip string, join []string, expect int) *cluster.Node {
		return clustertest.MustStartNode(t, func(c *cluster.Config) {
			c.ID, c.City, c.Bind, c.Join, c.BootstrapExpect = id, city, ip, join, expect
			c.DeadServerTimeout = 2 * time.Second
			c.Membership.Drop = func(peer string) bool {
				return cut.Load() && (ip == leaderIP) != (peer == leaderIP)
			}
		})
	}
	a := start("ba-1", "buenos-aires", leaderIP, nil, 1)
	start("cba-1", "cordoba", "127.0.0.22", []string{a.GossipAddr()}, 0)
	start("ros-1", "rosario", "127.0.0.23", []string{a.GossipAddr()}, 0)
	voters := func() int { return a.Store().Stats().Voters }
	deadline := time.Now().Add(20 * time.Second)
	for voters() < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if voters() != 3 || !a.Store().IsLeader() {
		t.Fatalf("setup: voters %d, leader %v", voters(), a.Store().IsLeader())
	}
	cut.Store(true)
	deadline = time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		if st := a.Store().Stats(); st.Voters < 3 {
			t.Fatalf("gossip cut only, Raft fine: voters now %+v (leader %s)", st.Servers, st.LeaderID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
