//go:build !race

// Several nodes (protoactor remotes) in one process: each remote.Start writes
// grpc's global logger unsynchronised, which the race detector reports (an
// upstream issue, never hit with one node per process). Built without -race, as
// cluster/placement/cluster_test.go is.

package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
)

func waitClusterID(t *testing.T, n *cluster.Node) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if id := n.Store().ClusterID(); id != "" {
			return id
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: no cluster id", n.ID())
	return ""
}

// Test_ForkedNodeRestartIsNotMerged: a node holding another group's history
// (here ba-1, which founded group Y on its own) restarts and joins the gossip
// of group X of the same jurisdiction. X's keeper must refuse it (issue 7: nodes
// of different cluster ids refuse each other), not add it and replicate X into
// Y's data dir. It gossips Founded and its cluster id only once its keeper
// runs, after the store and the actor cluster have started, while X's keeper
// reacts to the join event at once.
func Test_ForkedNodeRestartIsNotMerged(t *testing.T) {
	x := clustertest.MustStartNode(t, func(c *cluster.Config) { c.ID, c.City = "cba-1", "cordoba" })
	xid := waitClusterID(t, x)

	ydir := t.TempDir()
	y1 := clustertest.MustStartNode(t, func(c *cluster.Config) { c.DataDir = ydir })
	yid := waitClusterID(t, y1)
	p := newProvider(t, clustertest.Operator(t, y1), svc("corte", 30, 0))
	if err := y1.Stop(); err != nil {
		t.Fatalf("stop y1: %v", err)
	}

	cfg := cluster.LocalConfig()
	cfg.ID, cfg.City, cfg.BootstrapExpect, cfg.DataDir = "ba-1", "buenos-aires", 1, ydir
	cfg.Join = []string{x.GossipAddr()}
	cfg.Logger = clustertest.Logger()
	cfg.TokenKeys = clustertest.KeySet(t)
	cfg.GossipKey = clustertest.GossipKey(t)
	cfg.TLSDir = clustertest.MustTLSDir(t, cfg.ID, cfg.City, cfg.Bind)
	y2, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := y2.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { y2.Stop() })

	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		servers, _ := x.Store().Servers()
		for _, s := range servers {
			if strings.HasPrefix(s.ID, "ba-1@") {
				t.Errorf("group %s (cba-1's) added ba-1 of group %s: %+v", xid, yid, servers)
				deadline = time.Time{}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if got := y2.Store().ClusterID(); got != yid {
		t.Errorf("ba-1's cluster id %q, want %q", got, yid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := y2.Store().Provider(ctx, p.ID); err != nil {
		t.Errorf("ba-1 lost group %s's provider: %v", yid, err)
	}
	st := y2.Store().Stats()
	t.Logf("ba-1 after: cluster %s, term %d, leader %s, servers %+v", y2.Store().ClusterID(), st.Term, st.LeaderID, st.Servers)
}
