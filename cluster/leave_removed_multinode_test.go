//go:build !race

package cluster_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/storage"
)

// Test_Leave_AlreadyRemovedReturnsAtOnce: a node whose removal from its Raft
// group already happened (here: by the leader, which then stopped; as when
// the group's only voter removes itself and raft answers the removal with
// "leadership lost") has nothing left to do when it leaves: Leave returns
// at once. It kept asking for a leader to remove it until its deadline.
func Test_Leave_AlreadyRemovedReturnsAtOnce(t *testing.T) {
	a := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind = "127.0.0.57" })
	b := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.ID, c.City, c.Bind, c.Join, c.BootstrapExpect = "cba-1", "cordoba", "127.0.0.58", []string{a.GossipAddr()}, 0
	})
	server := func(s *storage.Store, prefix string) string {
		servers, _ := s.Servers()
		if i := slices.IndexFunc(servers, func(s storage.Server) bool { return strings.HasPrefix(s.ID, prefix) }); i >= 0 {
			return servers[i].ID
		}
		return ""
	}
	deadline := time.Now().Add(20 * time.Second)
	for server(b.Store(), "cba-1@") == "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	id := server(b.Store(), "cba-1@")
	if id == "" {
		t.Fatal("setup: cba-1 never joined ba-1's group")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Store().RemoveServer(ctx, id); err != nil {
		t.Fatal(err)
	}
	for server(b.Store(), "cba-1@") != "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := a.Stop(); err != nil { // before its keeper adds cba-1 back
		t.Logf("stop ba-1: %v", err)
	}
	if server(b.Store(), "cba-1@") != "" {
		t.Skip("cba-1 was added back before ba-1 stopped: nothing to test")
	}
	start := time.Now()
	if err := b.Leave(ctx); err != nil {
		t.Errorf("leave: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("leave of a node no longer in its group took %s (deadline 30s)", took.Round(time.Millisecond))
	}
}
