package cluster_test

import (
	"net"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
)

// Test_Stop_UnusedConnectionsDoNotFailIt: a client's HTTP transport keeps
// connections it dialled and never used (a dial that lost the race to an idle
// connection). net/http's Shutdown waits five seconds on such a connection, so
// a node holding one on its peer listener stopped with "context deadline
// exceeded" when its shutdown timeout was shorter — a clean `cluster leave`
// exited 1 (Test_Cluster_GracefulLeaveLosesNoRequest in CI). Stop closes them.
func Test_Stop_UnusedConnectionsDoNotFailIt(t *testing.T) {
	n := clustertest.MustStartNode(t, func(c *cluster.Config) { c.ShutdownTimeout = time.Second })
	for _, addr := range []string{n.HTTPAddr(), n.PeerAddr()} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	time.Sleep(100 * time.Millisecond) // both accepted
	if err := n.Stop(); err != nil {
		t.Fatalf("Stop with two unused connections open = %v, want nil", err)
	}
}
