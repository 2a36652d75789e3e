package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/barberpro/edge/cluster/pki"
	clusterv1 "github.com/barberpro/edge/protos/cluster/v1"
)

// futurePrefix starts the id of every protoactor future (actor.NewFuture names
// them "future" + a registry id, which starts with '$'): replies to requests this
// node made go to them.
const futurePrefix = "future$"

// remoteHandshakeTimeout bounds the TLS handshake of a connection to the actor
// remote (gRPC's default is 120 s).
const remoteHandshakeTimeout = 5 * time.Second

// nodeStatusType is the type name protoactor's remote puts in a MessageBatch for a
// NodeStatusRequest.
var nodeStatusType = string(proto.MessageName(&clusterv1.NodeStatusRequest{}))

// remoteGuard filters what the actor remote (gRPC, mutual TLS against the cluster
// CA) delivers: a peer whose certificate names this node's jurisdiction may send
// anything; a peer of another jurisdiction only what `cluster status` needs — a
// NodeStatusRequest to the barberpro-raft actor — and the reply to a status
// request this node sent that very peer (a NodeStatusReply to the future
// raftPeers recorded in cross for it), both addressed to this node. Every other
// envelope from it is dropped and counted. Every peer's messages are checked
// first (checkMessage). Unary calls (protoactor's unimplemented diagnostics)
// are refused.
type remoteGuard struct {
	jurisdiction string
	// self is this node's actor address (host:port), the only address a peer of
	// another jurisdiction may target: the remote would otherwise forward an
	// envelope for another address on this node's own connections.
	self string
	log  *slog.Logger
	// cross are the futures waiting for a reply from a node of another
	// jurisdiction (raftPeers records them): the only futures such a peer
	// may reach.
	cross   *crossFutures
	dropped atomic.Uint64
	// refusedStreams counts the streams ended for a malformed message.
	refusedStreams atomic.Uint64
}

// serverOptions are the gRPC server options of the actor remote.
func (g *remoteGuard) serverOptions(m *pki.Material) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(m.ServerTLS(pki.AnyNode))),
		// A connection that does not finish its handshake is closed after this.
		grpc.ConnectionTimeout(remoteHandshakeTimeout),
		grpc.StreamInterceptor(g.stream),
		grpc.UnaryInterceptor(func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
			return nil, status.Error(codes.Unimplemented, "not served")
		}),
	}
}

// stream checks every message of every peer's stream before protoactor's
// endpoint reader sees it (checkMessage: protoactor indexes peer-supplied tables
// without a check, and a panic there ends the process), then filters what a peer
// of another jurisdiction sends. A message that fails the check ends the stream.
// A panic protoactor raises anyway ends the stream, not the process.
func (g *remoteGuard) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	id, err := streamIdentity(ss.Context())
	if err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	defer func() {
		if r := recover(); r != nil {
			g.refusedStreams.Add(1)
			kind := "a panic"
			if re, ok := r.(runtime.Error); ok {
				kind = re.Error() // index or nil-pointer errors: no message bytes
			}
			g.log.Error("actor remote: a peer's message made protoactor panic: stream dropped",
				"peer", id.NodeID, "peer_jurisdiction", id.Jurisdiction, "panic", kind)
			err = status.Error(codes.Internal, "stream dropped")
		}
	}()
	return handler(srv, &guardedStream{ServerStream: ss, guard: g, peer: id, cross: id.Jurisdiction != g.jurisdiction})
}

// streamIdentity is the identity of the verified client certificate of a stream.
func streamIdentity(ctx context.Context) (pki.Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return pki.Identity{}, pki.ErrNoIdentity
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return pki.Identity{}, pki.ErrNoIdentity
	}
	return pki.PeerIdentity(info.State)
}

// guardedStream is a peer's stream as protoactor's endpoint reader reads it.
type guardedStream struct {
	grpc.ServerStream
	guard *remoteGuard
	peer  pki.Identity
	// cross: the peer is of another jurisdiction (filter applies).
	cross bool
}

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	rm, ok := m.(*remote.RemoteMessage)
	if !ok {
		return nil
	}
	if err := checkMessage(rm); err != nil {
		s.guard.refusedStreams.Add(1)
		s.guard.log.Warn("actor remote: malformed message from a peer: stream dropped",
			"peer", s.peer.NodeID, "peer_jurisdiction", s.peer.Jurisdiction, "err", err)
		return status.Error(codes.InvalidArgument, "malformed message")
	}
	if b := rm.GetMessageBatch(); b != nil && s.cross {
		s.guard.filter(b, s.peer)
	}
	return nil
}

// protoSerializerID is the serializer of protoactor's endpoint writer (it sends
// every message with serializer 0, protobuf). protoactor also registers JSON (1),
// which no node of this cluster sends; ids outside its table panic.
const protoSerializerID = 0

// errMalformed wraps every reason checkMessage refuses a message.
var errMalformed = errors.New("malformed remote message")

