package actors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/barberpro/edge/actors"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/reqtrace"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCalendars_LogLinesCarryTheRequest: a request whose context carries a
// request id and trace reaches the calendar actor with them (the message's
// trace field), and the actor's log lines about it carry the same request id
// and trace id, under a span of their own.
func TestCalendars_LogLinesCarryTheRequest(t *testing.T) {
	logs := &lockedBuf{}
	e := newEnv(t, func(c *actors.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	in := reqtrace.Begin("req-actor-1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	c := reqtrace.WithInfo(ctx(t), in)
	req := &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c1",
		StartMs: at(1, 10, 0), BookingId: "b-trace", IdempotencyKey: "k-trace", RequestHash: []byte("k")}
	if _, err := e.cals.Book(c, req); err != nil {
		t.Fatal(err)
	}
	if got := req.GetTrace(); got.GetRequestId() != "req-actor-1" || got.GetTraceparent() != in.Traceparent() {
		t.Errorf("the message carried %v, want the request's id and the edge's span as parent", got)
	}
	// Without a request in the context: no trace, no ids in the line.
	if _, err := e.cals.Availability(context.Background(), &calendarv1.AvailabilityRequest{ProviderId: "p1", ServiceId: "cut", FromDate: "2026-12-01", Days: 1}); err != nil {
		t.Fatal(err)
	}
	var found, untraced bool
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			continue // protoactor's own lines
		}
		if m["msg"] != "calendar request" {
			continue
		}
		switch m["kind"] {
		case "BookRequest":
			found = true
			if m[reqtrace.KeyRequestID] != "req-actor-1" || m[reqtrace.KeyTraceID] != in.TraceIDHex() {
				t.Errorf("actor line %s", l)
			}
			if m[reqtrace.KeySpanID] == in.SpanIDHex() || m[reqtrace.KeySpanID] == nil {
				t.Errorf("actor line with the edge's span, want its own: %s", l)
			}
		case "AvailabilityRequest":
			untraced = true
			if _, ok := m[reqtrace.KeyRequestID]; ok {
				t.Errorf("untraced request logged with an id: %s", l)
			}
		}
	}
	if !found || !untraced {
		t.Fatalf("no calendar request lines (book %v, availability %v):\n%s", found, untraced, logs)
	}
	if strings.Contains(logs.String(), "c1") && strings.Contains(logs.String(), `"client`) {
		t.Errorf("a client id in the logs:\n%s", logs)
	}
}
