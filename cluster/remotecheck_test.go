package cluster

import (
	"errors"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/proto"

	clusterv1 "github.com/barberpro/edge/protos/cluster/v1"
)

// TestCheckMessage_RefusesWhatProtoactorWouldIndexUnchecked: every index,
// serializer, type and PID protoactor's endpoint reader uses without a check is
// checked before it sees the batch; a well-formed batch passes.
func TestCheckMessage_RefusesWhatProtoactorWouldIndexUnchecked(t *testing.T) {
	status := string(proto.MessageName(&clusterv1.NodeStatusReply{}))
	who, _ := proto.Marshal(&actor.Terminated{Who: actor.NewPID("127.0.0.1:1", "x")})
	none, _ := proto.Marshal(&actor.Terminated{})
	watch, _ := proto.Marshal(&actor.Watch{})
	batch := func(typ string, data []byte, e *remote.MessageEnvelope) *remote.RemoteMessage {
		e.MessageData = data
		return &remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: &remote.MessageBatch{
			TypeNames: []string{typ},
			Targets:   []*actor.PID{actor.NewPID("127.0.0.1:8090", "future$1")},
			Senders:   []*actor.PID{actor.NewPID("127.0.0.2:8090", "future$2")},
			Envelopes: []*remote.MessageEnvelope{e},
		}}}
	}
	for _, tc := range []struct {
		name string
		m    *remote.RemoteMessage
		ok   bool
	}{
		{"well formed, no sender", batch(status, nil, &remote.MessageEnvelope{}), true},
		{"well formed, sender 1", batch(status, nil, &remote.MessageEnvelope{Sender: 1}), true},
		{"terminated with who", batch("actor.Terminated", who, &remote.MessageEnvelope{}), true},
		{"sender past the table", batch(status, nil, &remote.MessageEnvelope{Sender: 2}), false},
		{"negative sender", batch(status, nil, &remote.MessageEnvelope{Sender: -1}), false},
		{"target past the table", batch(status, nil, &remote.MessageEnvelope{Target: 1}), false},
		{"negative target", batch(status, nil, &remote.MessageEnvelope{Target: -1}), false},
		{"type past the table", batch(status, nil, &remote.MessageEnvelope{TypeId: 1}), false},
		{"negative type", batch(status, nil, &remote.MessageEnvelope{TypeId: -1}), false},
		{"json serializer", batch(status, nil, &remote.MessageEnvelope{SerializerId: 1}), false},
		{"unregistered serializer", batch(status, nil, &remote.MessageEnvelope{SerializerId: 77}), false},
		{"unknown type name", batch("no.such.Type", nil, &remote.MessageEnvelope{}), false},
		{"pub-sub transport", batch("cluster.PubSubBatchTransport", nil, &remote.MessageEnvelope{}), false},
		{"terminated without who", batch("actor.Terminated", none, &remote.MessageEnvelope{}), false},
		{"watch without watcher", batch("actor.Watch", watch, &remote.MessageEnvelope{}), false},
		{"connect without its connection", &remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{
			ConnectRequest: &remote.ConnectRequest{ConnectionType: &remote.ConnectRequest_ServerConnection{}}}}, false},
		{"connect", &remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{
			ConnectRequest: &remote.ConnectRequest{ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{}}}}}, true},
		{"disconnect", &remote.RemoteMessage{MessageType: &remote.RemoteMessage_DisconnectRequest{DisconnectRequest: &remote.DisconnectRequest{}}}, true},
	} {
		err := checkMessage(tc.m)
		if tc.ok && err != nil {
			t.Errorf("%s: refused: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, errMalformed) {
			t.Errorf("%s: passed (err %v)", tc.name, err)
		}
	}
	// A nil PID in a table (not produced by decoding, but never indexed).
	m := batch(status, nil, &remote.MessageEnvelope{})
	m.GetMessageBatch().Targets[0] = nil
	if checkMessage(m) == nil {
		t.Error("a nil target passed")
	}
}
