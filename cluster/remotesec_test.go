package cluster

import (
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/pki"
	clusterv1 "github.com/barberpro/edge/protos/cluster/v1"
)

// TestRemoteGuard_KeepsOnlyWhatCrossJurisdictionNeeds: of a batch from a peer of
// another jurisdiction (a proposal, alone or in a batch, among them), only a NodeStatusRequest to barberpro-raft and the status
// reply a future of this node waits for from that peer, both addressed to this
// node, get through.
func TestRemoteGuard_KeepsOnlyWhatCrossJurisdictionNeeds(t *testing.T) {
	cross := newCrossFutures()
	g := &remoteGuard{jurisdiction: "ar", self: "127.0.0.1:8090", cross: cross, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	name := func(m proto.Message) string { return string(proto.MessageName(m)) }
	cross.open("future$abc", "us-1", name(&clusterv1.NodeStatusReply{}))
	b := &remote.MessageBatch{
		TypeNames: []string{name(&clusterv1.NodeStatusRequest{}), name(&clusterv1.ProposeRequest{}),
			name(&clusterv1.RemoveServerRequest{}), name(&clusterv1.NodeStatusReply{}), "actors.v1.Book",
			name(&clusterv1.ProposeBatchRequest{})},
		Targets: []*actor.PID{
			actor.NewPID("127.0.0.1:8090", raftActorName),  // 0
			actor.NewPID("127.0.0.1:8090", "future$abc"),   // 1
			actor.NewPID("127.0.0.1:8090", "calendar/p-1"), // 2
			actor.NewPID("127.0.0.2:8090", raftActorName),  // 3: another node, via this one
			actor.NewPID("127.0.0.2:8090", "future$abc"),   // 4
		},
	}
	env := func(target, typ int32) *remote.MessageEnvelope {
		return &remote.MessageEnvelope{Target: target, TypeId: typ}
	}
	b.Envelopes = []*remote.MessageEnvelope{
		env(0, 0), // status request to raft: kept
		env(0, 1), // proposal: dropped
		env(0, 2), // removal: dropped
		env(1, 3), // status reply to the future waiting for us-1's: kept
		env(2, 4), // calendar request: dropped
		env(3, 0), // status request for another node: dropped
		env(4, 3), // reply for another node's future: dropped
		env(9, 0), // target out of range: dropped
		env(0, 5), // batch of proposals: dropped
	}
	want := []*remote.MessageEnvelope{b.Envelopes[0], b.Envelopes[3]}
	g.filter(b, pki.Identity{Jurisdiction: "us", City: "us-east", NodeID: "us-1"})
	if !slices.Equal(b.Envelopes, want) {
		t.Fatalf("kept %v, want the status request and the future's reply", b.Envelopes)
	}
	if g.dropped.Load() != 7 {
		t.Fatalf("dropped %d, want 7", g.dropped.Load())
	}
}

// TestMatchIdentity: a member is verified only when its certificate names what it
// gossips and holds every IP it gossips.
func TestMatchIdentity(t *testing.T) {
	m := membership.Member{Meta: membership.Meta{NodeID: "ba-1", City: "buenos-aires", Jurisdiction: "ar",
		RaftAddr: "127.0.0.11:7000", ActorAddr: "127.0.0.11:8090", HTTPAddr: "127.0.0.11:8080", PeerAddr: "127.0.0.11:8081"}}
	ips := []net.IP{net.ParseIP("127.0.0.11")}
	ok := pki.Identity{Jurisdiction: "ar", City: "buenos-aires", NodeID: "ba-1"}
	if err := matchIdentity(m, ok, ips); err != nil {
		t.Fatalf("matching certificate refused: %v", err)
	}
	for name, id := range map[string]pki.Identity{
		"other jurisdiction": {Jurisdiction: "us", City: "buenos-aires", NodeID: "ba-1"},
		"other city":         {Jurisdiction: "ar", City: "cordoba", NodeID: "ba-1"},
		"other node":         {Jurisdiction: "ar", City: "buenos-aires", NodeID: "ba-2"},
	} {
		if err := matchIdentity(m, id, ips); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	elsewhere := m
	elsewhere.RaftAddr = "127.0.0.12:7000" // Raft traffic sent to another machine
	if err := matchIdentity(elsewhere, ok, ips); err == nil {
		t.Error("a member gossiping a Raft address off its certificate was verified")
	}
}
