package actors_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/actors/actorstest"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// BenchmarkCalendars_BookCancel books a slot and cancels it again through one
// calendar actor over the in-memory store: the cost of the actor path (the
// request, the actor's judgement, the proposal's round trip, the answer) of
// two writes per op.
func BenchmarkCalendars_BookCancel(b *testing.B) {
	s := actorstest.NewStore()
	s.PutProvider(provider("p1"))
	cals := actorstest.MustStart(b, actorstest.Config(s, clock))
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		key := "k" + strconv.Itoa(i)
		bk, err := cals.Book(ctx, &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c1",
			StartMs: at(2, 10, 0), BookingId: "b-" + key, IdempotencyKey: key, RequestHash: []byte(key)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cals.Cancel(ctx, &calendarv1.CancelRequest{ProviderId: "p1", BookingId: bk.GetId()}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCalendars_RefusalOverLoadedBooking is a keyed booking refused (409)
// over a booking the calendar loaded from the real one-node store, whose key
// it does not know: what a refusal costs (a Raft commit, or a linearizable
// read).
func BenchmarkCalendars_RefusalOverLoadedBooking(b *testing.B) {
	_, ac := realStore(b)
	ctx := context.Background()
	if _, err := actorstest.MustStart(b, ac).Book(ctx, &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c0",
		StartMs: at(16, 10, 0), BookingId: "held", IdempotencyKey: "held", RequestHash: []byte("held")}); err != nil {
		b.Fatal(err)
	}
	fresh := actorstest.MustStart(b, ac) // loads the booking
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		key := "k" + strconv.Itoa(i)
		if _, err := fresh.Book(ctx, &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c1",
			StartMs: at(16, 10, 0), BookingId: "b-" + key, IdempotencyKey: key, RequestHash: []byte(key)}); !errors.Is(err, actors.ErrSlotTaken) {
			b.Fatalf("want slot taken, got %v", err)
		}
	}
}

// BenchmarkCalendars_Availability reads the same day of one calendar again and
// again, as a client polling a provider does: the actor path of a read.
func BenchmarkCalendars_Availability(b *testing.B) {
	s := actorstest.NewStore()
	s.PutProvider(provider("p1"))
	cals := actorstest.MustStart(b, actorstest.Config(s, clock))
	ctx := context.Background()
	r := &calendarv1.AvailabilityRequest{ProviderId: "p1", ServiceId: "beard", FromDate: "2026-12-02", Days: 1}
	b.ReportAllocs()
	for b.Loop() {
		rep, err := cals.Availability(ctx, r)
		if err != nil || len(rep.GetSlots()) == 0 {
			b.Fatal(rep, err)
		}
	}
}
