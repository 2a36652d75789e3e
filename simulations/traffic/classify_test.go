package traffic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/history"
)

func TestClassify_OutcomeOfEachAnswer(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	cases := []struct {
		name string
		err  error
		want history.Outcome
		code string
	}{
		{"ok", nil, history.OK, ""},
		{"409", &client.Problem{Status: 409, Code: "slot_unavailable"}, history.Fail, "slot_unavailable"},
		{"503", &client.Problem{Status: 503, Code: "jurisdiction_unavailable"}, history.Unknown, "jurisdiction_unavailable"},
		{"never connected", fmt.Errorf("post: %w", dial), history.Fail, "unreachable"},
		{"reset after sending", fmt.Errorf("post: %w", read), history.Unknown, "transport"},
		{"timeout", fmt.Errorf("post: %w", context.DeadlineExceeded), history.Unknown, "timeout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, _, code := Classify(c.err, false)
			if o != c.want || code != c.code {
				t.Fatalf("Classify(%v) = %s %q, want %s %q", c.err, o, code, c.want, c.code)
			}
		})
	}
}

// TestClassify_ResentRequestEndingInADialErrorIsUnknown reproduces what a
// killed node does to a request in flight: net/http wrote it on a reused
// connection, the node died before answering, net/http resent it (it carries an
// Idempotency-Key) on a new connection, and that dial was refused. The error is
// a dial error, yet the first copy may have been applied: the outcome must be
// Unknown, not Fail (a sim once reported a linearizability violation from it).
func TestClassify_ResentRequestEndingInADialErrorIsUnknown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := 0
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		served++
		if served == 1 {
			w.WriteHeader(http.StatusNoContent) // the connection is now idle, to be reused
			return
		}
		// The second request was read: the node dies before answering, and
		// nothing listens on its port any more.
		ln.Close()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	})}
	go srv.Serve(ln)
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	post := func() (error, bool) {
		ctx, wrote := traceWrites(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ln.Addr().String()+"/v1/bookings", strings.NewReader("{}"))
		req.Header.Set("Idempotency-Key", "k-1")
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err, wrote.Load()
	}
	if err, _ := post(); err != nil {
		t.Fatal(err)
	}
	err, wrote := post()
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("net/http no longer resends on a new connection (err %v): revisit Classify's wrote rule", err)
	}
	if o, _, _ := Classify(err, wrote); o != history.Unknown {
		t.Fatalf("a request written before the dial error: %s (wrote=%v), want unknown", o, wrote)
	}
	if o, _, _ := Classify(err, false); o != history.Fail {
		t.Fatalf("control: a dial error with nothing written: %s, want fail", o)
	}
}
