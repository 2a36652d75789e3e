//go:build !race

// Three nodes, three protoactor remotes in one process: built without -race (see
// attack_multinode_test.go).

package cluster_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/pki"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/load"
)

// Test_MultiJurisdiction_NodesTalkOverMutualTLS: an ar group (ba-1, cba-1, ros-1) and a us
// node. A request for an ar provider made at the us node is relayed to ar over the
// peer listener (https, mutual TLS) and served; `cluster status` at the us node shows
// the ar group's leader (status crosses jurisdictions over the actor remote); a
// `cluster remove` of an ar node asked at the us node is relayed to ar and removes it
// from the ar group. The peer listener refuses a client without a certificate and one
// of another CA.
func Test_MultiJurisdiction_NodesTalkOverMutualTLS(t *testing.T) {
	// Three ar voters, so that the group keeps its quorum once cba-1 stops and
	// can commit its removal; only `cluster remove` removes servers here.
	a := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind, c.DeadServerTimeout = "127.0.0.81", time.Hour })
	b := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.ID, c.City, c.Bind, c.Join, c.BootstrapExpect = "cba-1", "cordoba", "127.0.0.82", []string{a.GossipAddr()}, 0
		c.DeadServerTimeout = time.Hour
	})
	clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.ID, c.City, c.Bind, c.Join, c.BootstrapExpect = "ros-1", "rosario", "127.0.0.84", []string{a.GossipAddr()}, 0
		c.DeadServerTimeout = time.Hour
	})
	us := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.ID, c.City, c.Bind, c.Join = "us-1", "us-east", "127.0.0.83", []string{a.GossipAddr()}
	})
	waitVoters(t, a, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	uc := clustertest.Operator(t, us)

	// A relay us -> ar (retried while us-1 has not verified an ar node yet).
	var p *client.Provider
	var err error
	for p == nil {
		if p, err = uc.CreateProvider(ctx, load.LoadProvider("buenos-aires", 1), ""); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("create an ar provider at the us node: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if _, err := a.Store().Provider(ctx, p.ID); err != nil {
		t.Fatalf("the relayed provider is not in the ar group: %v", err)
	}
	if _, err := us.Store().Provider(ctx, p.ID); err == nil {
		t.Fatal("an ar provider reached the us store")
	}

	// Status across jurisdictions: the us node learns ar's leader from the ar
	// nodes over mutual TLS (each asked with a 1 s bound, so a loaded machine
	// may need a second ask).
	leaders := map[string]string{}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		st, err := uc.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		clear(leaders)
		for _, g := range st.Groups {
			leaders[g.Group] = g.Leader
		}
		if (leaders["ar"] != "" && leaders["ar"] != us.ID()) && leaders["us"] == us.ID() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status at the us node: leaders %v, want an ar node for ar and %s for us", leaders, us.ID())
		}
	}

	// The peer listener wants a certificate of the cluster CA.
	for name, conf := range map[string]*tls.Config{
		"no certificate": {MinVersion: tls.VersionTLS13, InsecureSkipVerify: true},
		"another CA": func() *tls.Config {
			c := mustMaterial(t, mustOtherCA(t), pki.Identity{Jurisdiction: "ar", City: "buenos-aires", NodeID: "ba-9"}, "127.0.0.84").ClientTLS(nil)
			c.InsecureSkipVerify = true
			return c
		}(),
	} {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
		resp, err := hc.Get("https://" + a.PeerAddr() + "/v1/providers/" + p.ID)
		if err == nil {
			resp.Body.Close()
			t.Errorf("peer listener served a client with %s: %s", name, resp.Status)
		} else if !refused(err, "tls") {
			t.Errorf("peer listener, client with %s: %v (want a TLS refusal)", name, err)
		}
	}

	// Remove an ar node through the us node: relayed to ar, with the operator's
	// token. While cba-1 is alive the ar node refuses without force.
	if _, err := uc.Remove(ctx, "cba-1", false); client.Code(err) != "member_alive" {
		t.Fatalf("remove of live cba-1 at the us node: %v, want 409 member_alive", err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	// Until gossip tells the us node that cba-1 left, remove refuses it as
	// alive (409 member_alive); an operator retries.
	_, err = uc.Remove(ctx, "cba-1", false)
	for deadline := time.Now().Add(10 * time.Second); client.Code(err) == "member_alive" && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		_, err = uc.Remove(ctx, "cba-1", false)
	}
	if err != nil {
		t.Fatalf("remove cba-1 at the us node: %v", err)
	}
	servers, _ := a.Store().Servers()
	for _, s := range servers {
		if membership.NodeOf(s.ID) == "cba-1" {
			t.Fatalf("cba-1 still in the ar group: %+v", servers)
		}
	}
}
