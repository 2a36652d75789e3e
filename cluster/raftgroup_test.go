package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/membership/membershiptest"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestGroupKeeper_NeverReplacesAVoterThatAnswersRaft: a member (verified or
// not: metadata may lie, review 8 finding 2) that shows a new disk does not
// make the leader remove its former disk while that voter answered Raft within
// the dead-server timeout, nor add the new one; once the voter has been silent
// that long (the control, deadAfter ~0), it is replaced.
func TestGroupKeeper_NeverReplacesAVoterThatAnswersRaft(t *testing.T) {
	stores := st.MustOpenCluster(t, 2)
	leader, follower := stores[0], stores[1]
	id := string(follower.ID())
	for deadline := time.Now().Add(5 * time.Second); leader.LastContact(id).IsZero(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the follower never answered the leader")
		}
	}
	servers := func() []storage.Server {
		s, err := leader.Servers()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	var olds []storage.Server
	for _, s := range servers() {
		if s.ID == id {
			olds = append(olds, s)
		}
	}
	m := membership.Member{Meta: membership.Meta{NodeID: membership.NodeOf(id), DiskID: "evil", RaftAddr: "127.0.0.1:1"}}
	g := &groupKeeper{store: leader, deadAfter: time.Hour, log: slog.New(slog.NewTextHandler(io.Discard, nil)), events: &eventLog{max: 8}}
	g.admit(context.Background(), m, olds, leader.ClusterID())
	for _, s := range servers() {
		if s.ID == m.ServerID() {
			t.Fatalf("added %s while %s answers Raft: %+v", s.ID, id, servers())
		}
	}
	if len(servers()) != 2 {
		t.Fatalf("removed the voter %s that answers Raft: %+v", id, servers())
	}

	g.deadAfter = time.Nanosecond // control: a voter silent for the timeout is replaced
	g.admit(context.Background(), m, olds, leader.ClusterID())
	var gone, added = true, false
	for _, s := range servers() {
		gone = gone && s.ID != id
		added = added || s.ID == m.ServerID()
	}
	if !gone || !added {
		t.Fatalf("control: %s not replaced by %s: %+v", id, m.ServerID(), servers())
	}
}

type verifiesNobody struct{}

func (verifiesNobody) Verified(membership.Member) bool { return false }

// TestGroupKeeper_RemovesAMemberNeverVerified: a Raft server whose node gossip
// shows alive but whose certificate never verifies (a process gossiping a dead
// voter's id) is removed once it has been unverified and silent on Raft for the
// dead-server timeout; before, the keeper skipped unverified members and such a
// server stayed in the configuration for good. A voter that still answers Raft
// stays however unverified (the control).
func TestGroupKeeper_RemovesAMemberNeverVerified(t *testing.T) {
	stores := st.MustOpenCluster(t, 3)
	leader, live, dead := stores[0], stores[1], stores[2]
	deadID, liveID := string(dead.ID()), string(live.ID())
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}
	self := membershiptest.MustStart(t, membershiptest.Config(membership.NodeOf(string(leader.ID())), "buenos-aires", "ar", "127.0.0.85"))
	for i, id := range []string{deadID, liveID} {
		c := membershiptest.Config(membership.NodeOf(id), "cordoba", "ar", fmt.Sprintf("127.0.0.%d", 86+i), self.GossipAddr())
		c.Meta.RaftAddr = "127.0.0.1:1"
		membershiptest.MustStart(t, c)
	}
	membershiptest.WaitFor(t, 10*time.Second, "the leader's gossip sees both", func() bool { return len(self.Members()) == 3 })
	g := &groupKeeper{store: leader, members: self, verified: verifiesNobody{}, jurisdiction: "ar", deadAfter: 500 * time.Millisecond,
		started: time.Now(), log: slog.New(slog.NewTextHandler(io.Discard, nil)), events: &eventLog{max: 8}}
	has := func(id string) bool {
		servers, err := leader.Servers()
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(servers, func(s storage.Server) bool { return s.ID == id })
	}
	g.reconcile(context.Background())
	if !has(deadID) {
		t.Fatal("removed an unverified member at once")
	}
	time.Sleep(700 * time.Millisecond)
	g.reconcile(context.Background())
	if has(deadID) {
		t.Fatalf("%s, unverified and silent for the timeout, is still a server", deadID)
	}
	if !has(liveID) {
		t.Fatalf("removed %s, which answers Raft", liveID)
	}
}
