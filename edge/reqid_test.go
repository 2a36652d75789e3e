package edge

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/barberpro/edge/reqtrace"
)

const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
const testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"

// jsonLines parses every JSON log line of buf.
func jsonLines(t *testing.T, buf *syncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// newJSONTestCluster is newTestCluster with JSON logs the test reads.
func newJSONTestCluster(t *testing.T) (ar, us *testNode, arLogs, usLogs *syncBuffer) {
	t.Helper()
	peers := &fakePeers{urls: map[string]string{}}
	arLogs, usLogs = &syncBuffer{}, &syncBuffer{}
	jsonTo := func(b *syncBuffer) func(*Config) {
		return func(c *Config) {
			c.Logger = slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	ar = newTestNode(t, peers, "ba-1", "buenos-aires", "ar", nil, jsonTo(arLogs))
	us = newTestNode(t, peers, "us-1", "us-east", "us", nil, jsonTo(usLogs))
	return ar, us, arLogs, usLogs
}

// requestLines returns the log lines of the request id, and fails on any line
// of another request id that names the trace (one request, one id).
func requestLines(t *testing.T, lines []map[string]any, id, traceID string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range lines {
		if l[reqtrace.KeyRequestID] == id {
			if l[reqtrace.KeyTraceID] != traceID {
				t.Errorf("line of request %s with trace %v, want %s: %v", id, l[reqtrace.KeyTraceID], traceID, l)
			}
			out = append(out, l)
		} else if l[reqtrace.KeyTraceID] == traceID {
			t.Errorf("line of trace %s with request id %v, want %s: %v", traceID, l[reqtrace.KeyRequestID], id, l)
		}
	}
	return out
}

func accessLine(lines []map[string]any, route string) map[string]any {
	for _, l := range lines {
		if l["msg"] == "edge: request" && l["route"] == route {
			return l
		}
	}
	return nil
}

// TestReqID_RelayKeepsIDs sends requests about an Argentine provider to the US
// node: the relayed request carries the request id and trace to the Argentine
// node, both nodes' log lines carry them, the answer names them, and a problem
// relayed back names the request in instance.
func TestReqID_RelayKeepsIDs(t *testing.T) {
	ar, us, arLogs, usLogs := newJSONTestCluster(t)
	hdr := map[string]string{reqtrace.RequestIDHeader: "req-us-ar.1", reqtrace.TraceparentHeader: testTraceparent}
	rec := us.do(call{method: "POST", path: "/v1/providers", body: providerBody("la-plata", "barber"), header: hdr, valid: true})
	wantStatus(t, rec, http.StatusCreated)
	checkTraceAnswer(t, rec.Header(), "req-us-ar.1", testTraceID)
	if sp := rec.Header().Get(reqtrace.TraceparentHeader)[36:52]; sp == "00f067aa0ba902b7" {
		t.Errorf("the answer names the caller's span, not the node's")
	}
	p := decode[providerOut](t, rec)

	for name, buf := range map[string]*syncBuffer{"us": usLogs, "ar": arLogs} {
		lines := requestLines(t, jsonLines(t, buf), "req-us-ar.1", testTraceID)
		l := accessLine(lines, "POST /v1/providers")
		if l == nil {
			t.Fatalf("%s: no access line of the request:\n%s", name, buf)
		}
		if l["status"] != float64(201) || l["relayed"] != (name == "ar") {
			t.Errorf("%s access line %v", name, l)
		}
		if strings.Contains(buf.String(), p.ID) || strings.Contains(buf.String(), "Don Julio") {
			t.Errorf("%s logs hold an id or a name:\n%s", name, buf)
		}
	}
	// The relaying node's span is the home node's parent: two spans, one trace.
	usSpan := accessLine(jsonLines(t, usLogs), "POST /v1/providers")[reqtrace.KeySpanID]
	arSpan := accessLine(jsonLines(t, arLogs), "POST /v1/providers")[reqtrace.KeySpanID]
	if usSpan == arSpan || usSpan == nil || arSpan == nil {
		t.Errorf("spans us %v ar %v: each hop needs its own", usSpan, arSpan)
	}

	// A problem answered by the Argentine node, relayed back.
	rec = us.do(call{method: "GET", path: "/v1/bookings/bkg_la-plata_nothere", header: hdr})
	wantStatus(t, rec, http.StatusNotFound)
	checkTraceAnswer(t, rec.Header(), "req-us-ar.1", testTraceID)
	if pb := checkProblem(t, rec); pb.Instance != "urn:barberpro:request:req-us-ar.1" {
		t.Errorf("relayed problem instance %q", pb.Instance)
	}
	if accessLine(requestLines(t, jsonLines(t, arLogs), "req-us-ar.1", testTraceID), "GET /v1/bookings/{id}") == nil {
		t.Errorf("ar: no access line of the relayed GET:\n%s", arLogs)
	}

	// A list gathered from every jurisdiction: the fan-out's relayed GET too.
	rec = us.do(call{method: "GET", path: "/v1/providers", header: map[string]string{reqtrace.RequestIDHeader: "fan-1"}, valid: true})
	wantStatus(t, rec, http.StatusOK)
	fan := rec.Header().Get(reqtrace.TraceparentHeader)[3:35]
	if accessLine(requestLines(t, jsonLines(t, arLogs), "fan-1", fan), "GET /v1/providers") == nil {
		t.Errorf("ar: no access line of the gathered list with the caller's ids:\n%s", arLogs)
	}
	_ = ar
}

// checkTraceAnswer asserts the answer's X-Request-Id is id (once) and its
// traceparent is valid, of traceID ("" for any) and once.
func checkTraceAnswer(t *testing.T, h http.Header, id, traceID string) reqtrace.Traceparent {
	t.Helper()
	if v := h.Values(reqtrace.RequestIDHeader); len(v) != 1 || (id != "" && v[0] != id) {
		t.Errorf("X-Request-Id %q, want [%s]", v, id)
	}
	v := h.Values(reqtrace.TraceparentHeader)
	if len(v) != 1 {
		t.Fatalf("traceparent %q: want one", v)
	}
	tp, ok := reqtrace.ParseTraceparent(v[0])
	if !ok || tp.Version != 0 {
		t.Fatalf("traceparent %q does not parse", v[0])
	}
	if traceID != "" && !strings.HasPrefix(v[0], "00-"+traceID+"-") {
		t.Errorf("traceparent %q, want trace %s", v[0], traceID)
	}
	return tp
}

var madeID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestReqID_MadeWhenAbsentOrInvalid: without the headers, or with ones that do
// not pass, the node makes a request id and starts a trace; problems carry the
// id as instance.
func TestReqID_MadeWhenAbsentOrInvalid(t *testing.T) {
	h := newHarness(t)
	for _, hdr := range []map[string]string{
		nil,
		{reqtrace.RequestIDHeader: "has space", reqtrace.TraceparentHeader: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		{reqtrace.RequestIDHeader: strings.Repeat("x", 129), reqtrace.TraceparentHeader: strings.ToUpper(testTraceparent)},
		{reqtrace.RequestIDHeader: "client@example.com", reqtrace.TraceparentHeader: testTraceparent + "-x"},
	} {
		rec := h.do(call{method: "GET", path: "/v1/providers/prv_buenos-aires_nothere", header: hdr, valid: hdr == nil})
		wantStatus(t, rec, http.StatusNotFound)
		id := rec.Header().Get(reqtrace.RequestIDHeader)
		if !madeID.MatchString(id) {
			t.Errorf("%v: X-Request-Id %q, want a made one", hdr, id)
		}
		tp := checkTraceAnswer(t, rec.Header(), id, "")
		if strings.Contains(rec.Header().Get(reqtrace.TraceparentHeader), testTraceID) || tp.Flags != 0 {
			t.Errorf("%v: invalid traceparent kept: %s", hdr, rec.Header().Get(reqtrace.TraceparentHeader))
		}
		if pb := checkProblem(t, rec); pb.Instance != RequestInstancePrefix+id {
			t.Errorf("%v: instance %q, want %s", hdr, pb.Instance, RequestInstancePrefix+id)
		}
	}
	// Two requests, two ids.
	a := h.do(call{method: "GET", path: "/healthz"}).Header().Get(reqtrace.RequestIDHeader)
	b := h.do(call{method: "GET", path: "/healthz"}).Header().Get(reqtrace.RequestIDHeader)
	if a == b {
		t.Errorf("made ids repeat: %s", a)
	}
	// A valid one is kept, with its trace and flags.
	rec := h.do(call{method: "GET", path: "/healthz", header: map[string]string{reqtrace.RequestIDHeader: "Abc_9.-", reqtrace.TraceparentHeader: testTraceparent}})
	if tp := checkTraceAnswer(t, rec.Header(), "Abc_9.-", testTraceID); tp.Flags != 1 {
		t.Errorf("flags %x, want 01", tp.Flags)
	}
}

// TestReqID_LogLines: the error line of a request carries its ids.
func TestReqID_LogLines(t *testing.T) {
	logs := &syncBuffer{}
	h := newHarnessWith(t, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	h.logs = logs
	rec := h.do(call{method: "GET", path: "/healthz", header: map[string]string{reqtrace.RequestIDHeader: "log-1", reqtrace.TraceparentHeader: testTraceparent}})
	wantStatus(t, rec, http.StatusOK)
	lines := requestLines(t, jsonLines(t, logs), "log-1", testTraceID)
	if l := accessLine(lines, "GET /healthz"); l == nil || l["status"] != float64(200) {
		t.Fatalf("no access line:\n%s", logs)
	}
}
