//go:build !race

// Two nodes (protoactor remotes) in one process: built without -race, like the
// other multi-remote tests (see attack_multinode_test.go).

package cluster_test

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/cluster/membership"
)

// Test_Gossip_KeyHolderCannotDemoteAVoter: a process that holds only the gossip
// key (every us node does; no certificate at all) re-gossips a real ar voter's
// metadata with another DiskID at its gossip address (review 8, finding 2: the
// prober's verdict was keyed on addresses and identity, not DiskID, so the member
// stayed "verified" and the ar leader's keeper removed the real voter as "a former
// disk" and added cba-1@evil). Now the member is verified only while gossip agrees
// with what it says of itself over mutual TLS, and a voter that answers Raft is
// never replaced for a new disk: for 10 s of forged gossip the voter stays.
func Test_Gossip_KeyHolderCannotDemoteAVoter(t *testing.T) {
	a := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind, c.DeadServerTimeout = "127.0.0.91", time.Hour })
	b := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.ID, c.City, c.Bind, c.Join, c.BootstrapExpect = "cba-1", "cordoba", "127.0.0.92", []string{a.GossipAddr()}, 0
		c.DeadServerTimeout = time.Hour
	})
	waitVoters(t, a, 2)
	servers, _ := a.Store().Servers()
	var real string
	for _, s := range servers {
		if membership.NodeOf(s.ID) == "cba-1" {
			real = s.ID
		}
	}
	t.Logf("before: %+v", servers)

	// An observer (gossip key only) reads cba-1's metadata.
	oc := membership.LocalConfig()
	oc.Meta = membership.Meta{NodeID: "obs", BootID: membership.NewBootID(), City: "us-east", Jurisdiction: "us"}
	oc.BindAddr, oc.BindPort, oc.Join, oc.SecretKey = "127.0.0.93", 0, []string{a.GossipAddr()}, clustertest.GossipKey(t)
	oc.Logger = clustertest.Logger()
	obs, err := membership.New(oc)
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { obs.Shutdown() })
	var meta membership.Meta
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, m := range obs.Members() {
			if m.NodeID == "cba-1" && m.ClusterID != "" {
				meta = m.Meta
			}
		}
		if meta.NodeID != "" {
			break
		}
	}
	if meta.NodeID == "" {
		t.Fatal("observer never saw cba-1")
	}
	obs.Shutdown()

	// The forger: cba-1's metadata but DiskID, advertised at cba-1's gossip address.
	host, port, _ := net.SplitHostPort(b.GossipAddr())
	p, _ := strconv.Atoi(port)
	fc := membership.LocalConfig()
	fc.Meta = meta
	fc.Meta.DiskID = "evil"
	fc.BindAddr, fc.BindPort, fc.AdvertiseAddr, fc.AdvertisePort = "127.0.0.94", 0, host, p
	fc.Join, fc.SecretKey = []string{a.GossipAddr()}, clustertest.GossipKey(t)
	fc.Logger = clustertest.Logger()
	forger, err := membership.New(fc)
	if err != nil {
		t.Fatal(err)
	}
	if err := forger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { forger.Shutdown() })

	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		servers, _ := a.Store().Servers()
		found := false
		for _, s := range servers {
			found = found || (s.ID == real && s.Voter)
			if s.ID == "cba-1@evil" {
				t.Fatalf("the ar leader replaced voter %s by the forged server cba-1@evil: %+v", real, servers)
			}
		}
		if !found {
			t.Fatalf("the ar leader demoted/removed voter %s on forged gossip: %+v", real, servers)
		}
	}
}
