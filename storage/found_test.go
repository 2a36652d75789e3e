package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

func foundGroup(id string) *bookingv1.Command {
	return &bookingv1.Command{Op: &bookingv1.Command_FoundGroup{FoundGroup: &bookingv1.FoundGroup{ClusterId: id}}}
}

// TestClusterID: a group's first leader gives it a cluster id on its own; a
// FoundGroup never changes it afterwards (the first one applied wins); an
// empty id is invalid; a node holding state refuses to found another group.
func TestClusterID(t *testing.T) {
	s := st.MustOpen(t, st.Config(t))
	deadline := time.Now().Add(st.ReadyTimeout)
	for s.ClusterID() == "" {
		if time.Now().After(deadline) {
			t.Fatal("the first leader gave its group no cluster id")
		}
		time.Sleep(10 * time.Millisecond)
	}
	first := s.ClusterID()
	res, err := s.Propose(context.Background(), foundGroup("another"))
	if err != nil || res.ClusterId != first || s.ClusterID() != first {
		t.Fatalf("a second FoundGroup: %v %v, cluster id now %q, want %q kept", res, err, s.ClusterID(), first)
	}
	if _, err := s.Propose(context.Background(), foundGroup("")); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("empty cluster id: %v", err)
	}
	if err := s.Found(); !errors.Is(err, storage.ErrAlreadyFounded) {
		t.Fatalf("Found on a founded node: %v", err)
	}
}

// TestFound: a store opened without Bootstrap founds a group with Found, leads
// it, and the group gets a cluster id; replicas of a 3-node group agree on it.
func TestFound(t *testing.T) {
	cfg := st.Config(t)
	cfg.Bootstrap = false
	s := st.MustOpen(t, cfg)
	if s.HasState() {
		t.Fatal("a new store holds Raft state")
	}
	if err := s.Found(); err != nil {
		t.Fatal(err)
	}
	st.MustWaitLeader(t, s)
	if !s.HasState() {
		t.Fatal("a founded store holds no Raft state")
	}
	stores := st.MustOpenCluster(t, 3)
	deadline := time.Now().Add(st.ReadyTimeout)
	for {
		a, b, c := stores[0].ClusterID(), stores[1].ClusterID(), stores[2].ClusterID()
		if a != "" && a == b && b == c {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas' cluster ids: %q %q %q", a, b, c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
