package cluster

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// TestResolvePorts_HoldsEveryPickedPort: every port picked for a zero config
// port stays bound until its component takes it, so no two components (nor
// another process) get the same port. Closing each pick at once let the kernel
// hand a port out twice, and gossip failed to bind with "address already in use".
func TestResolvePorts_HoldsEveryPickedPort(t *testing.T) {
	cfg := LocalConfig()
	cfg.Bind = "127.0.0.1"
	n := &Node{cfg: cfg}
	if err := n.resolvePorts(); err != nil {
		t.Fatal(err)
	}
	ports := []*int{&n.cfg.HTTPPort, &n.cfg.RaftPort, &n.cfg.GossipPort, &n.cfg.ActorPort, &n.cfg.PeerPort}
	seen := map[int]bool{}
	for _, p := range ports {
		if *p == 0 || seen[*p] {
			t.Fatalf("port %d picked twice or not at all: %v", *p, seen)
		}
		seen[*p] = true
		ln, err := net.Listen("tcp", hostPort(cfg.Bind, *p))
		if err == nil {
			ln.Close()
			t.Fatalf("picked port %d is free before its component binds it", *p)
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("listen on picked port %d: %v", *p, err)
		}
	}
	// Releasing a port frees it for the component that binds it itself.
	n.releasePort(&n.cfg.GossipPort)
	ln, err := net.Listen("tcp", hostPort(cfg.Bind, n.cfg.GossipPort))
	if err != nil {
		t.Fatalf("released gossip port: %v", err)
	}
	ln.Close()
	for _, p := range ports {
		n.releasePort(p)
	}
}
