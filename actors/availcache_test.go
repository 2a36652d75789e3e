package actors_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/actors/actorstest"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// TestCalendars_AvailabilityCacheFollowsWrites: the same question asked again
// after each acknowledged write answers what memory holds now, never the
// answer cached before the write (booking, cancellation, provider update).
func TestCalendars_AvailabilityCacheFollowsWrites(t *testing.T) {
	e := newEnv(t, nil)
	day := "2026-12-02"
	for range 2 { // the second read is the cached answer
		if s := e.slots(t, "p1", "cut", day); !s[at(2, 9, 0)] || !s[at(2, 10, 0)] {
			t.Fatalf("free day: %v", s)
		}
	}
	b := e.mustBook(t, "p1", "cut", at(2, 9, 0), "a")
	if s := e.slots(t, "p1", "cut", day); s[at(2, 9, 0)] || !s[at(2, 10, 0)] {
		t.Fatalf("after the booking was acknowledged, 09:00 still offered: %v", s)
	}
	if _, err := e.cals.Cancel(ctx(t), &calendarv1.CancelRequest{ProviderId: "p1", BookingId: b.GetId()}); err != nil {
		t.Fatal(err)
	}
	if s := e.slots(t, "p1", "cut", day); !s[at(2, 9, 0)] {
		t.Fatalf("after the cancellation, 09:00 not offered: %v", s)
	}
	p := provider("p1")
	p.DateOverrides = []*bookingv1.DateOverride{{Date: day, Ranges: []*bookingv1.TimeRange{{StartMinute: 10 * 60, EndMinute: 12 * 60}}}}
	if _, err := e.cals.UpdateProvider(ctx(t), &calendarv1.UpdateProviderRequest{Provider: p, IdempotencyKey: "u", RequestHash: []byte("u")}); err != nil {
		t.Fatal(err)
	}
	if s := e.slots(t, "p1", "cut", day); s[at(2, 9, 0)] || !s[at(2, 10, 0)] {
		t.Fatalf("after the hours changed, 09:00 still offered: %v", s)
	}
	// Another day and another service are other questions, not answers of this one.
	if s := e.slots(t, "p1", "color", day); s[at(2, 9, 0)] || !s[at(2, 10, 0)] {
		t.Fatalf("color: %v", s)
	}
}

// TestCalendars_AvailabilityCacheFollowsTheClock: a start leaves the answer
// once the minimum notice passes it, and a day comes into the horizon, though
// nothing was written in between.
func TestCalendars_AvailabilityCacheFollowsTheClock(t *testing.T) {
	var clockAt atomic.Int64
	clockAt.Store(now.UnixNano())
	e := newEnv(t, func(c *actors.Config) { c.Clock = func() time.Time { return time.Unix(0, clockAt.Load()) } })
	set := func(tm time.Time) { clockAt.Store(tm.UnixNano()) }
	// now is 2026-12-01 08:00 with 60 minutes' notice: 09:00 is the first start.
	if s := e.slots(t, "p1", "cut", "2026-12-01"); !s[at(1, 9, 0)] {
		t.Fatalf("09:00 not offered at 08:00: %v", s)
	}
	set(now.Add(time.Minute)) // 08:01: 09:00 is within the notice
	if s := e.slots(t, "p1", "cut", "2026-12-01"); s[at(1, 9, 0)] || !s[at(1, 9, 15)] {
		t.Fatalf("at 08:01, 09:00 still offered (or 09:15 not): %v", s)
	}
	// The horizon is 30 days: 2026-12-31 09:00 is beyond it until 12-01 09:00.
	set(now)
	if s := e.slots(t, "p1", "cut", "2026-12-31"); s[at(31, 9, 0)] {
		t.Fatalf("09:00 of day 30 offered before the horizon reached it: %v", s)
	}
	set(time.Date(2026, 12, 1, 9, 0, 0, 1, ba))
	if s := e.slots(t, "p1", "cut", "2026-12-31"); !s[at(31, 9, 0)] {
		t.Fatalf("09:00 of day 30 not offered once the horizon reached it: %v", s)
	}
}

