// Package drain shuts an http.Server down gracefully without waiting on
// connections that never carried a request.
//
// http.Server.Shutdown waits for every connection to go idle, and it counts a
// connection that has not sent its first request (StateNew) as busy for five
// seconds — although, once it is shutting down, it drops any request it reads
// from such a connection unserved. An HTTP client's transport leaves such
// connections behind as a matter of course: a request that needs a connection
// both dials and waits for an idle one, and if the idle one wins, the fresh
// connection sits in the client's pool unused. A node whose peers relay to it
// often holds one when it stops, and with a shutdown timeout under five
// seconds a clean leave ended as "context deadline exceeded" and exit status 1
// (Test_Cluster_GracefulLeaveLosesNoRequest in CI). This package's
// Server.Shutdown closes them as soon as no request is in flight.
//
// HTTP/1 only: net/http does not report an HTTP/2 connection's requests to
// the ConnState hook, so a Server serving HTTP/2 would look idle with
// requests in flight. The node's listeners offer no h2 (their TLS configs
// name no ALPN protocol and h2c is off).
package drain

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// poll is how often a drain looks at the connections again.
const poll = 25 * time.Millisecond

// Server is an http.Server whose Shutdown does not wait on connections that
// never carried a request.
type Server struct {
	*http.Server

	mu     sync.Mutex
	active map[net.Conn]struct{} // connections reading or serving a request
}

// Track makes srv's connections followed (it sets srv.ConnState, calling any
// hook set before). Call it before srv serves.
func Track(srv *http.Server) *Server {
	s := &Server{Server: srv, active: map[net.Conn]struct{}{}}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		s.mu.Lock()
		if st == http.StateActive {
			s.active[c] = struct{}{}
		} else {
			delete(s.active, c)
		}
		s.mu.Unlock()
		if prev != nil {
			prev(c, st)
		}
	}
	return s
}

// busy reports whether a request is in flight.
func (s *Server) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active) > 0
}

// Shutdown stops the server as http.Server.Shutdown does — listeners closed,
// requests in flight let finish, idle connections closed — and once no
// request is in flight it closes the connections that never carried one and
// returns nil. It returns ctx's error if a request is still in flight when
// ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	// Look only once Shutdown has begun: from then on net/http serves no
	// request that is not already active (a request read later is dropped),
	// so "no connection active" stays true.
	// net/http runs every registered hook at each Shutdown: a second call
	// must not close the first call's channel again.
	began := make(chan struct{})
	var once sync.Once
	s.Server.RegisterOnShutdown(func() { once.Do(func() { close(began) }) })
	done := make(chan error, 1)
	go func() { done <- s.Server.Shutdown(ctx) }()
	select {
	case <-began:
	case err := <-done:
		return err
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if !s.busy() {
				// Shutdown has closed the listeners: what Close could
				// report is their closing again.
				_ = s.Server.Close()
				return nil
			}
		}
	}
}
