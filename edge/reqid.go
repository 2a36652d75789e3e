package edge

import (
	"log/slog"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/barberpro/edge/reqtrace"
)

// Traceable requests (issue 10). Every request begins a hop (reqtrace.Info):
// its X-Request-Id is kept when it is a sane token ([A-Za-z0-9._-], at most
// reqtrace.MaxRequestIDLen) and made otherwise; its W3C traceparent is kept
// when it parses (its trace id and flags), a new trace begins otherwise; the hop
// gets its own span id. The Info rides in the request's context (so every log
// line written with a *Context method carries request_id, trace_id and span_id:
// reqtrace.Handler), on every request relayed to another node (both headers,
// naming this hop's span as the parent), in the actor requests (actors), in the
// answer's X-Request-Id and traceparent headers, and in every problem body as
// its "instance".

// RequestInstancePrefix prefixes a request id to form a problem's "instance".
const RequestInstancePrefix = "urn:barberpro:request:"

// traced begins the hop of r: it sets the answer's X-Request-Id and
// traceparent and returns r with the Info in its context.
func traced(w http.ResponseWriter, r *http.Request) *http.Request {
	i := reqtrace.FromHeader(r.Header)
	reqtrace.SetHeader(w.Header(), i)
	return r.WithContext(reqtrace.WithInfo(r.Context(), i))
}

// setTraceHeader puts the request id and traceparent of the request of r's
// context (this hop's span as the parent) on an outgoing request's header h.
func setTraceHeader(r *http.Request, h http.Header) {
	if i, ok := reqtrace.FromContext(r.Context()); ok {
		reqtrace.SetHeader(h, i)
	}
}

// relayTraceAnswer drops the home node's X-Request-Id and traceparent from a
// relayed answer: the answer carries this hop's (traced set them), once. The
// request id is the same; the home node's span is its own.
func relayTraceAnswer(resp *http.Response) error {
	resp.Header.Del(reqtrace.RequestIDHeader)
	resp.Header.Del(reqtrace.TraceparentHeader)
	return nil
}

// traceProxy makes p carry the trace of each request it relays and keep this
// hop's on the answer.
func traceProxy(p *httputil.ReverseProxy) *httputil.ReverseProxy {
	rewrite := p.Rewrite
	p.Rewrite = func(pr *httputil.ProxyRequest) {
		rewrite(pr)
		setTraceHeader(pr.In, pr.Out.Header)
	}
	p.ModifyResponse = relayTraceAnswer
	return p
}

// instanceOf is the problem "instance" of the answer being written to w: the
// request id traced set on it, or "" outside a traced request.
func instanceOf(w http.ResponseWriter) string {
	if id := w.Header().Get(reqtrace.RequestIDHeader); id != "" {
		return RequestInstancePrefix + id
	}
	return ""
}

// logAccess writes the access line of a request: its route pattern (never the
// path: paths hold ids), status and duration, and (through the context) its
// request and trace ids. Bodies, client ids and names never appear.
func (s *Server) logAccess(r *http.Request, label string, status int, d time.Duration) {
	if !s.log.Enabled(r.Context(), slog.LevelInfo) {
		return // before its attributes are built
	}
	s.log.InfoContext(r.Context(), "edge: request", "route", label, "status", status,
		"duration_ms", float64(d.Microseconds())/1000, "relayed", relayed(r))
}
