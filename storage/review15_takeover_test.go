//go:build !race

package storage_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// Review s15 (second reader). TestRestore_OldGroupCannotTakeOverTheRestoredNode
// with one change: the surviving old group's two servers lose power (a site
// outage) after the restore. Their fsm.db were committed without fsync, so
// Open discards them; the group is young (no snapshot yet: the default
// SnapshotThreshold is 8192 entries), so the rebuilt FSMs have no cluster id
// until raft replays the log, which takes a commit in the new term. The old
// group elects a leader meanwhile; it dials every address of its
// configuration — the restored node's too — offering no group (groupcheck.go:
// "nothing while it has no id"), and the restored node accepts dialers that
// offer none. The old leader's AppendEntries, at its higher term, reach the
// restored node, and the connections stay pooled after the old leader applied
// FoundGroup.
func TestReview15_OldGroupRebootedAfterPowerLossReachesTheRestoredNode(t *testing.T) {
	storage.SetBootID(t, "boot-1")
	base := storage.LocalConfig()
	base.Logger, base.Jurisdiction = st.Logger(), "ar"
	base.RaftTLS = storage.SelfSignedTLS(t)
	base.HeartbeatTimeout, base.ElectionTimeout, base.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
	base.SnapshotThreshold, base.SnapshotInterval = 1<<20, time.Hour // a young group: no snapshot yet
	old := st.MustOpenTCPCluster(t, 3, base)
	ctx := context.Background()
	fillBookings(t, old[0], 30)
	deadline := time.Now().Add(st.ReadyTimeout)
	for old[0].ClusterID() == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	oldID := old[0].ClusterID()
	file := filepath.Join(t.TempDir(), "ar.bpbackup")
	if _, err := old[0].BackupToFile(ctx, file); err != nil {
		t.Fatal(err)
	}
	for range 4 { // raise the old group's term well above the restored one's
		l := st.WaitLeader(t, old...)
		if err := l.Raft().LeadershipTransfer().Error(); err != nil {
			t.Fatal(err)
		}
	}
	st.WaitLeader(t, old...)
	oldTerm := old[0].Stats().Term

	// old[2] is lost; a backup is restored at its address.
	lostAddr := string(old[2].Addr())
	if err := old[2].Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := storage.RestoreBackup(file, dir, storage.RestoreOptions{Jurisdiction: "ar"}); err != nil {
		t.Fatal(err)
	}
	rcfg := base
	rcfg.NodeID, rcfg.DataDir, rcfg.RaftAddr = "restored1", dir, lostAddr
	r := st.MustOpen(t, rcfg)
	st.MustWaitLeader(t, r)
	newID := r.ClusterID()

	// The two survivors lose power: fsm.db committed without fsync, machine
	// rebooted.
	type node struct{ id, dir, addr string }
	var survivors []node
	for i, s := range old[:2] {
		survivors = append(survivors, node{fmt.Sprintf("node%d", i+1), storage.DataDir(s), string(s.Addr())})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := storage.MarkFSMUnclean(storage.DataDir(s), "boot-1"); err != nil {
			t.Fatal(err)
		}
	}
	storage.SetBootID(t, "boot-2")
	var back []*storage.Store
	for _, n := range survivors {
		c := base
		c.NodeID, c.DataDir, c.RaftAddr, c.Bootstrap = n.id, n.dir, n.addr, false
		back = append(back, st.MustOpen(t, c))
	}
	oldLeader := st.WaitLeader(t, back...)
	if got := oldLeader.ClusterID(); got != oldID {
		t.Logf("old leader's cluster id now %q (was %q)", got, oldID)
	}
	for i := range 10 {
		start := time.Duration(1000+i) * time.Hour
		if _, err := oldLeader.Propose(ctx, st.CreateBooking(st.Booking(fmt.Sprintf("old-after-%d", i), "p0", start, start+30*time.Minute, start+40*time.Minute))); err != nil {
			t.Logf("old group write: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)

	if got := r.ClusterID(); got != newID {
		t.Errorf("the restored node's cluster id changed to %q (old %q, restored %q)", got, oldID, newID)
	}
	if s := r.Stats(); s.State != "Leader" || s.Term >= oldTerm {
		t.Errorf("restored node: state %s term %d (the old group was at term %d before the outage): the old group's rebooted leader reached it", s.State, s.Term, oldTerm)
	}
	for i := range 10 {
		if _, err := r.Booking(ctx, fmt.Sprintf("old-after-%d", i)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("the old group's booking old-after-%d reached the restored node: %v", i, err)
		}
	}
	t.Logf("restored node refused %v foreign connections", storage.ForeignGroupRefused(r))
}
