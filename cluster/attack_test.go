package cluster_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/pki"
	"github.com/barberpro/edge/simulations/load"
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
			cfg.TokenKeys = clustertest.KeySet(t)
			cfg.GossipKey = clustertest.GossipKey(t)
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
	// The liar holds the gossip key (every node does): it joins and gossips its lies.
	mc.BindAddr, mc.BindPort, mc.Join, mc.SecretKey = ip, 0, []string{a.GossipAddr()}, clustertest.GossipKey(t)
	mc.Logger = clustertest.Logger()
	liar, err := membership.New(mc)
	if err != nil {
		t.Fatal(err)
	}
	if err := liar.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { liar.Shutdown() })

	c := clustertest.Operator(t, a)
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

// Test_SingleNode_APITLS: with APITLS the public API answers HTTPS (TLS 1.3) with
// the node certificate, verified with the CA and the node's IP, and nothing on
// plain HTTP.
func Test_SingleNode_APITLS(t *testing.T) {
	n := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind, c.APITLS = "127.0.0.85", true })
	if !strings.HasPrefix(n.URL(), "https://") {
		t.Fatalf("URL %s", n.URL())
	}
	hc := clustertest.HTTPClient(t, n)
	resp, err := hc.Get(n.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz over https: %s, tls %+v", resp.Status, resp.TLS)
	}
	if resp, err := http.Get("http://" + n.HTTPAddr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the API answered plain HTTP with APITLS on")
		}
	}
}

// TestConfig_RequiresTLSDir: no node runs without its certificate; there is no
// setting that turns mutual TLS off.
func TestConfig_RequiresTLSDir(t *testing.T) {
	cfg := cluster.LocalConfig()
	cfg.ID, cfg.City, cfg.DataDir = "ba-1", "buenos-aires", t.TempDir()
	cfg.TokenKeys = clustertest.KeySet(t)
	cfg.GossipKey = clustertest.GossipKey(t)
	if _, err := cluster.New(cfg); !errors.Is(err, cluster.ErrBadConfig) || !strings.Contains(err.Error(), "tls dir") {
		t.Fatalf("New without TLSDir = %v", err)
	}
}

// TestConfig_RequiresGossipKey: gossip is never in the clear; the error says how
// to make a key and where to pass it.
func TestConfig_RequiresGossipKey(t *testing.T) {
	cfg := cluster.LocalConfig()
	cfg.ID, cfg.City, cfg.DataDir = "ba-1", "buenos-aires", t.TempDir()
	cfg.TokenKeys = clustertest.KeySet(t)
	cfg.TLSDir = clustertest.MustTLSDir(t, cfg.ID, cfg.City, cfg.Bind)
	for _, key := range [][]byte{nil, []byte("short")} {
		cfg.GossipKey = key
		_, err := cluster.New(cfg)
		if !errors.Is(err, cluster.ErrBadConfig) || !strings.Contains(err.Error(), "BARBERPRO_GOSSIP_KEY") {
			t.Fatalf("New with a %d-byte gossip key = %v, want a bad config naming BARBERPRO_GOSSIP_KEY", len(key), err)
		}
	}
	cfg.GossipKey = clustertest.GossipKey(t)
	if _, err := cluster.New(cfg); err != nil {
		t.Fatalf("New with a 32-byte key: %v", err)
	}
}
