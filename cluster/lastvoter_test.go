package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/edge/client"
)

// Test_LastVoter_RemoveAndLeave: the only voter of a group can neither be
// removed (it answered 500 "raft: need at least one voter") nor leave (it
// answered 202, then the process exited with that error): both are 409
// last_voter, and the node keeps serving.
func Test_LastVoter_RemoveAndLeave(t *testing.T) {
	n := clustertest.MustStartNode(t, nil)
	c := clustertest.Operator(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil || len(st.Groups) != 1 {
		t.Fatalf("status %+v, %v", st, err)
	}
	if _, err := c.Remove(ctx, st.Node, true); client.Code(err) != "last_voter" {
		t.Fatalf("remove the only voter: %v, want 409 last_voter", err)
	}
	if _, err := c.Leave(ctx); client.Code(err) != "last_voter" {
		t.Fatalf("leave of the only voter: %v, want 409 last_voter", err)
	}
	select {
	case err := <-n.Done():
		t.Fatalf("the node stopped after a refused leave: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("status after the refusals: %v", err)
	}
}
