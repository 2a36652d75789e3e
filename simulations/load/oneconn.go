package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// oneConn is the HTTP transport of one closed-loop client of a run: a single
// kept-alive HTTP/1.1 connection to one node, one request at a time, written
// and read on the calling goroutine. net/http's Transport does the same work
// through a connection pool shared behind a lock, with a reader and a writer
// goroutine per connection: two goroutine hand-offs a request more, which the
// load pays in CPU on the cores it shares with the nodes it measures (session
// 21: bench CPU per booking, docs/PERFORMANCE.md; a Transport of its own per
// client, goroutines kept, cost as much as the shared one). What goes on the wire and
// how an answer is read are net/http's own (Request.Write, ReadResponse).
//
// A request, its dial included, is bounded by its context and by
// requestTimeout. 1xx answers are skipped (at most 5, as net/http's
// Transport), and a connection holding bytes past an answer's end (an answer
// nobody asked for, a body after a 204) is dropped, so that no request reads
// another's answer; bytes arriving only after the body is closed are seen
// by the next request as a malformed answer (it fails, the connection is
// dropped): there is no background reader to see them sooner. A kept-alive
// connection the node closed meanwhile is redialled once for a request that
// is safe to send again (GET, HEAD, or one with an Idempotency-Key, as
// net/http's Transport does), when nothing of the answer was read.
type oneConn struct {
	timeout time.Duration // per request; requestTimeout if zero
	dialer  net.Dialer

	mu   sync.Mutex // one request at a time (the closed loop's own order)
	conn net.Conn
	host string // the URL host conn was dialled for
	br   *bufio.Reader
	bw   *bufio.Writer
}

// requestTimeout bounds a request of the load when its context does not end
// sooner, on a oneConn and on the shared client of newHTTPClient alike.
const requestTimeout = 30 * time.Second

// errBusy is a second request on a oneConn whose answer is still open.
var errBusy = errors.New("load: oneConn used by two requests at once")

// RoundTrip sends req on the connection (dialled on first use) and reads its
// answer; the answer's body must be closed before the next request.
func (t *oneConn) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.mu.TryLock() {
		closeBody(req)
		return nil, errBusy
	}
	if req.URL.Scheme != "http" {
		closeBody(req)
		t.mu.Unlock()
		return nil, fmt.Errorf("load: oneConn speaks http, not %q", req.URL.Scheme)
	}
	resp, err := t.send(req)
	if err != nil && t.retryable(req, err) {
		if req, err = rewound(req); err == nil {
			resp, err = t.send(req)
		}
	}
	if err != nil {
		t.mu.Unlock()
		return nil, err
	}
	return resp, nil
}

// staleConn marks an error of a kept-alive connection before any of the
// answer was read: the node may have closed it while it was idle.
type staleConn struct{ error }

func (e staleConn) Unwrap() error { return e.error }

func (t *oneConn) retryable(req *http.Request, err error) bool {
	var s staleConn
	if !errors.As(err, &s) || req.Context().Err() != nil {
		return false
	}
	safe := req.Method == http.MethodGet || req.Method == http.MethodHead || req.Header.Get("Idempotency-Key") != ""
	return safe && (req.Body == nil || req.GetBody != nil)
}

// rewound is req with a fresh copy of its body, for a second attempt.
func rewound(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.GetBody == nil {
		return req, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := *req
	r.Body = body
	return &r, nil
}

// send writes req on the connection and reads its answer's head. On an error
// the connection is closed; the error is a staleConn when the connection was
// a kept-alive one and nothing of the answer came.
func (t *oneConn) send(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if t.conn != nil && t.host != req.URL.Host {
		t.drop()
	}
	reused := t.conn != nil
	if !reused {
		if err := t.dial(ctx, req.URL.Host); err != nil {
			closeBody(req)
			return nil, err
		}
	}
	conn := t.conn
	if err := conn.SetDeadline(time.Now().Add(t.limit())); err != nil {
		closeBody(req)
		t.drop()
		return nil, err
	}
	// A context that ends mid-request cuts the connection's wait short.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error, stale bool) (*http.Response, error) {
		stop()
		t.drop()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if stale && reused {
			return nil, staleConn{err}
		}
		return nil, err
	}
	if err := req.Write(t.bw); err != nil {
		return fail(err, true)
	}
	if err := t.bw.Flush(); err != nil {
		return fail(err, true)
	}
	if _, err := t.br.Peek(1); err != nil {
		return fail(err, true)
	}
	resp, err := http.ReadResponse(t.br, req)
	for n := 0; err == nil && resp.StatusCode < 200; n++ {
		// 1xx: not the answer (net/http's Transport skips up to 5 too).
		if resp.StatusCode == http.StatusSwitchingProtocols || n == 5 {
			return fail(fmt.Errorf("load: unexpected %s", resp.Status), false)
		}
		resp, err = http.ReadResponse(t.br, req)
	}
	if err != nil {
		return fail(err, false)
	}
	resp.Body = &oneConnBody{ReadCloser: resp.Body, t: t, stop: stop, keep: !resp.Close && !req.Close}
	return resp, nil
}

// limit is the bound of one request: timeout, else requestTimeout.
func (t *oneConn) limit() time.Duration {
	if t.timeout > 0 {
		return t.timeout
	}
	return requestTimeout
}

// dial connects to host (a URL's host: port 80 if it names none).
func (t *oneConn) dial(ctx context.Context, host string) error {
	addr := host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "80")
	}
	d := t.dialer
	if d.Timeout <= 0 {
		d.Timeout = t.limit()
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	t.conn, t.host = c, host
	if t.br == nil {
		t.br = bufio.NewReaderSize(c, 16<<10)
		t.bw = bufio.NewWriterSize(c, 4<<10)
	} else {
		t.br.Reset(c)
		t.bw.Reset(c)
	}
	return nil
}

// drop closes the connection; the next request dials a new one.
func (t *oneConn) drop() {
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
}

// CloseIdleConnections closes the connection when no request holds it
// (http.Client.CloseIdleConnections calls it).
func (t *oneConn) CloseIdleConnections() {
	if t.mu.TryLock() {
		t.drop()
		t.mu.Unlock()
	}
}

// maxDrain bounds what closing an answer's body reads of what its reader
// left, to keep the connection: a longer rest closes it instead.
const maxDrain = 256 << 10

// oneConnBody is an answer's body: closing it ends the request, keeping the
// connection if the answer was read to its end (or nearly) and neither side
// asked to close it.
type oneConnBody struct {
	io.ReadCloser
	t    *oneConn
	stop func() bool
	keep bool
	once sync.Once
}

func (b *oneConnBody) Close() error {
	var err error
	b.once.Do(func() {
		n, derr := io.CopyN(io.Discard, b.ReadCloser, maxDrain+1)
		cut := !b.stop() // the context ended: the deadline was moved
		if !b.keep || cut || n > maxDrain || (derr != nil && derr != io.EOF) {
			b.t.drop() // first: the body's Close reads what is left
		}
		err = b.ReadCloser.Close()
		if b.t.br.Buffered() > 0 {
			b.t.drop() // bytes nobody asked for: the connection is out of step
		}
		b.t.mu.Unlock()
	})
	return err
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
