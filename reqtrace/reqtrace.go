// Package reqtrace carries what makes a request traceable across the nodes and
// actors it touches: its request id (X-Request-Id) and its W3C Trace Context
// (traceparent, https://www.w3.org/TR/trace-context/). The edge begins an Info
// per request (Begin), keeps it in the request's context (WithInfo), sends it on
// every relayed request (SetHeader) and in every actor request (the trace field
// of the calendar and session messages); every log line of a context that holds
// one carries request_id, trace_id and span_id (Handler).
//
// Neither id holds personal data: a request id is taken from the client only
// when it is a short token of [A-Za-z0-9._-], else made (128 random bits, hex);
// trace and span ids are random.
//
// Why not go.opentelemetry.io/otel/propagation (in the module graph, usable
// without the SDK): its TraceContext keeps only the sampled flag (the brief
// and W3C Level 2 keep the flags), refuses version-00 flags above 02, and
// accepts a version-00 header with trailing "-..." (the spec says a version-00
// header is exactly 55 characters); it would also put otel's SpanContext in
// every context for three fields. ParseTraceparent is the spec's grammar in 40
// lines, fuzzed (FuzzParseTraceparent, testdata/fuzz).
package reqtrace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// Headers of a traceable request and of its answer.
const (
	RequestIDHeader   = "X-Request-Id"
	TraceparentHeader = "traceparent"
)

// MaxRequestIDLen bounds a request id taken from a request.
const MaxRequestIDLen = 128

// Info is one hop of a request: the node or actor handling it. SpanID is this
// hop's own span; ParentID the span of the hop that sent it (zero when the
// trace began here).
type Info struct {
	RequestID string
	TraceID   [16]byte
	ParentID  [8]byte
	SpanID    [8]byte
	Flags     byte
}

// Valid reports whether i was begun (a zero Info is not).
func (i Info) Valid() bool {
	return i.RequestID != "" && i.TraceID != [16]byte{} && i.SpanID != [8]byte{}
}

// TraceIDHex is the trace id as 32 lowercase hex digits.
func (i Info) TraceIDHex() string { return hex.EncodeToString(i.TraceID[:]) }

// SpanIDHex is this hop's span id as 16 lowercase hex digits.
func (i Info) SpanIDHex() string { return hex.EncodeToString(i.SpanID[:]) }

// Traceparent is the version-00 traceparent naming this hop's span as the
// parent: what the hop sends onward and answers with.
func (i Info) Traceparent() string {
	return FormatTraceparent(Traceparent{TraceID: i.TraceID, ParentID: i.SpanID, Flags: i.Flags})
}

// Begin starts the hop of a request that arrived with requestID and
// traceparent (either may be ""): the request id is kept when ValidRequestID
// accepts it, else a new one is made; the trace id and flags are kept when
// traceparent parses (ParseTraceparent), else a new trace begins (flags 00).
// The hop always gets a new span id.
func Begin(requestID, traceparent string) Info {
	var i Info
	if ValidRequestID(requestID) {
		i.RequestID = requestID
	} else {
		i.RequestID = NewRequestID()
	}
	if tp, ok := ParseTraceparent(traceparent); ok {
		i.TraceID, i.ParentID, i.Flags = tp.TraceID, tp.ParentID, tp.Flags
	} else {
		i.TraceID = newTraceID()
	}
	i.SpanID = newSpanID()
	return i
}

// FromHeader begins the hop of an HTTP request (Begin) from its headers. A
// header given more than once is taken as absent (the W3C spec: a receiver may
// not pick one of several traceparents).
func FromHeader(h http.Header) Info {
	return Begin(single(h, RequestIDHeader), single(h, TraceparentHeader))
}

func single(h http.Header, key string) string {
	if v := h.Values(key); len(v) == 1 {
		return v[0]
	}
	return ""
}

// SetHeader sets the request id and traceparent of i on h: on a relayed
// request, and on the answer. tracestate is neither read nor written here (a
// relayed request passes the caller's on unchanged).
func SetHeader(h http.Header, i Info) {
	h.Set(RequestIDHeader, i.RequestID)
	h.Set(TraceparentHeader, i.Traceparent())
}

// ValidRequestID reports whether id is a request id worth keeping: 1 to
// MaxRequestIDLen characters of [A-Za-z0-9._-].
func ValidRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// NewRequestID makes a request id: 128 random bits as 32 lowercase hex digits.
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

func newTraceID() [16]byte {
	var b [16]byte
	for b == [16]byte{} {
		rand.Read(b[:])
	}
	return b
}

func newSpanID() [8]byte {
	var b [8]byte
	for b == [8]byte{} {
		rand.Read(b[:])
	}
	return b
}

type infoKey struct{}

// WithInfo returns ctx carrying i.
func WithInfo(ctx context.Context, i Info) context.Context {
	return context.WithValue(ctx, infoKey{}, i)
}

// FromContext returns the Info ctx carries, if any.
func FromContext(ctx context.Context) (Info, bool) {
	if ctx == nil {
		return Info{}, false
	}
	i, ok := ctx.Value(infoKey{}).(Info)
	return i, ok
}

// Child begins the next hop of the request ctx carries, for a receiver in this
// process that logs as its own span (an actor); ok is false when ctx carries
// none.
func Child(ctx context.Context) (Info, bool) {
	i, ok := FromContext(ctx)
	if !ok {
		return Info{}, false
	}
	return Info{RequestID: i.RequestID, TraceID: i.TraceID, ParentID: i.SpanID, SpanID: newSpanID(), Flags: i.Flags}, true
}
