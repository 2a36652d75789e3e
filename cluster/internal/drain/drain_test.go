package drain

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// serve starts srv on a loopback listener and returns its address.
func serve(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends one GET on c and returns the status line.
func get(c net.Conn) (string, error) {
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// A connection that never sends a request holds http.Server.Shutdown for five
// seconds; the drain closes it and reports a clean stop. The
// first half is the premise (it fails if net/http ever stops waiting).
func TestShutdown_UnusedConnectionDoesNotHoldTheStop(t *testing.T) {
	t.Run("net/http alone", func(t *testing.T) {
		srv := &http.Server{Handler: http.NotFoundHandler()}
		addr := serve(t, srv)
		dial(t, addr)
		time.Sleep(50 * time.Millisecond) // accepted
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("plain Shutdown = %v, want the deadline: the premise of this package no longer holds", err)
		}
	})
	t.Run("drain", func(t *testing.T) {
		srv := &http.Server{Handler: http.NotFoundHandler()}
		d := Track(srv)
		addr := serve(t, srv)
		c := dial(t, addr)
		time.Sleep(50 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown = %v, want nil: the only connection never carried a request", err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("the unused connection is still open after the drain")
		}
	})
}

// A request in flight is let finish: the drain neither closes its connection
// nor returns before it is answered, and reports the deadline if it is not.
func TestShutdown_RequestInFlightIsLetFinish(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release time.Duration // when the handler answers
		want    error
	}{
		{"answered before the deadline", 400 * time.Millisecond, nil},
		{"still running at the deadline", 3 * time.Second, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entered := make(chan struct{})
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				time.Sleep(tc.release)
				w.WriteHeader(http.StatusTeapot)
			})}
			d := Track(srv)
			addr := serve(t, srv)
			c := dial(t, addr)
			answer := make(chan string, 1)
			go func() {
				line, _ := get(c)
				answer <- line
			}()
			<-entered
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := d.Shutdown(ctx); !errors.Is(err, tc.want) && err != tc.want {
				t.Fatalf("Shutdown = %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				if line := <-answer; line != "HTTP/1.1 418 I'm a teapot\r\n" {
					t.Fatalf("the request in flight got %q, want its 418", line)
				}
			}
		})
	}
}

// The premise of closing unused connections at once: once Shutdown has begun,
// net/http drops unserved a request it reads from a connection that had
// carried none, so waiting on such a connection could serve nobody.
func TestShutdown_NetHTTPServesNoFirstRequestAfterShutdownBegan(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})}
	addr := serve(t, srv)
	c := dial(t, addr)
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	go srv.Shutdown(ctx)
	time.Sleep(100 * time.Millisecond)
	if line, err := get(c); err == nil && line != "" {
		t.Fatalf("net/http served %q on a connection opened before Shutdown: the drain may no longer close such connections at once", line)
	}
}

// Track keeps a ConnState hook set before it.
func TestTrack_KeepsAnEarlierHook(t *testing.T) {
	seen := make(chan http.ConnState, 8)
	srv := &http.Server{Handler: http.NotFoundHandler(), ConnState: func(_ net.Conn, s http.ConnState) { seen <- s }}
	Track(srv)
	dial(t, serve(t, srv))
	select {
	case s := <-seen:
		if s != http.StateNew {
			t.Fatalf("first state %v, want new", s)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the earlier ConnState hook was not called")
	}
}

// Shutdown may be called twice, as http.Server's may: the second call must
// not close the first call's channel again (a panic in net/http's goroutine).
func TestShutdown_Twice(t *testing.T) {
	srv := &http.Server{Handler: http.NotFoundHandler()}
	d := Track(srv)
	serve(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	d.Shutdown(ctx)                   // the server is closed: any answer, but no panic
	time.Sleep(50 * time.Millisecond) // the hooks run in goroutines
}