// checkMessage refuses a message on which protoactor's endpoint reader would
// panic or act on a missing PID: in a MessageBatch, every target, type and
// sender index in range (sender 0 means none, n means Senders[n-1]), PIDs
// present, serializer protobuf, every type name a registered message type
// (protoactor's protobuf serializer dereferences a failed lookup) and none of
// protoactor's pub-sub transports (their nested tables are indexed unchecked
// too; this cluster publishes nothing), and the PID inside Terminated, Watch
// and Unwatch present. A ConnectRequest must carry its connection. Errors name
// indexes and counts, never message bytes.
func checkMessage(rm *remote.RemoteMessage) error {
	switch t := rm.MessageType.(type) {
	case *remote.RemoteMessage_ConnectRequest:
		c := t.ConnectRequest
		if c == nil {
			return fmt.Errorf("%w: empty connect request", errMalformed)
		}
		if sc, ok := c.ConnectionType.(*remote.ConnectRequest_ServerConnection); ok && sc.ServerConnection == nil {
			return fmt.Errorf("%w: connect request without its server connection", errMalformed)
		}
	case *remote.RemoteMessage_MessageBatch:
		if t.MessageBatch == nil {
			return fmt.Errorf("%w: empty batch", errMalformed)
		}
		return checkBatch(t.MessageBatch)
	}
	return nil
}

func checkBatch(b *remote.MessageBatch) error {
	for i, p := range b.Targets {
		if p == nil {
			return fmt.Errorf("%w: target %d is empty", errMalformed, i)
		}
	}
	for i, p := range b.Senders {
		if p == nil {
			return fmt.Errorf("%w: sender %d is empty", errMalformed, i+1)
		}
	}
	types := make([]protoreflect.MessageType, len(b.TypeNames))
	for i, name := range b.TypeNames {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
		if err != nil {
			return fmt.Errorf("%w: type %d is not a registered message type", errMalformed, i)
		}
		if _, ok := mt.New().Interface().(remote.RootSerialized); ok {
			return fmt.Errorf("%w: type %d is a pub-sub transport (this cluster publishes nothing)", errMalformed, i)
		}
		types[i] = mt
	}
	for i, e := range b.Envelopes {
		switch {
		case e == nil:
			return fmt.Errorf("%w: envelope %d is empty", errMalformed, i)
		case e.Target < 0 || int(e.Target) >= len(b.Targets):
			return fmt.Errorf("%w: envelope %d: target %d of %d", errMalformed, i, e.Target, len(b.Targets))
		case e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames):
			return fmt.Errorf("%w: envelope %d: type %d of %d", errMalformed, i, e.TypeId, len(b.TypeNames))
		case e.Sender < 0 || int(e.Sender) > len(b.Senders):
			return fmt.Errorf("%w: envelope %d: sender %d of %d", errMalformed, i, e.Sender, len(b.Senders))
		case e.SerializerId != protoSerializerID:
			return fmt.Errorf("%w: envelope %d: serializer %d", errMalformed, i, e.SerializerId)
		}
		if err := checkPayload(types[e.TypeId], e.MessageData); err != nil {
			return fmt.Errorf("%w: envelope %d: %w", errMalformed, i, err)
		}
	}
	return nil
}

// checkPayload decodes the messages whose PID protoactor uses without a nil
// check (Terminated in the reader itself, Watch and Unwatch in the actor).
func checkPayload(mt protoreflect.MessageType, data []byte) error {
	switch mt.Descriptor().FullName() {
	case "actor.Terminated", "actor.Watch", "actor.Unwatch":
	default:
		return nil
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(data, m); err != nil {
		return errors.New("undecodable system message")
	}
	var pid *actor.PID
	switch v := m.(type) {
	case *actor.Terminated:
		pid = v.Who
	case *actor.Watch:
		pid = v.Watcher
	case *actor.Unwatch:
		pid = v.Watcher
	}
	if pid == nil {
		return errors.New("system message without its PID")
	}
	return nil
}

// filter keeps in b only the envelopes a peer of another jurisdiction may send.
// The target and sender tables stay as they are: envelopes refer to them by index.
func (g *remoteGuard) filter(b *remote.MessageBatch, from pki.Identity) {
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		if g.crossAllowed(b, e, from) {
			kept = append(kept, e)
			continue
		}
		g.dropped.Add(1)
		g.log.Warn("actor remote: dropped a message from another jurisdiction",
			"peer", from.NodeID, "peer_jurisdiction", from.Jurisdiction, "type", typeName(b, e))
	}
	b.Envelopes = kept
}

func (g *remoteGuard) crossAllowed(b *remote.MessageBatch, e *remote.MessageEnvelope, from pki.Identity) bool {
	if e.Target < 0 || int(e.Target) >= len(b.Targets) || e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames) {
		return false
	}
	t := b.Targets[e.Target]
	if t == nil || t.Address != g.self {
		return false
	}
	switch {
	case strings.HasPrefix(t.Id, futurePrefix):
		// A reply: only to a future this node opened for a request to that
		// very node (its certificate), and only of the type it waits for.
		return g.cross.expects(t.Id, from.NodeID, b.TypeNames[e.TypeId])
	case t.Id == raftActorName:
		return b.TypeNames[e.TypeId] == nodeStatusType
	}
	return false
}

func typeName(b *remote.MessageBatch, e *remote.MessageEnvelope) string {
	if e.TypeId >= 0 && int(e.TypeId) < len(b.TypeNames) {
		return b.TypeNames[e.TypeId]
	}
	return "?"
}
