package cluster

import (
	"io"
	"log/slog"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/cluster/pki"
	clusterv1 "github.com/barberpro/edge/protos/cluster/v1"
)

// TestRemoteGuard_CrossJurisdictionReplyOnlyToItsFuture: future ids are a
// process-wide counter, so a peer of another jurisdiction could spray replies at
// the futures of forwarded proposals and read-index requests (review 8,
// finding 3: a us peer's ProposeReply to future$2 was kept). A reply from
// another jurisdiction reaches only a future raftPeers recorded for a request
// to that very node, of the type it waits for.
func TestRemoteGuard_CrossJurisdictionReplyOnlyToItsFuture(t *testing.T) {
	cross := newCrossFutures()
	g := &remoteGuard{jurisdiction: "ar", self: "127.0.0.1:8090", cross: cross, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	name := func(m proto.Message) string { return string(proto.MessageName(m)) }
	us1 := pki.Identity{Jurisdiction: "us", City: "us-east", NodeID: "us-1"}
	us2 := pki.Identity{Jurisdiction: "us", City: "us-east", NodeID: "us-2"}
	batch := func(future string, reply proto.Message) *remote.MessageBatch {
		return &remote.MessageBatch{
			TypeNames: []string{name(reply)},
			Targets:   []*actor.PID{actor.NewPID("127.0.0.1:8090", future)},
			Envelopes: []*remote.MessageEnvelope{{Target: 0, TypeId: 0}},
		}
	}
	kept := func(b *remote.MessageBatch, from pki.Identity) bool {
		g.filter(b, from)
		return len(b.Envelopes) == 1
	}
	// The reviewer's case: nothing recorded, a ProposeReply to future$2.
	if kept(batch("future$2", &clusterv1.ProposeReply{}), us1) {
		t.Fatal("a us peer's ProposeReply to future$2 was kept")
	}
	if kept(batch("future$2", &clusterv1.NodeStatusReply{}), us1) {
		t.Fatal("a status reply to a future nobody recorded was kept")
	}
	cross.open("future$7", "us-1", name(&clusterv1.NodeStatusReply{}))
	if !kept(batch("future$7", &clusterv1.NodeStatusReply{}), us1) {
		t.Fatal("us-1's status reply to the future waiting for it was dropped")
	}
	if kept(batch("future$7", &clusterv1.ProposeReply{}), us1) {
		t.Fatal("a ProposeReply to a future waiting for a status reply was kept")
	}
	if kept(batch("future$7", &clusterv1.NodeStatusReply{}), us2) {
		t.Fatal("us-2's reply to the future waiting for us-1 was kept")
	}
	cross.close("future$7")
	if kept(batch("future$7", &clusterv1.NodeStatusReply{}), us1) {
		t.Fatal("a reply to a closed future was kept")
	}
}
