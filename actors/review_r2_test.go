package actors_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/actors/actorstest"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// keyHookStore runs after once, the first time the store answers that a key
// has no record (after that answer was read, before the actor gets it).
type keyHookStore struct {
	*actorstest.Store
	once  sync.Once
	after func()
}

func (s *keyHookStore) Idempotency(ctx context.Context, key string) (*bookingv1.IdempotencyRecord, error) {
	rec, err := s.Store.Idempotency(ctx, key)
	if errors.Is(err, actorstest.ErrNotFound) && s.after != nil {
		s.once.Do(s.after)
	}
	return rec, err
}

// TestReview_KeyAbsentOutlivesTheReload (review s15-r2): the fast 409 of a
// keyed request over a loaded booking uses "the key has no record" read at the
// confirmation; when that confirmation finds the loaded booking stale, memory
// is reloaded and the request handled again with keyAbsent still set — against
// bookings the reload read later. If the original request with the same key
// committed through another activation in between (a retry during a
// membership change), the retry is refused 409 instead of replaying the first
// answer (api.md: same key and body, same result). Before ea8dc72 the retry
// went to the FSM, which replays it.
func TestReview_KeyAbsentOutlivesTheReload(t *testing.T) {
	raw := actorstest.NewStore()
	raw.PutProvider(provider("p1"))
	hs := &keyHookStore{Store: raw}
	c := ctx(t)

	old := actorstest.MustStart(t, actorstest.Config(raw, clock))
	y, err := old.Book(c, &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c0",
		StartMs: at(2, 10, 0), BookingId: "b-y", IdempotencyKey: "y", RequestHash: []byte("y")})
	if err != nil {
		t.Fatalf("Book y: %v", err)
	}
	// A second activation (cur) loads y.
	cfg := actorstest.Config(raw, clock)
	cfg.Store = hs
	cur := actorstest.MustStart(t, cfg)
	if _, err := cur.Availability(c, &calendarv1.AvailabilityRequest{ProviderId: "p1", ServiceId: "cut", FromDate: "2026-12-02", Days: 1}); err != nil {
		t.Fatalf("Availability: %v", err)
	}
	// y is cancelled through another activation (memory of cur not told).
	gone := proto.Clone(y).(*bookingv1.Booking)
	gone.Status = bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED
	gone.Version++
	raw.PutBooking(gone)

	// The original request with key k commits through a third activation right
	// after cur's confirmation read that k has no record.
	other := actorstest.MustStart(t, actorstest.Config(raw, clock))
	req := &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c1",
		StartMs: at(2, 10, 0), BookingId: "b-first", IdempotencyKey: "k", RequestHash: []byte("k")}
	var first *bookingv1.Booking
	var firstErr error
	hs.after = func() { first, firstErr = other.Book(c, req) }

	retry := proto.Clone(req).(*calendarv1.BookRequest)
	retry.BookingId = "b-retry"
	got, err := cur.Book(c, retry)
	if firstErr != nil || first.GetId() != "b-first" {
		t.Fatalf("the original request: %v %v, want b-first booked", first, firstErr)
	}
	if err != nil || got.GetId() != first.GetId() {
		t.Fatalf("retry of a committed booking (same key, same body): %v %v, want %s replayed", got, err, first.GetId())
	}
}

// TestReview_AuditedRefusalFromMemoryIsNotAudited (review s15-r2, pre-existing,
// not from ea8dc72): psychology.md wants every psychology write "allowed or
// refused" in the audit chain, and the edge hands its audit records to the
// calendar with the request (BookRequest.audit), which only the FSM appends.
// A psychology booking over a slot a booking of this activation holds is
// refused from memory: no command, so no audit entry — while the same request
// over a booking loaded from the store goes to the FSM, whose refusal is
// audited. Whether a refusal is audited depends on which activation made the
// booking in the way.
func TestReview_AuditedRefusalFromMemoryIsNotAudited(t *testing.T) {
	e := newEnv(t, nil)
	e.mustBook(t, "p1", "cut", at(2, 10, 0), "first")
	cmds := len(e.store.Commands())
	_, err := e.cals.Book(ctx(t), &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c2",
		StartMs: at(2, 10, 0), BookingId: "b-psy", IdempotencyKey: "psy", RequestHash: []byte("psy"),
		ConsentPurpose: "psychology-care", RequireVerified: true,
		Audit: []*bookingv1.AuditRecord{{Subject: "c2", Role: "client", Action: "booking.create", Object: "b-psy", Node: "ba-1"}}})
	if err == nil {
		t.Fatal("booked over a taken slot")
	}
	if n := len(e.store.Commands()) - cmds; n == 0 {
		t.Fatalf("a refused request carrying audit records (%v) reached no store command: its refusal is in no audit chain", err)
	}
}

// The same rule for a reschedule and a series: a refused request carrying
// audit records reaches the store (whose FSM refuses it and audits it).
func TestAuditedRescheduleOverATakenSlotReachesTheStore(t *testing.T) {
	e := newEnv(t, nil)
	e.mustBook(t, "p1", "cut", at(2, 10, 0), "first")
	mine := e.mustBook(t, "p1", "cut", at(2, 14, 0), "second")
	cmds := len(e.store.Commands())
	_, err := e.cals.Reschedule(ctx(t), &calendarv1.RescheduleRequest{ProviderId: "p1", BookingId: mine.GetId(),
		StartMs: at(2, 10, 0), IdempotencyKey: "mv", RequestHash: []byte("mv"),
		Audit: []*bookingv1.AuditRecord{{Subject: "c2", Role: "client", Action: "booking.reschedule", Object: mine.GetId(), Node: "ba-1"}}})
	if err == nil {
		t.Fatal("rescheduled over a taken slot")
	}
	if n := len(e.store.Commands()) - cmds; n == 0 {
		t.Fatalf("a refused reschedule carrying audit records (%v) reached no store command: its refusal is in no audit chain", err)
	}
}

func TestAuditedSeriesOverATakenSlotReachesTheStore(t *testing.T) {
	e := newEnv(t, nil)
	e.mustBook(t, "p1", "cut", at(2, 10, 0), "first")
	cmds := len(e.store.Commands())
	_, err := e.cals.BookSeries(ctx(t), &calendarv1.BookSeriesRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c2",
		StartMs: at(2, 10, 0), EveryDays: 7, Count: 2, SeriesId: "s-psy", BookingIds: []string{"b-s1", "b-s2"},
		IdempotencyKey: "ser", RequestHash: []byte("ser"),
		Audit: []*bookingv1.AuditRecord{{Subject: "c2", Role: "client", Action: "series.create", Object: "s-psy", Node: "ba-1"}}})
	if err == nil {
		t.Fatal("booked a series over a taken slot")
	}
	if n := len(e.store.Commands()) - cmds; n == 0 {
		t.Fatalf("a refused series carrying audit records (%v) reached no store command: its refusal is in no audit chain", err)
	}
}
