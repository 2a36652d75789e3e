package activation

import (
	"context"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/reqtrace"
)

// traceField is the name of the calendarv1.RequestTrace field that every
// calendar and session request message carries last.
const traceField = "trace"

var traceName = (&calendarv1.RequestTrace{}).ProtoReflect().Descriptor().FullName()

// traceFieldOf returns the trace field of m, or nil when m has none.
func traceFieldOf(m protoreflect.Message) protoreflect.FieldDescriptor {
	fd := m.Descriptor().Fields().ByName(traceField)
	if fd == nil || fd.Message() == nil || fd.Message().FullName() != traceName {
		return nil
	}
	return fd
}

// Stamp sets the trace field of msg (a request message of the calendar or
// session actors) to the request ctx serves (reqtrace.FromContext): its request
// id, and this hop's span as the actor's parent. A msg that is not such a
// message, that carries a trace already, or a ctx without a request is left as
// it is.
func Stamp(ctx context.Context, msg any) {
	pm, ok := msg.(proto.Message)
	if !ok {
		return
	}
	i, ok := reqtrace.FromContext(ctx)
	if !ok || !i.Valid() {
		return
	}
	m := pm.ProtoReflect()
	fd := traceFieldOf(m)
	if fd == nil || m.Has(fd) {
		return
	}
	t := &calendarv1.RequestTrace{RequestId: i.RequestID, Traceparent: i.Traceparent()}
	m.Set(fd, protoreflect.ValueOfMessage(t.ProtoReflect()))
}

// Traced returns ctx carrying the actor's hop of the request msg serves (its
// trace field; reqtrace.Begin with a new span): what the actor's log lines about
// msg take as their context. Without a trace field it returns ctx.
func Traced(ctx context.Context, msg any) context.Context {
	pm, ok := msg.(proto.Message)
	if !ok || pm == nil {
		return ctx
	}
	m := pm.ProtoReflect()
	if !m.IsValid() {
		return ctx
	}
	fd := traceFieldOf(m)
	if fd == nil || !m.Has(fd) {
		return ctx
	}
	t, ok := m.Get(fd).Message().Interface().(*calendarv1.RequestTrace)
	if !ok || t.GetRequestId() == "" {
		return ctx
	}
	return reqtrace.WithInfo(ctx, reqtrace.Begin(t.GetRequestId(), t.GetTraceparent()))
}