// TestCalendars_AvailabilityCacheClockStepsBack: an answer holds from the
// instant it was computed to its until, not before: after the wall clock steps
// back (an NTP correction), a day the horizon reached at the later reading is
// beyond it again, and the answer must not offer its starts (a booking there
// is refused as beyond the horizon).
func TestCalendars_AvailabilityCacheClockStepsBack(t *testing.T) {
	var clockAt atomic.Int64
	clockAt.Store(now.UnixNano())
	e := newEnv(t, func(c *actors.Config) { c.Clock = func() time.Time { return time.Unix(0, clockAt.Load()) } })
	set := func(tm time.Time) { clockAt.Store(tm.UnixNano()) }
	// The horizon is 30 days: 2026-12-31 09:00 is offered from 12-01 09:00 on.
	set(time.Date(2026, 12, 1, 9, 0, 0, 1, ba))
	if s := e.slots(t, "p1", "cut", "2026-12-31"); !s[at(31, 9, 0)] {
		t.Fatalf("09:00 of day 30 not offered once the horizon reached it: %v", s)
	}
	set(now) // 08:00: the clock stepped back an hour
	if s := e.slots(t, "p1", "cut", "2026-12-31"); s[at(31, 9, 0)] {
		t.Fatalf("after the clock stepped back, 09:00 of day 30 offered beyond the horizon: %v", s)
	}
	if _, err := e.book(t, "p1", "cut", at(31, 9, 0), "k"); !errors.Is(err, actors.ErrInvalid) {
		t.Fatalf("booking the start beyond the horizon: %v, want ErrInvalid", err)
	}
}

