//go:build !race

// Several nodes (protoactor remotes) in one process race inside protoactor
// under the race detector: like the other multi-node tests, not under -race.

package cluster_test

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/edge/client"
)

// Test_RetryJoin_SeedDownThenUp: a node started with --join while its seed is
// down starts anyway (it exited 1), reports unready, logs each attempt, founds
// no group though it alone meets bootstrap-expect 1, and joins the seed's group
// once the seed is up (and says so).
func Test_RetryJoin_SeedDownThenUp(t *testing.T) {
	// The seed's port is reserved on a loopback address of its own: on
	// 127.0.0.1 the joiner's dials (and other tests' sockets) could take the
	// freed port before the seed binds it ("address already in use", seen in
	// CI, session 21).
	const seedIP = "127.0.0.246" // no other test or scenario uses it
	l, err := net.Listen("tcp", seedIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	seedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	seedAddr := seedIP + ":" + strconv.Itoa(seedPort)

	cfg := cluster.LocalConfig()
	cfg.ID, cfg.City, cfg.BootstrapExpect, cfg.FoundingWait = "cba-1", "cordoba", 1, 0
	var logs syncBuffer
	cfg.DataDir, cfg.Logger = t.TempDir(), slog.New(slog.NewJSONHandler(&logs, nil))
	cfg.TokenKeys, cfg.GossipKey = clustertest.KeySet(t), clustertest.GossipKey(t)
	cfg.Join = []string{seedAddr}
	cfg.TLSDir = clustertest.MustTLSDir(t, cfg.ID, cfg.City, cfg.Bind)
	joiner, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := joiner.Start(); err != nil {
		t.Fatalf("start with its seed down: %v (want it to keep trying)", err)
	}
	t.Cleanup(func() { joiner.Stop() })
	time.Sleep(time.Second)
	if err := joiner.Ready(); err == nil || !strings.Contains(err.Error(), "--join seeds") {
		t.Fatalf("Ready with the seed down = %v, want the joining reason", err)
	}
	if joiner.Store().HasState() {
		t.Fatal("a node whose seeds never answered founded a group")
	}
	// Attempts at 0 s and 0.5 s (the backoff doubles from 500 ms): each logged.
	var attempts []float64
	for _, l := range logLines(&logs) {
		if l["msg"] == "no --join seed answered; retrying" {
			if a, ok := l["attempt"].(float64); ok {
				attempts = append(attempts, a)
			}
		}
	}
	if len(attempts) < 2 || attempts[0] != 1 || attempts[1] != 2 {
		t.Fatalf("attempts logged while the seed was down: %v, want 1, 2, ...\n%s", attempts, logs.String())
	}

	clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind, c.GossipPort = seedIP, seedPort })
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if err := client.New(joiner.URL(), nil).WaitReady(ctx); err != nil {
		t.Fatalf("the joiner never became ready once its seed was up: %v (Ready: %v)", err, joiner.Ready())
	}
	if !joiner.Store().HasState() {
		t.Fatal("ready without the group's state")
	}
	if !strings.Contains(logs.String(), `"msg":"joined the cluster`) {
		t.Errorf("no line says the node joined:\n%s", logs.String())
	}
}
