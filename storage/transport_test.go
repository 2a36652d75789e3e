package storage

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestTransportDialsFromItsOwnIP: a Raft connection carries the node's own IP as
// its source (what iptables partitions in the simulations match on), not the
// kernel's pick (127.0.0.1 for any loopback destination).
func TestTransportDialsFromItsOwnIP(t *testing.T) {
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	stream, err := listenBound("127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	defer stream.Close()
	accepted := make(chan net.Addr, 1)
	go func() {
		if c, err := peer.Accept(); err == nil {
			accepted <- c.RemoteAddr()
			c.Close()
		}
	}()
	c, err := stream.Dial(raft.ServerAddress(peer.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := (<-accepted).(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
		t.Fatalf("raft connection from %s, want 127.0.0.2 (the transport's own IP)", got)
	}
}
