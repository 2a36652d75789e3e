package reqtrace

import (
	"context"
	"log/slog"
)

// Log attribute keys of a traced request.
const (
	KeyRequestID = "request_id"
	KeyTraceID   = "trace_id"
	KeySpanID    = "span_id"
)

// Handler adds the request_id, trace_id and span_id of the Info in a record's
// context (WithInfo) to the record: the one way a log line names its request.
// Log with the *Context methods (InfoContext, WarnContext...) to pass it.
type Handler struct{ inner slog.Handler }

// NewHandler wraps h; a *Handler is returned as it is.
func NewHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(*Handler); ok {
		return h
	}
	return &Handler{inner: h}
}

// Logger returns l with its handler wrapped by NewHandler (l itself when it
// already is). A nil l gives slog.Default()'s.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	if _, ok := l.Handler().(*Handler); ok {
		return l
	}
	return slog.New(NewHandler(l.Handler()))
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if i, ok := FromContext(ctx); ok && i.Valid() {
		r = r.Clone()
		r.AddAttrs(slog.String(KeyRequestID, i.RequestID), slog.String(KeyTraceID, i.TraceIDHex()),
			slog.String(KeySpanID, i.SpanIDHex()))
	}
	return h.inner.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler { return &Handler{h.inner.WithAttrs(as)} }

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler { return &Handler{h.inner.WithGroup(name)} }
