//go:build !race

package storage_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestStore_FollowerKillNineWithDeferredCommits: a follower answers (applies)
// entries into its open transaction and dies (kill -9: its data dir as it
// is then, the open transaction lost). Reopened on that image, the node
// must get the lost entries back from raft (its log holds them; raft
// replays after the latest snapshot, the FSM skips what fsm.db holds), hold
// every acknowledged booking once Ready, and agree with the other replicas.
func TestStore_FollowerKillNineWithDeferredCommits(t *testing.T) {
	cfg := slowElections()
	cfg.Logger = st.Logger()
	cfg.FSMSyncInterval = time.Hour // nothing commits by time
	stores, trans := st.MustOpenInmemClusterWith(t, 3, cfg)
	leader, victim := stores[0], stores[2]

	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	// A snapshot in the middle: raft replays from it after the restart.
	var acked []string
	for j := range 30 {
		if j == 10 {
			waitFor(t, "follower applies the first bookings", st.ReadyTimeout, func() bool {
				return victim.Stats().AppliedIndex >= leader.Stats().AppliedIndex
			})
			if err := victim.Raft().Snapshot().Error(); err != nil {
				t.Fatal(err)
			}
		}
		id := fmt.Sprint("b", j)
		off := time.Duration(j) * hour
		mustPropose(t, leader, st.CreateBooking(st.Booking(id, "p", off, off+min30, off+min30)))
		acked = append(acked, id)
	}
	waitFor(t, "follower applies every booking", st.ReadyTimeout, func() bool {
		return victim.Stats().AppliedIndex >= leader.Stats().AppliedIndex
	})
	// Cut it off: nothing writes to its dir while it is copied (its FSM is
	// idle, its sync loop ticks hourly, no entries arrive).
	for i := range trans[:2] {
		trans[i].Disconnect(trans[2].LocalAddr())
		trans[2].Disconnect(trans[i].LocalAddr())
	}
	applied, committed := victim.Stats().AppliedIndex, storage.StoreCommittedIndex(victim)
	if committed >= applied {
		t.Fatalf("follower committed %d of %d applied: the test needs entries applied and not committed", committed, applied)
	}
	crashDir := filepath.Join(t.TempDir(), "crashed")
	if err := copyDir(storage.DataDir(victim), crashDir); err != nil {
		t.Fatal(err)
	}
	addr := victim.Addr()
	if err := victim.Close(); err != nil {
		t.Fatal(err)
	}

	c := cfg
	c.NodeID, c.DataDir, c.Bootstrap = string(victim.ID()), crashDir, false
	_, tr := raft.NewInmemTransport(addr)
	c.Transport = tr
	restarted := st.MustOpen(t, c)
	rejoin(t, restarted, tr, trans[:2])
	if missing := missingBookings(restarted, acked); len(missing) > 0 {
		t.Fatalf("Ready after kill -9 and restart, yet %d of %d acknowledged bookings missing: %v", len(missing), len(acked), missing)
	}
	waitFor(t, "restarted follower catches up", st.ReadyTimeout, func() bool {
		return restarted.Stats().AppliedIndex >= leader.Stats().AppliedIndex
	})
	if missing := missingBookings(restarted, acked); len(missing) > 0 {
		t.Fatalf("after kill -9 and restart: %d of %d acknowledged bookings missing: %v", len(missing), len(acked), missing)
	}
	d0, _ := leader.Digest()
	if d, _ := restarted.Digest(); !bytes.Equal(d, d0) {
		t.Fatal("the restarted follower's state differs from the leader's")
	}
}
