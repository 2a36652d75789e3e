package session_test

import (
	"context"
	"strings"
	"testing"

	"github.com/barberpro/edge/reqtrace"
)

// TestSessionLogLinesCarryTheRequest: a session request made with a request's
// context reaches the session actor with its ids; the actor's line about it
// carries the request id and trace id, under a span of its own.
func TestSessionLogLinesCarryTheRequest(t *testing.T) {
	e := newEnv(t, true)
	in := reqtrace.Begin("req-session-1", "")
	req := get()
	req.BookingId, req.Subject, req.Role = bookingID, client, "client"
	if _, err := e.s.Do(reqtrace.WithInfo(context.Background(), in), req); err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, `msg="session request"`) {
			line = l
		}
	}
	for _, want := range []string{"request_id=req-session-1", "trace_id=" + in.TraceIDHex(), "span_id="} {
		if !strings.Contains(line, want) {
			t.Fatalf("session request line %q lacks %s; logs:\n%s", line, want, e.logs)
		}
	}
	if strings.Contains(line, "span_id="+in.SpanIDHex()) {
		t.Errorf("the actor logged under the edge's span: %s", line)
	}
	if strings.Contains(e.logs.String(), client) {
		t.Errorf("a client id in the logs:\n%s", e.logs)
	}
}
