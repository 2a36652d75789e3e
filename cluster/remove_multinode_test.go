//go:build !race

// Several nodes (protoactor remotes) in one process: built without -race, as
// fork_test.go is (protoactor's shutdown and grpc's global logger race upstream).

package cluster_test

import (
	"context"
	"fmt"
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

// Test_Status_IdleGroupHasNoLag: in an idle two-node group, after a leadership
// change, `cluster status` shows every member with lag 0 — the new leader
// included. Measured against the leader's last log index (the new leader's
// no-op entry, never applied to the store), an idle leader lagged one entry
// behind itself.
func Test_Status_IdleGroupHasNoLag(t *testing.T) {
	a := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind = "127.0.0.33" })
	b := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.ID, c.City, c.Bind, c.Join, c.BootstrapExpect = "cba-1", "cordoba", "127.0.0.34", []string{a.GossipAddr()}, 0
	})
	ops := clustertest.Operator(t, a)
	// settled waits until the group shows two members, all lag 0, and a
	// leader (the one wanted, or any when want is ""); it returns the leader,
	// or "" and what it saw last.
	settled := func(want string, within time.Duration) (string, string) {
		var last string
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			st, err := ops.Status(context.Background())
			if err != nil {
				last = err.Error()
				continue
			}
			for _, g := range st.Groups {
				if g.Group != "ar" {
					continue
				}
				ok := len(g.Members) == 2 && g.Leader != "" && (want == "" || g.Leader == want)
				for _, m := range g.Members {
					ok = ok && (m.Role == "leader" || m.Role == "follower") && m.Lag == 0
				}
				if ok {
					return g.Leader, ""
				}
				last = fmt.Sprintf("leader %s, members %+v", g.Leader, g.Members)
			}
		}
		return "", last
	}
	// Whichever node leads (an election under a loaded machine may have moved
	// it already), hand leadership to the other one.
	first, last := settled("", 20*time.Second)
	if first == "" {
		t.Fatalf("setup: the ar group never settled; last: %s", last)
	}
	from, to, toID := a, b, "cba-1"
	if first == "cba-1" {
		from, to, toID = b, a, "ba-1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := from.Store().TransferLeadership(ctx); err != nil {
		t.Fatal(err)
	}
	for !to.Store().IsLeader() && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	if got, last := settled(toID, 5*time.Second); got == "" {
		t.Fatalf("after the leadership change the idle group shows lag; last: %s", last)
	}
}
