package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// Test_LegacyDataDirStillServes: a data dir written by a629ac8 (Raft server id
// = the node id, no disk id in raft.db) is started with this build. The node's
// server id becomes NodeID@DiskID, which its own configuration does not list:
// it may not campaign, its vote guard refuses every vote, and the group (here
// a single node) never has a leader again.
func Test_LegacyDataDirStillServes(t *testing.T) {
	dir := t.TempDir()
	cfg := storage.LocalConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.Bootstrap = "ba-1", dir, "127.0.0.1:0", true
	cfg.Logger = st.Logger()
	s, err := storage.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Propose(ctx, st.CreateProvider(st.Provider("p"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	n, err := cluster.New(func() cluster.Config {
		c := cluster.LocalConfig()
		c.ID, c.City, c.BootstrapExpect, c.DataDir, c.FoundingWait = "ba-1", "buenos-aires", 1, dir, 0
		c.Logger = clustertest.Logger()
		c.TokenKeys = clustertest.KeySet(t)
		c.GossipKey = clustertest.GossipKey(t)
		c.TLSDir = clustertest.MustTLSDir(t, c.ID, c.City, c.Bind)
		return c
	}())
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	deadline := time.Now().Add(10 * time.Second)
	for n.Ready() != nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if err := n.Ready(); err != nil {
		st := n.Store().Stats()
		t.Fatalf("legacy data dir: %v (server %s, state %s, servers %+v)", err, n.Store().ID(), st.State, st.Servers)
	}
}
