package load

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is an httptest server that counts the connections it
// accepted and the requests it answered.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	var conns, reqs atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		h(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns, &reqs
}

func get(t *testing.T, c *http.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestOneConn_KeepsOneConnection(t *testing.T) {
	srv, conns, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(b))
	})
	tr := &oneConn{}
	c := &http.Client{Transport: tr}
	defer c.CloseIdleConnections()
	for i := 0; i < 20; i++ {
		resp, err := c.Post(srv.URL+"/v1/x", "application/json", strings.NewReader(`{"n":1}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != `POST /v1/x {"n":1}` {
			t.Fatalf("answer %q", b)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 requests used %d connections, want 1", n)
	}
	// An answer closed unread is drained: the connection stays.
	resp, err := c.Get(srv.URL + "/unread")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, body, err := get(t, c, srv.URL+"/after"); err != nil || code != 200 || body != "GET /after " {
		t.Fatalf("after an unread answer: %d %q %v", code, body, err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("an unread answer cost a connection: %d", n)
	}
}

// A node that closes a kept-alive connection: a request safe to repeat is
// sent again on a new one; a POST without an Idempotency-Key is not.
func TestOneConn_RedialsAClosedConnectionOnlyForRepeatableRequests(t *testing.T) {
	srv, conns, reqs := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	c := &http.Client{Transport: &oneConn{}}
	if code, _, err := get(t, c, srv.URL); err != nil || code != 200 {
		t.Fatalf("first: %d %v", code, err)
	}
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	if code, body, err := get(t, c, srv.URL); err != nil || code != 200 || body != "ok" {
		t.Fatalf("GET after the node closed the connection: %d %q %v", code, body, err)
	}
	keyed, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
	keyed.Header.Set("Idempotency-Key", "k1")
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	resp, err := c.Do(keyed)
	if err != nil {
		t.Fatalf("keyed POST after the node closed the connection: %v", err)
	}
	resp.Body.Close()
	if n := conns.Load(); n != 3 {
		t.Fatalf("connections: %d, want 3", n)
	}

	before := reqs.Load()
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	plain, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
	if resp, err := c.Do(plain); err == nil {
		resp.Body.Close()
		t.Fatal("a POST without an Idempotency-Key was sent again on a new connection")
	}
	if reqs.Load() != before {
		t.Fatal("the node answered the unkeyed POST")
	}
	// The next request dials afresh.
	if code, _, err := get(t, c, srv.URL); err != nil || code != 200 {
		t.Fatalf("GET after the failure: %d %v", code, err)
	}
}

func TestOneConn_ContextEndsTheWait(t *testing.T) {
	release := make(chan struct{})
	srv, _, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c := &http.Client{Transport: &oneConn{}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	start := time.Now()
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a request past its context's deadline was answered")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the context's", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the request waited %v past its context", d)
	}
	// And the per-request bound, without a context deadline.
	tr := &oneConn{timeout: 100 * time.Millisecond}
	c = &http.Client{Transport: tr}
	if resp, err := c.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("a request past the transport's timeout was answered")
	}
}

func TestOneConn_RefusesASecondRequestInFlight(t *testing.T) {
	srv, _, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	c := &http.Client{Transport: &oneConn{}}
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(srv.URL); !errors.Is(err, errBusy) {
		t.Fatalf("second request while the first answer is open: %v, want errBusy", err)
	}
	resp.Body.Close()
	if code, _, err := get(t, c, srv.URL); err != nil || code != 200 {
		t.Fatalf("after closing the first answer: %d %v", code, err)
	}
}

// An answer much longer than maxDrain, closed unread, costs the connection
// rather than a read of all of it.
func TestOneConn_LongUnreadAnswerDropsTheConnection(t *testing.T) {
	srv, conns, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/long" {
			w.Write(make([]byte, 4*maxDrain))
			return
		}
		io.WriteString(w, "ok")
	})
	c := &http.Client{Transport: &oneConn{}}
	resp, err := c.Get(srv.URL + "/long")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, body, err := get(t, c, srv.URL+"/short"); err != nil || code != 200 || body != "ok" {
		t.Fatalf("after a long unread answer: %d %q %v", code, body, err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("connections %d, want 2 (the long answer's dropped)", n)
	}
}

// rawServer answers each request read on a connection with the next of
// answers, written verbatim (a node that speaks HTTP badly), and closes the
// connection after the last.
func rawServer(t *testing.T, answers ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for _, a := range answers {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if _, err := io.WriteString(c, a); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// A 1xx answer is not the answer: the one after it is, and the next request
// reads its own.
func TestOneConn_Skips1xxAnswers(t *testing.T) {
	url := rawServer(t,
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nanswer-0",
		"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nanswer-1")
	c := &http.Client{Transport: &oneConn{timeout: 5 * time.Second}}
	for i, want := range []string{"answer-0", "answer-1"} {
		code, body, err := get(t, c, url)
		if err != nil || code != 200 || body != want {
			t.Fatalf("request %d: %d %q %v, want 200 %q", i, code, body, err, want)
		}
	}
}

// Bytes past an answer's end (an answer nobody asked for, a body after a
// 204) drop the connection: the next request reads its own answer on a new
// one, never them.
func TestOneConn_BytesPastTheAnswerDropTheConnection(t *testing.T) {
	for name, first := range map[string]string{
		"unasked answer": "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nanswer-0HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nFORGED",
		"204 with body":  "HTTP/1.1 204 No Content\r\n\r\nsmuggled",
	} {
		t.Run(name, func(t *testing.T) {
			url := rawServer(t, first, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nanswer-1")
			c := &http.Client{Transport: &oneConn{timeout: 5 * time.Second}}
			if _, _, err := get(t, c, url); err != nil {
				t.Fatal(err)
			}
			// The server's connection would answer "answer-1" next too: only a
			// new connection (whose first answer is `first` again) tells.
			code, body, err := get(t, c, url)
			if err != nil || body == "answer-1" || body == "FORGED" || body == "smuggled" {
				t.Fatalf("second request: %d %q %v: read on the first connection", code, body, err)
			}
		})
	}
}
