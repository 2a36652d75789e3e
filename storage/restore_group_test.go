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

// TestRestore_OldGroupCannotTakeOverTheRestoredNode: a group of three (mutual
// TLS, as cluster runs it) keeps running — at a higher term — after one of its
// servers was "lost" and a backup restored at that server's address. The old
// leader's configuration still lists the address, so it keeps sending
// AppendEntries (heartbeats, then the entries and a snapshot the restored
// node lacks) there. The restored node refuses the connections (another
// group: groupcheck.go), so it keeps exactly the backup's records, its own
// cluster id and its leadership, and takes writes; none of the old group's
// later bookings ever appears on it.
func TestRestore_OldGroupCannotTakeOverTheRestoredNode(t *testing.T) {
	base := storage.LocalConfig()
	base.Logger, base.Jurisdiction = st.Logger(), "ar"
	base.RaftTLS = storage.SelfSignedTLS(t)
	// DefaultConfig's timeouts: LocalConfig's 100ms lease lost leadership
	// while the group grew over TLS on a loaded machine.
	base.HeartbeatTimeout, base.ElectionTimeout, base.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 200*time.Millisecond
	old := st.MustOpenTCPCluster(t, 3, base)
	leader := old[0]
	ctx := context.Background()
	ids := fillBookings(t, leader, 30)
	deadline := time.Now().Add(st.ReadyTimeout)
	for leader.ClusterID() == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	oldID := leader.ClusterID()
	file := filepath.Join(t.TempDir(), "ar.bpbackup")
	h, err := leader.BackupToFile(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	// A long-lived group is far past term 1: move leadership around a few
	// times (each transfer is a new term), so the old leader's term is above
	// anything the restored group reaches in this test.
	for range 4 {
		l := st.WaitLeader(t, old...)
		if err := l.Raft().LeadershipTransfer().Error(); err != nil {
			t.Fatal(err)
		}
	}
	leader = st.WaitLeader(t, old...)
	var lost *storage.Store
	for _, s := range old {
		if s != leader {
			lost = s
			break
		}
	}
	addr := string(lost.Addr())
	if err := lost.Close(); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := storage.RestoreBackup(file, dir, storage.RestoreOptions{Jurisdiction: "ar"}); err != nil {
		t.Fatal(err)
	}
	rcfg := base
	rcfg.NodeID, rcfg.DataDir, rcfg.RaftAddr = "restored1", dir, addr
	r := st.MustOpen(t, rcfg)
	st.MustWaitLeader(t, r)
	newID := r.ClusterID()
	if newID == "" || newID == oldID {
		t.Fatalf("restored cluster id %q (old %q)", newID, oldID)
	}

	// The old group goes on writing (leader + the third server are a quorum)
	// while its leader keeps reaching for the restored node's address.
	oldTerm := leader.Stats().Term
	for i := range 20 {
		start := time.Duration(1000+i) * time.Hour
		if _, err := leader.Propose(ctx, st.CreateBooking(st.Booking(fmt.Sprintf("old-after-%d", i), "p0", start, start+30*time.Minute, start+40*time.Minute))); err != nil {
			t.Fatalf("old group write: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	compactLogNow(t, leader) // from here the old leader would send a snapshot
	time.Sleep(time.Second)

	if got := r.ClusterID(); got != newID {
		t.Fatalf("the restored node's cluster id changed to %q (old group %q, restored %q)", got, oldID, newID)
	}
	if st := r.Stats(); st.State != "Leader" || st.Term >= oldTerm {
		t.Fatalf("restored node: state %s term %d (the old group is at term %d): it followed the old group", st.State, st.Term, oldTerm)
	}
	for i := range 20 {
		if _, err := r.Booking(ctx, fmt.Sprintf("old-after-%d", i)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("the old group's booking old-after-%d reached the restored node: %v", i, err)
		}
	}
	for _, id := range ids {
		if _, err := r.Booking(ctx, id); err != nil {
			t.Fatalf("restored booking %s: %v", id, err)
		}
	}
	if from, ok := r.RestoredFrom(); !ok || from.AppliedIndex != h.AppliedIndex {
		t.Fatalf("restored_from %+v %v", from, ok)
	}
	if n := storage.ForeignGroupRefused(r); n == 0 {
		t.Fatal("the restored node counted no refused connection: the old leader never reached it, the test proves nothing")
	}
	start := 2000 * time.Hour
	if _, err := r.Propose(ctx, st.CreateBooking(st.Booking("new-after", "p0", start, start+30*time.Minute, start+40*time.Minute))); err != nil {
		t.Fatalf("the restored group takes no write: %v", err)
	}
}
