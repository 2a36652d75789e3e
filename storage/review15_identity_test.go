package storage_test

import (
	"testing"
	"time"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// Review s15 (second reader): after a power loss (fsm.db committed without
// fsync, machine rebooted) a node's data dir still holds its group's history
// in raft.db (the FoundGroup entry) or a snapshot, but ReadIdentity reports
// no cluster id, so the node gossips none from its first message — the
// identity that cluster uses to refuse "a node holding another group's
// history ... from the moment it shows up" — and, until raft replays the log
// (after a commit in a new term), its Raft transport offers no group either
// (groupcheck.go), so the group check waves it through.
func TestReview15_ReadIdentityAfterPowerLossKeepsClusterID(t *testing.T) {
	storage.SetBootID(t, "boot-1")
	cfg := st.Config(t)
	s := st.MustOpen(t, cfg)
	st.MustWaitLeader(t, s)
	deadline := time.Now().Add(st.ReadyTimeout)
	for s.ClusterID() == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	want := s.ClusterID()
	if want == "" {
		t.Fatal("no cluster id")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := storage.MarkFSMUnclean(cfg.DataDir, "boot-1"); err != nil {
		t.Fatal(err)
	}
	storage.SetBootID(t, "boot-2")
	id, err := storage.ReadIdentity(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if !id.HasState || id.ClusterID != want {
		t.Fatalf("ReadIdentity after a power loss: has state %v, cluster id %q; the dir's raft log names group %q", id.HasState, id.ClusterID, want)
	}
}
