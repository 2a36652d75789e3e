package cluster

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/membership/membershiptest"
	"github.com/barberpro/edge/cluster/pki"
)

// proberFixture: a node's membership (p-0) that sees a second member (p-1) whose
// peer address accepts TCP and never answers the TLS handshake, and a prober.
func proberFixture(t *testing.T) (*prober, *membership.Membership, membership.Member) {
	t.Helper()
	hole, err := net.Listen("tcp", "127.0.0.84:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hole.Close() })
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // held open, never answered
		}
	}()
	self := membershiptest.MustStart(t, membershiptest.Config("p-0", "buenos-aires", "ar", "127.0.0.83"))
	oc := membershiptest.Config("p-1", "cordoba", "ar", "127.0.0.84", self.GossipAddr())
	oc.Meta.PeerAddr = hole.Addr().String()
	oc.Meta.ActorAddr = "127.0.0.84:8090"
	membershiptest.MustStart(t, oc)
	var other membership.Member
	membershiptest.WaitFor(t, 10*time.Second, "p-0 sees p-1", func() bool {
		for _, m := range self.Members() {
			if m.NodeID == "p-1" {
				other = m
				return true
			}
		}
		return false
	})
	ca := t.TempDir()
	if err := pki.InitCA(ca); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "p-0")
	if err := pki.Issue(ca, pki.Identity{Jurisdiction: "ar", City: "buenos-aires", NodeID: "p-0"}, []net.IP{net.ParseIP("127.0.0.83")}, out); err != nil {
		t.Fatal(err)
	}
	mat, err := pki.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	return newProber(self, mat, &net.Dialer{}, "p-0", membershiptest.Logger()), self, other
}

// TestProber_ProbesDoNotWaitForEachOther: probeDue starts each member's probe
// and returns; a member that never answers its handshake (2 s timeout) holds up
// no round. Before, probeDue waited for every probe, so one unreachable member
// delayed every verdict by the probe timeout each round.
func TestProber_ProbesDoNotWaitForEachOther(t *testing.T) {
	p, _, _ := proberFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); p.wg.Wait() }()
	p.probeDue(ctx)
	p.mu.Lock()
	inflight := p.inflight["p-1"]
	p.mu.Unlock()
	if !inflight {
		t.Fatal("probeDue returned after the silent member's probe ended: rounds wait for the slowest member")
	}
	// A second round does not start a second probe of a member in flight.
	p.probeDue(ctx)
}

// TestProber_ForgetsNodesGossipForgot: results of node ids gossip no longer
// knows are dropped (the map grew with every node ever seen).
func TestProber_ForgetsNodesGossipForgot(t *testing.T) {
	p, _, _ := proberFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); p.wg.Wait() }()
	p.mu.Lock()
	p.result["ghost-1"] = probeResult{key: "x", verified: true, at: time.Now()}
	p.mu.Unlock()
	p.probeDue(ctx)
	p.mu.Lock()
	_, kept := p.result["ghost-1"]
	p.mu.Unlock()
	if kept {
		t.Fatal("the result of a node gossip does not know was kept")
	}
}

// TestVerifiedMembers_SubscribersLearnVerdicts: a change of a member's verdict
// reaches verifiedMembers' subscribers (placement) as an event, so a member
// re-verified after a Meta change is placed again at once, not at the next
// periodic resync.
func TestVerifiedMembers_SubscribersLearnVerdicts(t *testing.T) {
	p, self, other := proberFixture(t)
	v := &verifiedMembers{Membership: self, prober: p}
	events, unsub := v.Subscribe()
	defer unsub()
	for drained := false; !drained; { // gossip's join events so far
		select {
		case <-events:
		case <-time.After(200 * time.Millisecond):
			drained = true
		}
	}
	p.record(other, nil)
	select {
	case <-events:
	case <-time.After(5 * time.Second):
		t.Fatal("a member's new verdict reached no subscriber")
	}
	if ms := v.Members(); len(ms) != 2 {
		t.Fatalf("verified members after the verdict: %v", ms)
	}
}

// TestRaftPeers_OnlyVerifiedMembers: the requests a node sends to raft actors
// (forwarded proposals and reads, removals, status) find their target among
// verified members only, as the node wires them (raftPeers over
// verifiedMembers): a member gossip shows, with an actor address, is no target
// until its certificate was verified.
func TestRaftPeers_OnlyVerifiedMembers(t *testing.T) {
	p, self, other := proberFixture(t)
	peers := &raftPeers{members: &verifiedMembers{Membership: self, prober: p}, jurisdiction: "ar"}
	if pid, _, err := peers.pid("p-1"); !errors.Is(err, ErrNoSuchNode) {
		t.Fatalf("an unverified member is a target: %v, %v", pid, err)
	}
	if _, err := peers.request(context.Background(), "p-1", nil, nil); !errors.Is(err, ErrNoSuchNode) {
		t.Fatalf("a request to an unverified member: %v", err)
	}
	p.record(other, nil)
	pid, jur, err := peers.pid("p-1")
	if err != nil || pid.Address != "127.0.0.84:8090" || jur != "ar" {
		t.Fatalf("the verified member: %v %q %v", pid, jur, err)
	}
}
