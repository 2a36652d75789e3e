package cluster

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
// NodeStatusRequest to the barberpro-raft actor — and replies to this node's own
// futures (answers to the status requests this node sent it), both addressed to
// this node. Every other envelope from it is dropped and counted. Unary calls
// (protoactor's unimplemented diagnostics) are refused.
type remoteGuard struct {
	jurisdiction string
	// self is this node's actor address (host:port), the only address a peer of
	// another jurisdiction may target: the remote would otherwise forward an
	// envelope for another address on this node's own connections.
	self    string
	log     *slog.Logger
	dropped atomic.Uint64
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

func (g *remoteGuard) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	id, err := streamIdentity(ss.Context())
	if err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	if id.Jurisdiction == g.jurisdiction {
		return handler(srv, ss)
	}
	return handler(srv, &filteredStream{ServerStream: ss, guard: g, peer: id})
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

// filteredStream is the stream of a peer of another jurisdiction.
type filteredStream struct {
	grpc.ServerStream
	guard *remoteGuard
	peer  pki.Identity
}

func (s *filteredStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if rm, ok := m.(*remote.RemoteMessage); ok {
		if b := rm.GetMessageBatch(); b != nil {
			s.guard.filter(b, s.peer)
		}
	}
	return nil
}

// filter keeps in b only the envelopes a peer of another jurisdiction may send.
// The target and sender tables stay as they are: envelopes refer to them by index.
func (g *remoteGuard) filter(b *remote.MessageBatch, from pki.Identity) {
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		if g.crossAllowed(b, e) {
			kept = append(kept, e)
			continue
		}
		g.dropped.Add(1)
		g.log.Warn("actor remote: dropped a message from another jurisdiction",
			"peer", from.NodeID, "peer_jurisdiction", from.Jurisdiction, "type", typeName(b, e))
	}
	b.Envelopes = kept
}

func (g *remoteGuard) crossAllowed(b *remote.MessageBatch, e *remote.MessageEnvelope) bool {
	if e.Target < 0 || int(e.Target) >= len(b.Targets) || e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames) {
		return false
	}
	t := b.Targets[e.Target]
	if t == nil || t.Address != g.self {
		return false
	}
	switch {
	case strings.HasPrefix(t.Id, futurePrefix):
		return true // a reply: it can only complete a future this node made
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
