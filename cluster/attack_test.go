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
	"sync/atomic"
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
	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/pki"
	"github.com/barberpro/edge/cluster/placement"
	"github.com/barberpro/edge/edge/client"
	clusterv1 "github.com/barberpro/edge/protos/cluster/v1"
	"github.com/barberpro/edge/simulations/load"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// mustMaterial issues a certificate for id at ip from the CA in caDir and loads it.
func mustMaterial(t *testing.T, caDir string, id pki.Identity, ip string) *pki.Material {
	t.Helper()
	m, err := pki.Load(clustertest.MustIssue(t, caDir, id, ip))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mustOtherCA makes a second CA, unknown to the test's nodes.
func mustOtherCA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := pki.InitCA(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitVoters waits until n's group has want voters and n leads it.
func waitVoters(t *testing.T, n *cluster.Node, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if s := n.Store().Stats(); s.Voters >= want && n.Store().IsLeader() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group of %s: %+v, want %d voters", n.ID(), n.Store().Stats(), want)
}

// tlsStream is a raft.StreamLayer that dials over TLS with conf (the attacker's).
type tlsStream struct {
	net.Listener
	conf *tls.Config
}

func (s tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), s.conf)
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
	if err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Errorf("AppendEntries from an unproven client: err %v (response %+v), want an error with %q", err, ae, wantErr)
	}
	snap := bytes.Repeat([]byte{0xba}, 4096)
	var is raft.InstallSnapshotResponse
	err = trans.InstallSnapshot(id, target, &raft.InstallSnapshotRequest{
		RPCHeader: hdr, SnapshotVersion: raft.SnapshotVersionMax, Term: before.Term + 100, Leader: []byte(trans.LocalAddr()),
		LastLogIndex: before.LastLogIndex + 1000, LastLogTerm: before.Term + 100, Size: int64(len(snap)),
	}, &is, bytes.NewReader(snap))
	if err == nil || !strings.Contains(err.Error(), wantErr) {
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
		ln, err := net.Listen("tcp", "127.0.0.43:0")
		if err != nil {
			t.Fatal(err)
		}
		trans := raft.NewNetworkTransport(tlsStream{Listener: ln, conf: conf}, 1, 2*time.Second, io.Discard)
		defer trans.Close()
		raftAttack(t, trans, b, "tls: unknown certificate authority")
	})
	t.Run("TLS with a certificate of another jurisdiction", func(t *testing.T) {
		m := mustMaterial(t, clustertest.MustCA(t), pki.Identity{Jurisdiction: "us", City: "us-east", NodeID: "us-9"}, "127.0.0.43")
		conf := m.ClientTLS(nil)
		conf.ServerName = "127.0.0.42"
		ln, err := net.Listen("tcp", "127.0.0.43:0")
		if err != nil {
			t.Fatal(err)
		}
		trans := raft.NewNetworkTransport(tlsStream{Listener: ln, conf: conf}, 1, 2*time.Second, io.Discard)
		defer trans.Close()
		raftAttack(t, trans, b, "tls:")
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
// certificate of another jurisdiction gets its status (what `cluster status` needs)
// but has its proposal dropped: neither is applied. A client with a certificate of
// the node's own jurisdiction is served (the control: the same request works).
func Test_ActorRemote_ForwardingActorServesOnlyItsGroup(t *testing.T) {
	n := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind = "127.0.0.51" })
	ask := func(sys *actor.ActorSystem, provider string) (any, error) {
		return sys.Root.RequestFuture(actor.NewPID(n.ActorAddr(), "barberpro-raft"),
			&clusterv1.ProposeRequest{Command: st.CreateProvider(st.Provider(provider)), TimeoutMs: 2000}, 3*time.Second).Result()
	}
	applied := func(provider string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := n.Store().Provider(ctx, provider)
		return err == nil
	}

	t.Run("no certificate", func(t *testing.T) {
		sys := actorClient(t, "127.0.0.52", remote.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
		res, err := ask(sys, "p-nocert")
		if _, ok := res.(*clusterv1.ProposeReply); ok || err == nil {
			t.Errorf("a client without a certificate got an answer: %+v, %v", res, err)
		}
		if applied("p-nocert") {
			t.Error("a proposal from a client without a certificate was applied")
		}
	})
	t.Run("another jurisdiction", func(t *testing.T) {
		m := mustMaterial(t, clustertest.MustCA(t), pki.Identity{Jurisdiction: "us", City: "us-east", NodeID: "us-9"}, "127.0.0.53")
		sys := tlsActorClient(t, m, "127.0.0.53")
		res, err := sys.Root.RequestFuture(actor.NewPID(n.ActorAddr(), "barberpro-raft"), &clusterv1.NodeStatusRequest{}, 3*time.Second).Result()
		if st, ok := res.(*clusterv1.NodeStatusReply); !ok || st.NodeId != n.ID() {
			t.Fatalf("status across jurisdictions: %+v, %v (cluster status needs it)", res, err)
		}
		res, err = ask(sys, "p-us")
		if _, ok := res.(*clusterv1.ProposeReply); ok || err == nil {
			t.Errorf("a us node's proposal to the ar group was answered: %+v, %v", res, err)
		}
		if applied("p-us") {
			t.Error("a us node's proposal was applied by the ar group")
		}
	})
	t.Run("own jurisdiction (control)", func(t *testing.T) {
		m := mustMaterial(t, clustertest.MustCA(t), pki.Identity{Jurisdiction: "ar", City: "cordoba", NodeID: "cba-9"}, "127.0.0.54")
		sys := tlsActorClient(t, m, "127.0.0.54")
		res, err := ask(sys, "p-ar")
		if r, ok := res.(*clusterv1.ProposeReply); !ok || len(r.ErrorKinds) > 0 {
			t.Fatalf("an ar node's proposal: %+v, %v", res, err)
		}
		if !applied("p-ar") {
			t.Error("an ar node's proposal was not applied")
		}
	})
}

// Test_Node_RefusesCertificateThatDisagrees: a node is refused at start, saying
// why, when its certificate names another jurisdiction than its --city's, another
// city, another node id, or not its --bind IP.
func Test_Node_RefusesCertificateThatDisagrees(t *testing.T) {
	ca := clustertest.MustCA(t)
	cases := []struct {
		name string
		cert pki.Identity
		ip   string
		want string
	}{
		{"us certificate, --city buenos-aires", pki.Identity{Jurisdiction: "us", City: "us-east", NodeID: "ba-1"}, "127.0.0.61", `names jurisdiction "us"`},
		{"other city", pki.Identity{Jurisdiction: "ar", City: "cordoba", NodeID: "ba-1"}, "127.0.0.61", `names city "cordoba"`},
		{"other node id", pki.Identity{Jurisdiction: "ar", City: "buenos-aires", NodeID: "ba-2"}, "127.0.0.61", `names node "ba-2"`},
		{"other IP", pki.Identity{Jurisdiction: "ar", City: "buenos-aires", NodeID: "ba-1"}, "127.0.0.62", "--bind is 127.0.0.61"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cluster.LocalConfig()
			cfg.ID, cfg.City, cfg.Bind, cfg.DataDir = "ba-1", "buenos-aires", "127.0.0.61", t.TempDir()
			cfg.Logger = clustertest.Logger()
			cfg.TLSDir = clustertest.MustIssue(t, ca, tc.cert, tc.ip)
			n, err := cluster.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = n.Start()
			defer n.Stop()
			if !errors.Is(err, cluster.ErrCertificateMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, want ErrCertificateMismatch saying %q", err, tc.want)
			}
		})
	}
}

