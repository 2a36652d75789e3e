// Package clustertest starts real BarberPro nodes for tests: in-process nodes on
// loopback with free ports (MustStartNode), the token keys they verify against
// (TokenDir) and helpers to talk to them with a token of any role (Token,
// Client).
package clustertest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
)

var (
	// testKeys maps a test to its token key directory (TokenDir).
	testKeys sync.Map // testing.TB → string
	// nodeKeys maps a node MustStartNode started to its token key directory.
	nodeKeys sync.Map // *cluster.Node → string
)

// TokenDir returns the token key directory of test t (auth.Init in t.TempDir()
// on first use): every node MustStartNode starts for t verifies tokens against
// its key set, so the nodes of one test accept each other's relayed requests.
func TokenDir(t testing.TB) string {
	t.Helper()
	if dir, ok := testKeys.Load(t); ok {
		return dir.(string)
	}
	dir := filepath.Join(t.TempDir(), "tokens")
	if err := auth.Init(dir); err != nil {
		t.Fatalf("clustertest: token keys: %v", err)
	}
	if prev, loaded := testKeys.LoadOrStore(t, dir); loaded {
		return prev.(string)
	}
	t.Cleanup(func() { testKeys.Delete(t) })
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

// MustStartNode starts a bootstrapped single node of cluster.LocalConfig in a temp
// dir (unless cfg.DataDir is set), verifying tokens against KeySet(t) (unless
// mutate sets TokenKeys to another key directory's keys.json), with mutate
// applied to its config, waits until it is ready, and stops it when the test
// ends. Token and Client make tokens it accepts.
func MustStartNode(t testing.TB, mutate func(*cluster.Config)) *cluster.Node {
	t.Helper()
	cfg := cluster.LocalConfig()
	cfg.ID, cfg.City, cfg.BootstrapExpect = "ba-1", "buenos-aires", 1
	cfg.FoundingWait = 0 // a lone test node: nobody could knock
	cfg.DataDir = t.TempDir()
	cfg.Logger = Logger()
	cfg.TokenKeys = KeySet(t)
	if mutate != nil {
		mutate(&cfg)
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
	if err := client.New(n.URL(), nil).WaitReady(ctx); err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	return n
}
