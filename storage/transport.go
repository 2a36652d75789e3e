package storage

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// boundStream is raft's TCP stream layer, except that it dials from the IP it
// listens on: peers (and firewall rules) see the node's own address as the
// source of its Raft connections, as of every other connection a node opens
// (gossip, actor remote, HTTP relay). raft's own TCPStreamLayer dials unbound,
// so on a loopback cluster (127.0.0.x per node) every Raft connection came from
// 127.0.0.1, and a partition cut gossip and actors but never Raft.
type boundStream struct {
	ln   *net.TCPListener
	from *net.TCPAddr // nil when listening on an unspecified IP
}

var _ raft.StreamLayer = (*boundStream)(nil)

func (s *boundStream) Accept() (net.Conn, error) { return s.ln.Accept() }
func (s *boundStream) Close() error              { return s.ln.Close() }
func (s *boundStream) Addr() net.Addr            { return s.ln.Addr() }

func (s *boundStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if s.from != nil {
		d.LocalAddr = s.from
	}
	return d.Dial("tcp", string(addr))
}

// newTCPTransport listens on bind (host:port, a specific IP: raft advertises it)
// and dials from that IP.
func newTCPTransport(bind string, logger hclog.Logger) (*raft.NetworkTransport, error) {
	s, err := listenBound(bind)
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: s, MaxPool: 3, Timeout: 10 * time.Second, Logger: logger,
	}), nil
}

func listenBound(bind string) (*boundStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().(*net.TCPAddr)
	if addr.IP == nil || addr.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raft address %s is not advertisable: give a specific IP", bind)
	}
	return &boundStream{ln: ln.(*net.TCPListener), from: &net.TCPAddr{IP: addr.IP}}, nil
}
