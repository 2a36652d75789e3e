// Package membershiptest starts in-process membership nodes for tests: each on its
// own loopback IP with a free port, shut down when the test ends.
package membershiptest

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster/membership"
)

// Logger returns a JSON logger on stderr for tests. Its level comes from
// $BARBERPRO_TEST_LOG (debug, info, warn, error); default warn.
func Logger() *slog.Logger {
	level := slog.LevelWarn
	switch strings.ToLower(os.Getenv("BARBERPRO_TEST_LOG")) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "error":
		level = slog.LevelError
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// Config returns membership.LocalConfig for a node named nodeID in city (of
// jurisdiction), gossiping on ip with a free port and joining through join.
func Config(nodeID, city, jurisdiction, ip string, join ...string) membership.Config {
	c := membership.LocalConfig()
	c.Meta = membership.Meta{NodeID: nodeID, BootID: membership.NewBootID(), City: city, Jurisdiction: jurisdiction}
	c.BindAddr = ip
	c.Join = join
	c.Logger = Logger().With("node", nodeID)
	return c
}

// MustStart creates and starts a Membership from cfg and shuts it down when the
// test ends.
func MustStart(t testing.TB, cfg membership.Config) *membership.Membership {
	t.Helper()
	m, err := membership.New(cfg)
	if err != nil {
		t.Fatalf("membership.New(%s): %v", cfg.Meta.NodeID, err)
	}
	if err := m.Start(); err != nil {
		t.Fatalf("start %s: %v", cfg.Meta.NodeID, err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// WaitFor polls cond every 20 ms until it is true or timeout passes, then fails
// the test with what.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// StateOf returns the state m shows for nodeID ("" if unknown) and its boot id.
func StateOf(m *membership.Membership, nodeID string) (state, bootID string) {
	for _, mem := range m.AllMembers() {
		if mem.NodeID == nodeID {
			return mem.State, mem.BootID
		}
	}
	return "", ""
}
