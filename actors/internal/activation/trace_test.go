package activation

import (
	"context"
	"testing"

	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/reqtrace"
	"google.golang.org/protobuf/proto"
)

func TestStampAndTraced(t *testing.T) {
	in := reqtrace.Begin("r-1", "")
	ctx := reqtrace.WithInfo(context.Background(), in)
	for _, msg := range []proto.Message{
		&calendarv1.SessionRequest{BookingId: "b", Op: &calendarv1.SessionRequest_Get{Get: &calendarv1.GetSession{}}},
		&calendarv1.BookRequest{}, &calendarv1.BookSeriesRequest{}, &calendarv1.CancelSeriesRequest{},
		&calendarv1.CancelRequest{}, &calendarv1.RescheduleRequest{}, &calendarv1.RefreshRequest{},
		&calendarv1.AvailabilityRequest{}, &calendarv1.UpdateProviderRequest{},
	} {
		Stamp(ctx, msg)
		// Through the wire, as a grain request travels.
		b, err := proto.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		got := msg.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b, got); err != nil {
			t.Fatal(err)
		}
		i, ok := reqtrace.FromContext(Traced(context.Background(), got))
		if !ok || i.RequestID != "r-1" || i.TraceID != in.TraceID || i.ParentID != in.SpanID || i.SpanID == in.SpanID {
			t.Errorf("%T: actor hop %+v of %+v", msg, i, in)
		}
		// A second stamp (a resend) keeps the first.
		Stamp(reqtrace.WithInfo(context.Background(), reqtrace.Begin("r-2", "")), msg)
		if i, _ := reqtrace.FromContext(Traced(context.Background(), msg)); i.RequestID != "r-1" {
			t.Errorf("%T: restamped", msg)
		}
	}
	// Nothing to stamp, nothing to read.
	msg := &calendarv1.BookRequest{}
	Stamp(context.Background(), msg)
	if msg.GetTrace() != nil {
		t.Error("stamped without a request")
	}
	if _, ok := reqtrace.FromContext(Traced(context.Background(), msg)); ok {
		t.Error("traced without a trace")
	}
	Stamp(ctx, "not a message")
	if _, ok := reqtrace.FromContext(Traced(context.Background(), &calendarv1.Reply{})); ok {
		t.Error("a reply has no trace")
	}
}