// countingListener is a TLS listener of the liar: it counts connections and
// completed handshakes.
type countingListener struct {
	ln                 net.Listener
	accepted, complete atomic.Int64
}

func listenCounting(t *testing.T, addr string, conf *tls.Config) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			go func() {
				defer c.Close()
				tc := tls.Server(c, conf)
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				if tc.Handshake() != nil {
					return
				}
				// In TLS 1.3 the client judges the server's certificate before
				// the server's handshake ends, and says so with an alert: read
				// to learn whether the client stayed.
				tc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := tc.Read(make([]byte, 1)); err == nil || errors.Is(err, io.EOF) || isTimeout(err) {
					if !isAlert(err) {
						l.complete.Add(1)
					}
				}
				io.Copy(io.Discard, tc)
			}()
		}
	}()
	return l
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isAlert(err error) bool { return err != nil && strings.Contains(err.Error(), "remote error") }

// Test_Liar_UsCertificateGossipingArGetsNothing: a process holding a valid us
// certificate joins gossip claiming to be an ar node of buenos-aires, hosting ar
// calendars, with Raft, actor and peer addresses of its own. The ar group never adds
// it (and never completes a handshake with its Raft listener) and placement never
// puts an ar calendar on it; ba-1 did see it in gossip and probed its certificate.
func Test_Liar_UsCertificateGossipingArGetsNothing(t *testing.T) {
	a := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind = "127.0.0.71" })
	const ip = "127.0.0.72"
	m := mustMaterial(t, clustertest.MustCA(t), pki.Identity{Jurisdiction: "us", City: "us-east", NodeID: "liar-1"}, ip)
	raftLn := listenCounting(t, ip+":0", m.ServerTLS(nil))
	actorLn := listenCounting(t, ip+":0", m.ServerTLS(nil))
	peerLn := listenCounting(t, ip+":0", m.ServerTLS(nil))

	mc := membership.LocalConfig()
	mc.Meta = membership.Meta{
		NodeID: "liar-1", BootID: membership.NewBootID(), City: "buenos-aires", Jurisdiction: "ar",
		RaftAddr: raftLn.ln.Addr().String(), ActorAddr: actorLn.ln.Addr().String(),
		HTTPAddr: peerLn.ln.Addr().String(), PeerAddr: peerLn.ln.Addr().String(),
		Kinds: []string{cluster.CalendarKind("ar")}, DiskID: "d15c",
	}
	mc.BindAddr, mc.BindPort, mc.Join, mc.Insecure = ip, 0, []string{a.GossipAddr()}, true
	mc.Logger = clustertest.Logger()
	liar, err := membership.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	if err := liar.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { liar.Shutdown() })

	c := client.New(a.URL(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// ba-1 sees the liar in gossip, and probes it.
	for {
		ms, err := c.Members(ctx)
		seen := false
		if err == nil {
			for _, m := range ms.Items {
				seen = seen || (m.ID == "liar-1" && m.Jurisdiction == "ar")
			}
		}
		if seen && peerLn.accepted.Load() > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("setup: ba-1 never saw or probed the liar (members %+v, %v; probes %d)", ms, err, peerLn.accepted.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ids []string
	for i := range 8 {
		p, err := c.CreateProvider(ctx, load.LoadProvider("buenos-aires", i), "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	// Several keeper rounds (250 ms), probes (500 ms) and topology resyncs (1 s).
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		servers, _ := a.Store().Servers()
		for _, s := range servers {
			if membership.NodeOf(s.ID) == "liar-1" {
				t.Fatalf("the ar group added the liar: %+v", servers)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, id := range ids {
		pl, err := c.Placement(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if pl.Node != a.ID() {
			t.Errorf("provider %s placed on %s (the liar holds a us certificate)", id, pl.Node)
		}
	}
	if n := raftLn.complete.Load(); n > 0 {
		t.Errorf("the liar's Raft listener completed %d handshakes (%d connections)", n, raftLn.accepted.Load())
	}
	if n := actorLn.accepted.Load(); n > 0 {
		t.Errorf("the liar's actor listener got %d connections: an ar calendar was sent its way", n)
	}
	t.Logf("liar: raft connections %d, actor connections %d, certificate probes %d",
		raftLn.accepted.Load(), actorLn.accepted.Load(), peerLn.accepted.Load())
}
