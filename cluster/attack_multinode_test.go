//go:build !race

// Several protoactor remotes in one process (nodes, or a node and an attacker's
// client) write grpc's global logger unsynchronised, which the race detector
// reports (an upstream issue, see fork_test.go). Built without -race, like the
// other multi-remote tests.

package cluster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/cluster/pki"
	"github.com/barberpro/edge/cluster/placement"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	clusterv1 "github.com/barberpro/edge/protos/cluster/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// tlsStream is a raft.StreamLayer that dials over TLS with conf (the attacker's).
type tlsStream struct {
	net.Listener
	conf *tls.Config
}

func (s tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), s.conf)
}

// tlsTransport is a hashicorp/raft network transport at ip that dials over TLS
// with conf.
func tlsTransport(t *testing.T, ip string, conf *tls.Config) *raft.NetworkTransport {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransport(tlsStream{Listener: ln, conf: conf}, 1, 2*time.Second, io.Discard)
	t.Cleanup(func() { trans.Close() })
	return trans
}

// refused reports whether err is the follower's refusal: the TLS alert it sends
// (wantErr), or, since a TLS 1.3 client counts its handshake done before the
// server has checked the client's certificate, the connection the server then
// closed under the client's first write or read (broken pipe, reset, EOF). That
// nothing was applied is checked on the follower itself.
func refused(err error, wantErr string) bool {
	if err == nil {
		return false
	}
	for _, s := range []string{wantErr, "broken pipe", "connection reset by peer", "EOF"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

// raftAttack sends, with a real hashicorp/raft transport, an AppendEntries from a
// higher term carrying an entry, and an InstallSnapshot, to the follower at
// target; both must fail, and the follower must apply nothing and keep its term.
func raftAttack(t *testing.T, trans *raft.NetworkTransport, follower *cluster.Node, wantErr string) {
	t.Helper()
	before := follower.Store().Stats()
	target := raft.ServerAddress(follower.RaftAddr())
	id := raft.ServerID(follower.Store().ID())
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("mallory"), Addr: []byte(trans.LocalAddr())}
	data, _ := proto.Marshal(st.CreateProvider(st.Provider("p-mallory")))
	var ae raft.AppendEntriesResponse
	err := trans.AppendEntries(id, target, &raft.AppendEntriesRequest{
		RPCHeader: hdr, Term: before.Term + 100, PrevLogEntry: before.LastLogIndex, PrevLogTerm: before.Term,
		Entries:           []*raft.Log{{Index: before.LastLogIndex + 1, Term: before.Term + 100, Type: raft.LogCommand, Data: data}},
		LeaderCommitIndex: before.LastLogIndex + 1,
	}, &ae)
	if !refused(err, wantErr) {
		t.Errorf("AppendEntries from an unproven client: err %v (response %+v), want an error with %q", err, ae, wantErr)
	}
	snap := bytes.Repeat([]byte{0xba}, 4096)
	var is raft.InstallSnapshotResponse
	err = trans.InstallSnapshot(id, target, &raft.InstallSnapshotRequest{
		RPCHeader: hdr, SnapshotVersion: raft.SnapshotVersionMax, Term: before.Term + 100, Leader: []byte(trans.LocalAddr()),
		LastLogIndex: before.LastLogIndex + 1000, LastLogTerm: before.Term + 100, Size: int64(len(snap)),
	}, &is, bytes.NewReader(snap))
	if !refused(err, wantErr) {
		t.Errorf("InstallSnapshot from an unproven client: err %v (response %+v), want an error with %q", err, is, wantErr)
	}
	time.Sleep(300 * time.Millisecond)
	after := follower.Store().Stats()
	if after.Term != before.Term || after.LastLogIndex > before.LastLogIndex+1 {
		// +1: the group may legitimately append an entry of its own meanwhile.
		t.Errorf("follower changed under attack: before term %d last %d applied %d, after term %d last %d applied %d",
			before.Term, before.LastLogIndex, before.AppliedIndex, after.Term, after.LastLogIndex, after.AppliedIndex)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := follower.Store().Provider(ctx, "p-mallory"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the attacker's provider reached the follower: %v", err)
	}
}

// Test_RaftTransport_RefusesClientsWithoutClusterCertificate: a hashicorp/raft client
// over plain TCP, one over TLS with a certificate of another CA, and one with a
// certificate of this CA but of another jurisdiction can neither append entries to
// a follower nor install a snapshot on it: the follower's TLS handshake refuses them
// and nothing reaches raft.
func Test_RaftTransport_RefusesClientsWithoutClusterCertificate(t *testing.T) {
	a := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind = "127.0.0.41" })
	b := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.ID, c.City, c.Bind, c.Join, c.BootstrapExpect = "cba-1", "cordoba", "127.0.0.42", []string{a.GossipAddr()}, 0
	})
	waitVoters(t, a, 2)
	if b.Store().IsLeader() {
		t.Fatal("setup: cba-1 leads")
	}

	t.Run("plain TCP", func(t *testing.T) {
		trans, err := raft.NewTCPTransport("127.0.0.43:0", nil, 1, 2*time.Second, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer trans.Close()
		raftAttack(t, trans, b, "") // any error: the follower closes a connection that does not speak TLS
	})
	t.Run("TLS with a certificate of another CA", func(t *testing.T) {
		m := mustMaterial(t, mustOtherCA(t), pki.Identity{Jurisdiction: "ar", City: "buenos-aires", NodeID: "ba-9"}, "127.0.0.43")
		conf := m.ClientTLS(nil)
		conf.InsecureSkipVerify = true // the attacker does not care who answers; the follower must
		raftAttack(t, tlsTransport(t, "127.0.0.43", conf), b, "tls: unknown certificate authority")
	})
	t.Run("TLS with a certificate of another jurisdiction", func(t *testing.T) {
		m := mustMaterial(t, clustertest.MustCA(t), pki.Identity{Jurisdiction: "us", City: "us-east", NodeID: "us-9"}, "127.0.0.43")
		conf := m.ClientTLS(nil)
		conf.ServerName = "127.0.0.42"
		raftAttack(t, tlsTransport(t, "127.0.0.43", conf), b, "tls:")
	})
}

