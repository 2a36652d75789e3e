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

// Test_Status_LeavingNodeIsLeaving: while a node leaves, `cluster status` on
// another node shows it "leaving" with no lag — it showed "joining" (removed
// from the configuration, still alive in gossip) with a lag of thousands.
func Test_Status_LeavingNodeIsLeaving(t *testing.T) {
	a := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind = "127.0.0.33" })
	b := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.ID, c.City, c.Bind, c.Join, c.BootstrapExpect = "cba-1", "cordoba", "127.0.0.34", []string{a.GossipAddr()}, 0
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	left := make(chan error, 1)
	go func() { left <- b.Leave(ctx) }()
	sawLeaving := false
	for done := false; !done; {
		select {
		case err := <-left:
			if err != nil {
				t.Logf("leave: %v", err)
			}
			done = true
		case <-time.After(50 * time.Millisecond):
		}
		st, err := ops.Status(ctx)
		if err != nil {
			continue
		}
		for _, g := range st.Groups {
			for _, m := range g.Members {
				if m.ID != "cba-1" {
					continue
				}
				if m.Role == "joining" {
					t.Fatalf("a leaving node shown joining: %+v", m)
				}
				if m.Role == "leaving" {
					sawLeaving = true
					if m.Lag != 0 {
						t.Fatalf("a leaving node shown with lag: %+v", m)
					}
				}
			}
		}
	}
	if !sawLeaving {
		t.Fatal("cluster status never showed cba-1 leaving")
	}
}