// TestCalendars_AvailabilityCacheKeepsNoLongAnswers: a calendar keeps the
// answer a day's reads share, not the month a client may ask for: reading
// 31 days (twice) of many providers must not leave each active calendar holding
// tens of kilobytes of slots (PERFORMANCE.md: an active calendar is 4-9 KB).
func TestCalendars_AvailabilityCacheKeepsNoLongAnswers(t *testing.T) {
	const n = 200
	s := actorstest.NewStore()
	for i := range n {
		s.PutProvider(provider(fmt.Sprintf("m%d", i)))
	}
	cals := actorstest.MustStart(t, actorstest.Config(s, clock))
	read := func(id, from string, days int32) *calendarv1.Reply {
		t.Helper()
		rep, err := cals.Availability(ctx(t), &calendarv1.AvailabilityRequest{ProviderId: id, ServiceId: "cut", FromDate: from, Days: days})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	day := make([]*calendarv1.Reply, n)
	for i := range n {
		day[i] = read(fmt.Sprintf("m%d", i), "2026-12-01", 1)
	}
	before := memNow()
	slots := 0
	for i := range n {
		slots += len(read(fmt.Sprintf("m%d", i), "2026-12-01", 31).GetSlots())
		slots += len(read(fmt.Sprintf("m%d", i), "2026-12-02", 31).GetSlots())
	}
	after := memNow()
	if slots/n < 1000 {
		t.Fatalf("%d slots per month: the test would not test a long answer", slots/n)
	}
	// Kept, a month is ~50 KB a calendar (two do not fit: the cache is
	// cleared when full); the actor system's own growth between the
	// readings is ~9 KB.
	if grew := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n; grew > 32<<10 {
		t.Errorf("each calendar holds %d more bytes after two 31-day reads", grew)
	}
	if read("m0", "2026-12-01", 1) != day[0] {
		t.Error("a day's answer is no longer kept")
	}
}

// TestCalendars_HorizonExtendedWhileStoreUnreadable: a provider update that
// extends the horizon brings days whose bookings memory never loaded; when
// they cannot be loaded then (the store cannot serve a linearizable read),
// availability of those days must not offer a start a booking in the store
// already holds.
func TestCalendars_HorizonExtendedWhileStoreUnreadable(t *testing.T) {
	e := newEnv(t, nil)
	start := time.Date(2027, 1, 12, 9, 0, 0, 0, ba) // day 42: beyond the 30-day horizon
	e.store.PutBooking(&bookingv1.Booking{Id: "far", ProviderId: "p1", ServiceId: "cut", ClientId: "c9",
		StartMs: start.UnixMilli(), EndMs: start.Add(30 * time.Minute).UnixMilli(), BlockedUntilMs: start.Add(40 * time.Minute).UnixMilli(),
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED, Version: 1})
	e.slots(t, "p1", "cut", "2026-12-02") // activated: bookings loaded up to day 31
	e.store.ReadIndexErr = errors.New("no leader")
	p := provider("p1")
	p.HorizonDays = 60
	if _, err := e.cals.UpdateProvider(ctx(t), &calendarv1.UpdateProviderRequest{Provider: p, IdempotencyKey: "u", RequestHash: []byte("u")}); err != nil {
		t.Fatal(err)
	}
	rep, err := e.cals.Availability(ctx(t), &calendarv1.AvailabilityRequest{ProviderId: "p1", ServiceId: "cut", FromDate: "2027-01-12", Days: 1})
	for _, s := range rep.GetSlots() {
		if s.GetStartMs() == start.UnixMilli() {
			t.Fatalf("09:00 of 2027-01-12 offered though a booking in the store holds it (err %v)", err)
		}
	}
	e.store.ReadIndexErr = nil
	if s := e.slots(t, "p1", "cut", "2027-01-12"); s[start.UnixMilli()] || !s[start.Add(time.Hour).UnixMilli()] {
		t.Fatalf("once the store answers: %v", s)
	}
}

// TestCalendars_ActiveForDaysLoadsTheDaysTheHorizonReaches: a calendar kept
// active while days pass loads the bookings of the days its horizon moves
// onto before offering their starts.
func TestCalendars_ActiveForDaysLoadsTheDaysTheHorizonReaches(t *testing.T) {
	var clockAt atomic.Int64
	clockAt.Store(now.UnixNano())
	e := newEnv(t, func(c *actors.Config) { c.Clock = func() time.Time { return time.Unix(0, clockAt.Load()) } })
	start := time.Date(2027, 1, 2, 9, 0, 0, 0, ba) // past what activation loads (30 days + 1)
	e.store.PutBooking(&bookingv1.Booking{Id: "far", ProviderId: "p1", ServiceId: "cut", ClientId: "c9",
		StartMs: start.UnixMilli(), EndMs: start.Add(30 * time.Minute).UnixMilli(), BlockedUntilMs: start.Add(40 * time.Minute).UnixMilli(),
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED, Version: 1})
	e.slots(t, "p1", "cut", "2026-12-02")
	clockAt.Store(now.Add(3 * 24 * time.Hour).UnixNano())
	if s := e.slots(t, "p1", "cut", "2027-01-02"); s[start.UnixMilli()] || !s[start.Add(time.Hour).UnixMilli()] {
		t.Fatalf("three days later, 2027-01-02: %v", s)
	}
}

// TestCalendars_RefusedWriteWhileStoreUnreadable: the store refuses a booking
// memory had free (another activation's booking holds the slot) and the
// reload that follows fails: availability must not go on offering the start
// from the memory the store contradicted.
func TestCalendars_RefusedWriteWhileStoreUnreadable(t *testing.T) {
	e := newEnv(t, nil)
	e.slots(t, "p1", "cut", "2026-12-02")
	start := at(2, 9, 0)
	e.store.PutBooking(&bookingv1.Booking{Id: "other", ProviderId: "p1", ServiceId: "cut", ClientId: "c9",
		StartMs: start, EndMs: start + 30*60*1000, BlockedUntilMs: start + 40*60*1000,
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED, Version: 1})
	e.store.ReadIndexErr = errors.New("no leader")
	if _, err := e.book(t, "p1", "cut", start, "k"); !errors.Is(err, actors.ErrSlotTaken) {
		t.Fatalf("booking a slot the store holds: %v", err)
	}
	rep, err := e.cals.Availability(ctx(t), &calendarv1.AvailabilityRequest{ProviderId: "p1", ServiceId: "cut", FromDate: "2026-12-02", Days: 1})
	for _, s := range rep.GetSlots() {
		if s.GetStartMs() == start {
			t.Fatalf("09:00 offered after the store refused it (err %v)", err)
		}
	}
	e.store.ReadIndexErr = nil
	if s := e.slots(t, "p1", "cut", "2026-12-02"); s[start] || !s[at(2, 10, 0)] {
		t.Fatalf("once the store answers: %v", s)
	}
}
