// Package clustertest starts real BarberPro nodes for tests: in-process nodes on
// loopback with free ports (MustStartNode), and helpers to talk to them.
package clustertest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/edge/client"
)

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
// dir (unless cfg.DataDir is set), with mutate applied to its config, waits until it
// is ready, and stops it when the test ends.
func MustStartNode(t testing.TB, mutate func(*cluster.Config)) *cluster.Node {
	t.Helper()
	cfg := cluster.LocalConfig()
	cfg.ID, cfg.City, cfg.BootstrapExpect = "ba-1", "buenos-aires", 1
	cfg.FoundingWait = 0 // a lone test node: nobody could knock
	cfg.DataDir = t.TempDir()
	cfg.Logger = Logger()
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
	t.Cleanup(func() { n.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client.New(n.URL(), nil).WaitReady(ctx); err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	return n
}
