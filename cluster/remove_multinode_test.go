//go:build !race

// Several nodes (protoactor remotes) in one process: built without -race, as
// fork_test.go is (protoactor's shutdown and grpc's global logger race upstream).

package cluster_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/edge"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/storage"
)

// Test_Remove_RefusesALiveMemberUnlessForced asks a real two-node group to
// remove its live second member: 409 member_alive, the member still in the Raft
// group; with force it is removed.
func Test_Remove_RefusesALiveMemberUnlessForced(t *testing.T) {
	a := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind = "127.0.0.31" })
	clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.ID, c.City, c.Bind, c.Join, c.BootstrapExpect = "cba-1", "cordoba", "127.0.0.32", []string{a.GossipAddr()}, 0
	})
	inGroup := func() bool {
		servers, _ := a.Store().Servers()
		return slices.ContainsFunc(servers, func(s storage.Server) bool { return strings.HasPrefix(s.ID, "cba-1@") })
	}
	deadline := time.Now().Add(20 * time.Second)
	for !inGroup() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !inGroup() {
		t.Fatal("setup: cba-1 never joined ba-1's group")
	}
	ops := clustertest.Operator(t, a)
	ctx := context.Background()
	if _, err := ops.Remove(ctx, "cba-1", false); client.Code(err) != edge.CodeMemberAlive {
		t.Fatalf("remove a live member: %v, want 409 member_alive", err)
	}
	if !inGroup() {
		t.Fatal("a refused remove removed the member")
	}
	if r, err := ops.Remove(ctx, "cba-1", true); err != nil || r.Status != "removed" {
		t.Fatalf("forced remove: %+v, %v", r, err)
	}
}
