// Package clustertest starts real BarberPro nodes for tests: in-process nodes on
// loopback with free ports (MustStartNode), each with a certificate of the test's own
// cluster CA (MustCA, MustTLSDir), the token keys they verify against (TokenDir),
// and helpers to talk to them with a token of any role (Token, Client).
package clustertest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/pki"
	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/topology"
)

var (
	// testKeys maps a top-level test's name to its token key directory (TokenDir).
	testKeys sync.Map // string → string
	// nodeKeys maps a node MustStartNode started to its token key directory.
	nodeKeys sync.Map // *cluster.Node → string
)

// TokenDir returns the token key directory of the top-level test t belongs to
// (auth.Init in a temp dir of t on first use): every node MustStartNode starts
// for the test and its subtests verifies tokens against its key set, so the
// nodes of one test accept each other's relayed requests.
func TokenDir(t testing.TB) string {
	t.Helper()
	return perTestDir(t, &testKeys, "tokens", auth.Init)
}

// perTestDir returns the directory name made by mk in a temp dir of t, once per
// top-level test (subtests share it), remembered in m until that test ends.
func perTestDir(t testing.TB, m *sync.Map, name string, mk func(dir string) error) string {
	t.Helper()
	root, _, _ := strings.Cut(t.Name(), "/")
	if dir, ok := m.Load(root); ok {
		return dir.(string)
	}
	dir := filepath.Join(t.TempDir(), name)
	if err := mk(dir); err != nil {
		t.Fatalf("clustertest: make %s: %v", name, err)
	}
	if prev, loaded := m.LoadOrStore(root, dir); loaded {
		return prev.(string)
	}
	t.Cleanup(func() { m.Delete(root) })
	return dir
}

// KeySet returns the key set file of TokenDir(t), for cluster.Config.TokenKeys.
func KeySet(t testing.TB) string {
	t.Helper()
	return filepath.Join(TokenDir(t), auth.KeySetFile)
}

// Token returns a token (without "Bearer ") for sub in role, valid for an hour,
// signed with the key that node n verifies (n started by MustStartNode).
func Token(t testing.TB, n *cluster.Node, role auth.Role, sub string) string {
	t.Helper()
	dir, ok := nodeKeys.Load(n)
	if !ok {
		t.Fatalf("clustertest: node %s was not started by MustStartNode", n.ID())
	}
	tok, err := auth.Issue(dir.(string), role, sub, time.Hour)
	if err != nil {
		t.Fatalf("clustertest: token: %v", err)
	}
	return tok
}

// Client returns a client of node n that sends a token for sub in role.
func Client(t testing.TB, n *cluster.Node, role auth.Role, sub string) *client.Client {
	t.Helper()
	return client.New(n.URL(), nil).WithToken(Token(t, n, role, sub))
}

// Operator returns a client of node n with an operator token.
func Operator(t testing.TB, n *cluster.Node) *client.Client {
	t.Helper()
	return Client(t, n, auth.RoleOperator, "clustertest-operator")
}

// Logger is a logger for test nodes: warnings and errors only, unless
// BARBERPRO_TEST_LOG=debug.
func Logger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("BARBERPRO_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// GossipKey returns the gossip key of test t: the same 32 bytes for every node
// of its top-level test (a key per test name, so that two tests' nodes never
// join each other's gossip).
func GossipKey(t testing.TB) []byte {
	top, _, _ := strings.Cut(t.Name(), "/")
	sum := sha256.Sum256([]byte("barberpro clustertest gossip key " + top))
	return sum[:]
}

// cas holds each running top-level test's CA directory (test name -> string).
var cas sync.Map

// MustCA returns the directory of the cluster CA of the top-level test t belongs to
// (ca.crt, ca.key), made on first use in a temp dir of t: every node the test and
// its subtests start trusts it. Attack tests issue their own certificates from it
// (MustIssue) or make another CA to compare. The CA lives as long as the test that
// made it: a test whose subtests share nodes makes it first (MustStartNode does).
func MustCA(t testing.TB) string {
	t.Helper()
	return perTestDir(t, &cas, "ca", pki.InitCA)
}

// MustTLSDir issues a node certificate from t's CA (MustCA) for node id in city
// (its jurisdiction from the default topology), valid for ip, and returns the
// directory holding ca.crt, node.crt and node.key.
func MustTLSDir(t testing.TB, id, city, ip string) string {
	t.Helper()
	c, err := topology.Default().City(city)
	if err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	return MustIssue(t, MustCA(t), pki.Identity{Jurisdiction: c.Jurisdiction, City: city, NodeID: id}, ip)
}

// MustIssue issues a certificate for identity id valid for ip from the CA in caDir
// (any CA: attack tests name identities that disagree with the topology) and
// returns its directory.
func MustIssue(t testing.TB, caDir string, id pki.Identity, ip string) string {
	t.Helper()
	dir := t.TempDir()
	if err := pki.Issue(caDir, id, []net.IP{net.ParseIP(ip)}, dir); err != nil {
		t.Fatalf("clustertest: issue a certificate for %s: %v", id.URI(), err)
	}
	return dir
}

// MustStartNode starts a bootstrapped single node of cluster.LocalConfig in a temp
// dir (unless cfg.DataDir is set), verifying tokens against KeySet(t) (unless
// mutate sets TokenKeys to another key directory's keys.json), with mutate
// applied to its config, waits until it is ready, and stops it when the test
// ends. Token and Client make tokens it accepts. Unless mutate sets TLSDir, the
// node gets a certificate of the test's CA (MustTLSDir) for its ID, City and Bind.
func MustStartNode(t testing.TB, mutate func(*cluster.Config)) *cluster.Node {
	t.Helper()
	cfg := cluster.LocalConfig()
	cfg.ID, cfg.City, cfg.BootstrapExpect = "ba-1", "buenos-aires", 1
	cfg.FoundingWait = 0 // a lone test node: nobody could knock
	cfg.DataDir = t.TempDir()
	cfg.Logger = Logger()
	cfg.TokenKeys = KeySet(t)
	cfg.GossipKey = GossipKey(t)
	if mutate != nil {
		mutate(&cfg)
	}
	if cfg.TLSDir == "" {
		cfg.TLSDir = MustTLSDir(t, cfg.ID, cfg.City, cfg.Bind)
	}
	n, err := cluster.New(cfg)
	if err != nil {
		t.Fatalf("clustertest: new node: %v", err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("clustertest: start node: %v", err)
	}
	nodeKeys.Store(n, filepath.Dir(cfg.TokenKeys))
	t.Cleanup(func() { n.Stop(); nodeKeys.Delete(n) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client.New(n.URL(), HTTPClient(t, n)).WaitReady(ctx); err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	return n
}

// HTTPClient returns an HTTP client for n's public API: nil (the default client)
// when n serves plain HTTP, one trusting t's CA when it serves HTTPS (APITLS).
func HTTPClient(t testing.TB, n *cluster.Node) *http.Client {
	t.Helper()
	if !strings.HasPrefix(n.URL(), "https://") {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(MustCA(t), pki.CACertFile))
	if err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}}}
}