// actorClient starts a protoactor remote at ip with the given gRPC options, as a
// client of the cluster's nodes would.
func actorClient(t *testing.T, ip string, opts ...remote.ConfigOption) *actor.ActorSystem {
	t.Helper()
	sys := placement.NewActorSystem("mallory@1", slog.New(slog.NewTextHandler(io.Discard, nil)), slog.LevelError)
	r := remote.NewRemote(sys, remote.Configure(ip, 0, opts...))
	r.Start()
	t.Cleanup(func() { r.Shutdown(false) })
	return sys
}

func tlsActorClient(t *testing.T, m *pki.Material, ip string) *actor.ActorSystem {
	return actorClient(t, ip,
		remote.WithServerOptions(grpc.Creds(credentials.NewTLS(m.ServerTLS(nil)))),
		remote.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(m.ClientTLS(nil)))))
}

// Test_ActorRemote_ForwardingActorServesOnlyItsGroup: a protoactor client without a
// certificate cannot reach the barberpro-raft forwarding actor at all, and one with a
// certificate of another jurisdiction has its proposal dropped: neither is applied.
// A client with a certificate of the node's own jurisdiction is served (the control:
// the same request is applied). None of these clients is a verified member, so the
// node sends them no answer: its actor remote dials only the member whose address
// it dials (TestMemberCreds_DialReachesOnlyTheMemberDialed); status across
// jurisdictions between members is Test_MultiJurisdiction_NodesTalkOverMutualTLS.
func Test_ActorRemote_ForwardingActorServesOnlyItsGroup(t *testing.T) {
	n := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind = "127.0.0.51" })
	ask := func(sys *actor.ActorSystem, provider string) (any, error) {
		return sys.Root.RequestFuture(actor.NewPID(n.ActorAddr(), "barberpro-raft"),
			&clusterv1.ProposeRequest{Command: st.CreateProvider(st.Provider(provider)), TimeoutMs: 2000}, 3*time.Second).Result()
	}
	// askBatch sends the proposal as a follower's batch of forwarded proposals.
	askBatch := func(sys *actor.ActorSystem, provider string) (any, error) {
		return sys.Root.RequestFuture(actor.NewPID(n.ActorAddr(), "barberpro-raft"),
			&clusterv1.ProposeBatchRequest{Commands: []*bookingv1.Command{st.CreateProvider(st.Provider(provider))}, TimeoutMs: 2000}, 3*time.Second).Result()
	}
	applied := func(provider string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := n.Store().Provider(ctx, provider)
		return err == nil
	}

	refused := func(t *testing.T, sys *actor.ActorSystem, provider, who string) {
		t.Helper()
		if res, err := ask(sys, provider); err == nil {
			t.Errorf("%s: its proposal to the ar group was answered: %+v", who, res)
		}
		if applied(provider) {
			t.Errorf("%s: its proposal was applied by the ar group", who)
		}
		if res, err := askBatch(sys, provider+"-batch"); err == nil {
			t.Errorf("%s: its batch of proposals to the ar group was answered: %+v", who, res)
		}
		if applied(provider + "-batch") {
			t.Errorf("%s: its batch of proposals was applied by the ar group", who)
		}
	}

	t.Run("no certificate", func(t *testing.T) {
		sys := actorClient(t, "127.0.0.52", remote.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
		refused(t, sys, "p-nocert", "a client without a certificate")
	})
	t.Run("another jurisdiction", func(t *testing.T) {
		m := mustMaterial(t, clustertest.MustCA(t), pki.Identity{Jurisdiction: "us", City: "us-east", NodeID: "us-9"}, "127.0.0.53")
		sys := tlsActorClient(t, m, "127.0.0.53")
		refused(t, sys, "p-us", "a us node")
	})
	t.Run("own jurisdiction (control)", func(t *testing.T) {
		m := mustMaterial(t, clustertest.MustCA(t), pki.Identity{Jurisdiction: "ar", City: "cordoba", NodeID: "cba-9"}, "127.0.0.54")
		sys := tlsActorClient(t, m, "127.0.0.54")
		if res, err := ask(sys, "p-ar"); err == nil {
			t.Errorf("a client no verified member gossips got an answer: %+v", res)
		}
		if !applied("p-ar") {
			t.Error("an ar node's proposal was not applied")
		}
		if res, err := askBatch(sys, "p-ar-batch"); err == nil {
			t.Errorf("a client no verified member gossips got an answer to a batch: %+v", res)
		}
		if !applied("p-ar-batch") {
			t.Error("an ar node's batch of proposals was not applied")
		}
	})
}
