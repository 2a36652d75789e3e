package storage

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// tlsHandshakeTimeout bounds the TLS handshake of one Raft connection, accepted or
// dialed: a peer that connects and says nothing costs one goroutine for this long.
const tlsHandshakeTimeout = 5 * time.Second

// boundStream is raft's TCP stream layer, except that it dials from the IP it
// listens on: peers (and firewall rules) see the node's own address as the
// source of its Raft connections, as of every other connection a node opens
// (gossip, actor remote, HTTP relay). raft's own TCPStreamLayer dials unbound,
// so on a loopback cluster (127.0.0.x per node) every Raft connection came from
// 127.0.0.1, and a partition cut gossip and actors but never Raft.
//
// With a TLS config (Config.RaftTLS) every connection is TLS both ways: an
// accepted one does its server handshake on its first read or write (in raft's
// connection goroutine, so a slow or hostile peer never holds up Accept), and a
// dialed one completes its client handshake, with ServerName set to the dialed
// host, before Dial returns. A connection whose handshake fails is closed; raft
// never sees a byte from it.
//
// With a groupCheck (groupcheck.go) the TLS handshake also carries the
// dialer's Raft group, and an acceptor of another group refuses it.
type boundStream struct {
	ln     *net.TCPListener
	from   *net.TCPAddr // nil when listening on an unspecified IP
	tls    *tls.Config  // nil: plain TCP (storage's own tests only)
	accept *tls.Config  // tls as a server (with the group check)
	group  *groupCheck  // nil: no group check
}

var _ raft.StreamLayer = (*boundStream)(nil)

// Accept waits for the next connection; see boundStream for TLS.
func (s *boundStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil || s.tls == nil {
		return c, err
	}
	conf := s.accept
	if conf == nil {
		conf = s.tls
	}
	return &serverConn{Conn: tls.Server(c, conf)}, nil
}

func (s *boundStream) Close() error   { return s.ln.Close() }
func (s *boundStream) Addr() net.Addr { return s.ln.Addr() }

// Dial connects to addr from the stream's own IP; see boundStream for TLS.
func (s *boundStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if s.from != nil {
		d.LocalAddr = s.from
	}
	c, err := d.Dial("tcp", string(addr))
	if err != nil || s.tls == nil {
		return c, err
	}
	host, _, err := net.SplitHostPort(string(addr))
	if err != nil {
		c.Close()
		return nil, err
	}
	conf := s.tls.Clone()
	conf.ServerName = host
	if s.group != nil {
		conf.NextProtos = s.group.clientProtos()
	}
	tc := tls.Client(c, conf)
	ctx, cancel := context.WithTimeout(context.Background(), min(timeout, tlsHandshakeTimeout))
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		if len(conf.NextProtos) > 0 && strings.Contains(err.Error(), "no application protocol") {
			return nil, fmt.Errorf("storage: raft TLS handshake with %s: %w (the server there belongs to another raft group than this node's %s)",
				addr, err, strings.TrimPrefix(conf.NextProtos[0], groupALPNPrefix))
		}
		return nil, fmt.Errorf("storage: raft TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// serverConn is an accepted TLS connection that completes its handshake, within
// tlsHandshakeTimeout, before its first read or write.
type serverConn struct {
	*tls.Conn
	once sync.Once
	err  error
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
		defer cancel()
		if c.err = c.Conn.HandshakeContext(ctx); c.err != nil {
			c.Conn.Close()
		}
	})
	return c.err
}

func (c *serverConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *serverConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// newTCPTransport listens on bind (host:port, a specific IP: raft advertises it)
// and dials from that IP, over TLS when conf is not nil, then with the group
// check gc (nil: none).
func newTCPTransport(bind string, conf *tls.Config, gc *groupCheck, logger hclog.Logger) (*raft.NetworkTransport, error) {
	s, err := listenBound(bind)
	if err != nil {
		return nil, err
	}
	s.tls = conf
	if conf != nil && gc != nil {
		s.group, s.accept = gc, gc.serverConfig(conf)
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
