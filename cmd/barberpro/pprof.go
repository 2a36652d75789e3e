package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// errPprofNotLoopback refuses a --pprof-addr another machine could reach:
// profiles and goroutine dumps hold request data and are served without a
// token, so only someone already on the node's host may read them.
var errPprofNotLoopback = errors.New("--pprof-addr must be a loopback address (127.0.0.0/8 or ::1)")

// servePprof serves Go's runtime profiles (net/http/pprof) on addr, a
// loopback host:port, until the process exits. It returns the listener's
// address once it listens.
func servePprof(addr string, log *slog.Logger) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usagef("--pprof-addr %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", usageError{fmt.Errorf("%w: %q", errPprofNotLoopback, addr)}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("serving runtime profiles", "component", "pprof", "addr", ln.Addr().String())
	return ln.Addr().String(), nil
}
