package actors_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/actors/actorstest"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

var ba = func() *time.Location {
	l, err := time.LoadLocation("America/Argentina/Buenos_Aires")
	if err != nil {
		panic(err)
	}
	return l
}()

// now is Tuesday 2026-12-01 08:00 in Buenos Aires.
var now = time.Date(2026, 12, 1, 8, 0, 0, 0, ba)

func clock() time.Time { return now }

// at is 2026-12-dd hh:mm in Buenos Aires, in Unix ms.
func at(dd, hh, mm int) int64 { return time.Date(2026, 12, dd, hh, mm, 0, 0, ba).UnixMilli() }

func provider(id string) *bookingv1.Provider {
	r := func(sh, eh int) *bookingv1.TimeRange {
		return &bookingv1.TimeRange{StartMinute: int32(sh * 60), EndMinute: int32(eh * 60)}
	}
	week := make([]*bookingv1.DayHours, 7)
	for d := range week {
		week[d] = &bookingv1.DayHours{Ranges: []*bookingv1.TimeRange{r(9, 12), r(14, 18)}}
	}
	week[time.Sunday] = &bookingv1.DayHours{}
	return &bookingv1.Provider{
		Id: id, Name: "Barbería " + id, Vertical: "barber", City: "buenos-aires", Jurisdiction: "ar",
		Timezone: ba.String(), WeeklyHours: week, MinNoticeMinutes: 60, HorizonDays: 30,
		Services: []*bookingv1.Service{
			{Id: "cut", DurationMinutes: 30, BufferMinutes: 10, Price: &bookingv1.Money{Cents: 1500000, Currency: "ARS"}},
			{Id: "color", DurationMinutes: 90, Price: &bookingv1.Money{Cents: 4000000, Currency: "ARS"}},
			{Id: "beard", DurationMinutes: 20, BufferMinutes: 5},
		},
	}
}

type env struct {
	store *actorstest.Store
	cals  *actors.Calendars
}

func newEnv(t *testing.T, mod func(*actors.Config)) *env {
	t.Helper()
	s := actorstest.NewStore()
	s.PutProvider(provider("p1"))
	s.PutProvider(provider("p2"))
	cfg := actorstest.Config(s, clock)
	if mod != nil {
		mod(&cfg)
	}
	return &env{store: s, cals: actorstest.MustStart(t, cfg)}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func (e *env) book(t *testing.T, provider, svc string, start int64, key string) (*bookingv1.Booking, error) {
	t.Helper()
	return e.cals.Book(ctx(t), &calendarv1.BookRequest{ProviderId: provider, ServiceId: svc, ClientId: "c1",
		StartMs: start, BookingId: "b-" + key, IdempotencyKey: key, RequestHash: []byte(key)})
}

func (e *env) mustBook(t *testing.T, provider, svc string, start int64, key string) *bookingv1.Booking {
	t.Helper()
	b, err := e.book(t, provider, svc, start, key)
	if err != nil {
		t.Fatalf("Book %s %s at %s: %v", provider, svc, time.UnixMilli(start).In(ba), err)
	}
	return b
}

func (e *env) slots(t *testing.T, provider, svc, day string) map[int64]bool {
	t.Helper()
	rep, err := e.cals.Availability(ctx(t), &calendarv1.AvailabilityRequest{ProviderId: provider, ServiceId: svc, FromDate: day, Days: 1})
	if err != nil {
		t.Fatalf("Availability: %v", err)
	}
	if rep.GetTimezone() != ba.String() {
		t.Fatalf("timezone %q", rep.GetTimezone())
	}
	out := map[int64]bool{}
	for _, s := range rep.GetSlots() {
		out[s.GetStartMs()] = true
	}
	return out
}

func confirmed(s *actorstest.Store, p string) []*bookingv1.Booking {
	return s.Bookings(p, bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCalendars_ConcurrentBooksOfOneSlotOneWins(t *testing.T) {
	e := newEnv(t, nil)
	e.store.ProposeDelay = time.Millisecond
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.book(t, "p1", "cut", at(2, 10, 0), fmt.Sprintf("k%d", i))
		}()
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, actors.ErrSlotTaken):
			t.Errorf("request %d: %v, want ErrSlotTaken", i, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d successes, want 1", ok)
	}
	if got := len(confirmed(e.store, "p1")); got != 1 {
		t.Fatalf("%d bookings in the store, want 1", got)
	}
	if p := e.store.Proposals(); p != 1 {
		t.Errorf("%d proposals; the actor should have refused the losers from memory", p)
	}
}

func TestCalendars_BookValidation(t *testing.T) {
	e := newEnv(t, nil)
	e.mustBook(t, "p1", "cut", at(2, 10, 0), "first")
	for _, c := range []struct {
		name  string
		svc   string
		start int64
		want  error
	}{
		{"misaligned", "cut", at(2, 10, 50), actors.ErrInvalid},
		{"outside hours", "cut", at(2, 12, 30), actors.ErrInvalid},
		{"past", "cut", at(1, 7, 0), actors.ErrInvalid},
		{"within notice", "cut", at(1, 8, 30), actors.ErrInvalid},
		{"sunday", "cut", at(6, 10, 0), actors.ErrInvalid},
		{"beyond horizon", "cut", at(31, 10, 0), actors.ErrInvalid},
		{"unknown service", "nope", at(2, 11, 0), actors.ErrInvalid},
		// A misaligned start that also overlaps a booking is a 409 first.
		{"taken and misaligned", "cut", at(2, 10, 5), actors.ErrSlotTaken},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.book(t, "p1", c.svc, c.start, "v-"+c.name)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			t.Logf("%v", err)
		})
	}
	if _, err := e.book(t, "nobody", "cut", at(2, 10, 0), "x"); !errors.Is(err, actors.ErrNotFound) {
		t.Fatalf("unknown provider: %v, want ErrNotFound", err)
	}
	eventually(t, "the unknown provider's activation to end", func() bool { return e.cals.Active() == 1 })
}

func TestCalendars_OverlapAcrossServicesAndBuffers(t *testing.T) {
	e := newEnv(t, nil)
	b := e.mustBook(t, "p1", "cut", at(2, 10, 0), "a") // blocks [10:00, 10:40)
	if b.GetEndMs() != at(2, 10, 30) || b.GetBlockedUntilMs() != at(2, 10, 40) || b.GetPrice().GetCents() != 1500000 ||
		b.GetVertical() != "barber" || b.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED {
		t.Fatalf("booking %v", b)
	}
	for _, c := range []struct {
		name  string
		svc   string
		start int64
		want  error
	}{
		{"color ending inside", "color", at(2, 9, 0), actors.ErrSlotTaken},         // [9:00,10:30)
		{"beard inside the buffer", "beard", at(2, 10, 30), actors.ErrSlotTaken},   // [10:30,10:55)
		{"beard whose buffer reaches", "beard", at(2, 9, 45), actors.ErrSlotTaken}, // [9:45,10:10)
		{"beard touching before", "beard", at(2, 9, 30), nil},                      // [9:30,9:55) then 9:55..10:00 free
		{"cut touching after", "cut", at(2, 11, 0), nil},                           // 10:40 end; 11:00 aligned
		{"color after both", "color", at(2, 14, 0), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.book(t, "p1", c.svc, c.start, "o-"+c.name)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// Another provider's calendar is independent.
	e.mustBook(t, "p2", "cut", at(2, 10, 0), "p2")
}

func TestCalendars_CancelFreesSlotAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	b := e.mustBook(t, "p1", "cut", at(2, 10, 0), "a")
	if e.slots(t, "p1", "cut", "2026-12-02")[at(2, 10, 0)] {
		t.Fatal("booked slot offered")
	}
	c, err := e.cals.Cancel(ctx(t), &calendarv1.CancelRequest{ProviderId: "p1", BookingId: b.GetId()})
	if err != nil || c.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
		t.Fatalf("Cancel: %v %v", c, err)
	}
	if !e.slots(t, "p1", "cut", "2026-12-02")[at(2, 10, 0)] {
		t.Fatal("cancelled slot not offered")
	}
	again, err := e.cals.Cancel(ctx(t), &calendarv1.CancelRequest{ProviderId: "p1", BookingId: b.GetId()})
	if err != nil || again.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED || again.GetVersion() != c.GetVersion() {
		t.Fatalf("second Cancel: %v %v", again, err)
	}
	e.mustBook(t, "p1", "cut", at(2, 10, 0), "b")
	if got := len(confirmed(e.store, "p1")); got != 1 {
		t.Fatalf("%d confirmed bookings, want 1", got)
	}
	for _, r := range []*calendarv1.CancelRequest{{ProviderId: "p1", BookingId: "nope"}, {ProviderId: "p2", BookingId: b.GetId()}} {
		if _, err := e.cals.Cancel(ctx(t), r); !errors.Is(err, actors.ErrNotFound) {
			t.Errorf("Cancel %v: %v, want ErrNotFound", r, err)
		}
	}
}

func TestCalendars_RescheduleIsAtomic(t *testing.T) {
	e := newEnv(t, nil)
	b1 := e.mustBook(t, "p1", "cut", at(2, 10, 0), "a")
	e.mustBook(t, "p1", "cut", at(2, 11, 0), "b")
	_, err := e.cals.Reschedule(ctx(t), &calendarv1.RescheduleRequest{ProviderId: "p1", BookingId: b1.GetId(), StartMs: at(2, 10, 30)})
	if !errors.Is(err, actors.ErrSlotTaken) { // [10:30,11:10) meets b at 11:00
		t.Fatalf("Reschedule onto a taken slot: %v", err)
	}
	got, _ := e.store.Booking(ctx(t), b1.GetId())
	if got.GetStartMs() != at(2, 10, 0) || got.GetVersion() != b1.GetVersion() {
		t.Fatalf("failed reschedule changed the booking: %v", got)
	}
	if _, err := e.cals.Reschedule(ctx(t), &calendarv1.RescheduleRequest{ProviderId: "p1", BookingId: b1.GetId(), StartMs: at(2, 12, 30)}); !errors.Is(err, actors.ErrInvalid) {
		t.Fatalf("Reschedule outside hours: %v", err)
	}
	// Moving it by its own length onto itself is fine (it does not overlap itself).
	moved, err := e.cals.Reschedule(ctx(t), &calendarv1.RescheduleRequest{ProviderId: "p1", BookingId: b1.GetId(), StartMs: at(2, 10, 15)})
	if err != nil || moved.GetStartMs() != at(2, 10, 15) || moved.GetEndMs() != at(2, 10, 45) || moved.GetBlockedUntilMs() != at(2, 10, 55) {
		t.Fatalf("Reschedule: %v %v", moved, err)
	}
	slots := e.slots(t, "p1", "cut", "2026-12-02")
	if !slots[at(2, 9, 30)] || slots[at(2, 9, 45)] || slots[at(2, 10, 15)] {
		t.Fatalf("availability does not follow the move: %v", slots)
	}
	if _, err := e.cals.Cancel(ctx(t), &calendarv1.CancelRequest{ProviderId: "p1", BookingId: b1.GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cals.Reschedule(ctx(t), &calendarv1.RescheduleRequest{ProviderId: "p1", BookingId: b1.GetId(), StartMs: at(2, 15, 0)}); !errors.Is(err, actors.ErrInvalidTransition) {
		t.Fatalf("Reschedule cancelled: %v", err)
	}
	if _, err := e.cals.Reschedule(ctx(t), &calendarv1.RescheduleRequest{ProviderId: "p2", BookingId: b1.GetId(), StartMs: at(2, 15, 0)}); !errors.Is(err, actors.ErrNotFound) {
		t.Fatalf("Reschedule through another provider: %v", err)
	}
}

func TestCalendars_ConcurrentIdenticalIdempotencyKeysGetOneBooking(t *testing.T) {
	e := newEnv(t, nil)
	e.store.ProposeDelay = 20 * time.Millisecond
	const n = 50
	var wg sync.WaitGroup
	got := make([]*bookingv1.Booking, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = e.book(t, "p1", "cut", at(2, 10, 0), "same")
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i].GetId() != "b-same" {
			t.Fatalf("request %d: %v %v", i, got[i], errs[i])
		}
	}
	if len(confirmed(e.store, "p1")) != 1 || e.store.Proposals() != 1 {
		t.Fatalf("%d bookings after %d proposals, want 1 and 1", len(confirmed(e.store, "p1")), e.store.Proposals())
	}
	// Same key, other body: 422, also once committed.
	_, err := e.cals.Book(ctx(t), &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c1",
		StartMs: at(2, 15, 0), BookingId: "other", IdempotencyKey: "same", RequestHash: []byte("different")})
	if !errors.Is(err, actors.ErrIdempotencyKeyReused) {
		t.Fatalf("reused key: %v", err)
	}
}

func TestCalendars_IdempotencyKeyReusedWhilePending(t *testing.T) {
	e := newEnv(t, nil)
	release := make(chan struct{})
	e.store.BeforePropose = func(*bookingv1.Command) error { <-release; return nil }
	done := make(chan error, 1)
	go func() { _, err := e.book(t, "p1", "cut", at(2, 10, 0), "k"); done <- err }()
	eventually(t, "the proposal", func() bool { return e.store.Proposals() == 1 })
	_, err := e.cals.Book(ctx(t), &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c2",
		StartMs: at(2, 15, 0), BookingId: "x", IdempotencyKey: "k", RequestHash: []byte("other")})
	close(release)
	if !errors.Is(err, actors.ErrIdempotencyKeyReused) {
		t.Fatalf("reused key while pending: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestCalendars_PassivationThenReactivationReloads(t *testing.T) {
	e := newEnv(t, func(c *actors.Config) { c.IdleTimeout = 50 * time.Millisecond })
	b := e.mustBook(t, "p1", "cut", at(2, 10, 0), "a")
	if e.cals.Active() != 1 {
		t.Fatalf("Active = %d, want 1", e.cals.Active())
	}
	loads := e.store.ProviderLoads()
	eventually(t, "passivation", func() bool { return e.cals.Active() == 0 })
	// Written while no activation existed (e.g. by another node).
	e.store.PutBooking(&bookingv1.Booking{Id: "ext", ProviderId: "p1", ServiceId: "cut", ClientId: "c9",
		StartMs: at(2, 15, 0), EndMs: at(2, 15, 30), BlockedUntilMs: at(2, 15, 40), Version: 1,
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED})
	slots := e.slots(t, "p1", "cut", "2026-12-02")
	if e.store.ProviderLoads() != loads+1 {
		t.Fatalf("provider loads %d → %d, want one reload", loads, e.store.ProviderLoads())
	}
	if slots[at(2, 10, 0)] || slots[at(2, 15, 0)] || !slots[at(2, 11, 0)] {
		t.Fatalf("reactivated calendar lost state: %v", slots)
	}
	// A retry of the first request after reactivation gets the same booking (the
	// FSM replays it) instead of a 409 from its own booking.
	again := e.mustBook(t, "p1", "cut", at(2, 10, 0), "a")
	if again.GetId() != b.GetId() || len(confirmed(e.store, "p1")) != 2 {
		t.Fatalf("retry after reactivation: %v", again)
	}
	// Another key for that slot is still a 409.
	if _, err := e.book(t, "p1", "cut", at(2, 10, 0), "z"); !errors.Is(err, actors.ErrSlotTaken) {
		t.Fatalf("other key: %v", err)
	}
}

func TestCalendars_StoreSaysTakenReloads(t *testing.T) {
	e := newEnv(t, nil)
	e.mustBook(t, "p1", "cut", at(2, 9, 0), "warm") // activate
	// Another activation (membership change) wrote behind this one's back.
	e.store.PutBooking(&bookingv1.Booking{Id: "ghost", ProviderId: "p1", ServiceId: "cut", ClientId: "c9",
		StartMs: at(2, 10, 0), EndMs: at(2, 10, 30), BlockedUntilMs: at(2, 10, 40), Version: 1,
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED})
	if !e.slots(t, "p1", "cut", "2026-12-02")[at(2, 10, 0)] {
		t.Fatal("setup: memory should not know the ghost yet")
	}
	loads, props := e.store.ProviderLoads(), e.store.Proposals()
	if _, err := e.book(t, "p1", "cut", at(2, 10, 0), "a"); !errors.Is(err, actors.ErrSlotTaken) {
		t.Fatalf("Book over the ghost: %v", err)
	}
	if e.store.Proposals() != props+1 || e.store.ProviderLoads() != loads+1 {
		t.Fatalf("want one proposal and one reload, got %d and %d", e.store.Proposals()-props, e.store.ProviderLoads()-loads)
	}
	if e.slots(t, "p1", "cut", "2026-12-02")[at(2, 10, 0)] {
		t.Fatal("reloaded calendar still offers the ghost's slot")
	}
	// Without an idempotency key memory refuses at once; with one, the FSM is asked
	// (the overlapped booking may be this very request's), without another reload.
	if _, err := e.cals.Book(ctx(t), &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c",
		StartMs: at(2, 10, 15), BookingId: "nokey"}); !errors.Is(err, actors.ErrSlotTaken) || e.store.Proposals() != props+1 {
		t.Fatalf("after reload memory should refuse without proposing: %v (%d proposals)", err, e.store.Proposals()-props)
	}
	if _, err := e.book(t, "p1", "cut", at(2, 10, 15), "b"); !errors.Is(err, actors.ErrSlotTaken) || e.store.ProviderLoads() != loads+1 {
		t.Fatalf("keyed request over a loaded booking: %v (%d reloads)", err, e.store.ProviderLoads()-loads)
	}
}

func TestCalendars_AvailabilityExcludesBookedAndPending(t *testing.T) {
	e := newEnv(t, nil)
	e.mustBook(t, "p1", "cut", at(2, 9, 0), "booked")
	release := make(chan struct{})
	fail := errors.New("leader lost")
	e.store.BeforePropose = func(cmd *bookingv1.Command) error {
		if cmd.GetIdempotencyKey() != "pending" {
			return nil
		}
		<-release
		return fail
	}
	done := make(chan error, 1)
	go func() { _, err := e.book(t, "p1", "cut", at(2, 14, 0), "pending"); done <- err }()
	eventually(t, "the proposal", func() bool { return e.store.Proposals() == 2 })
	slots := e.slots(t, "p1", "cut", "2026-12-02")
	if slots[at(2, 9, 0)] || slots[at(2, 14, 0)] || !slots[at(2, 15, 0)] {
		t.Fatalf("availability with a pending booking: %v", slots)
	}
	// A booking over the pending reservation waits for the write's verdict (see
	// TestCalendars_WriteInFlightIsNotAConflict); here the write fails, so it
	// is judged afresh and succeeds.
	over := make(chan error, 1)
	go func() { _, err := e.book(t, "p1", "beard", at(2, 14, 30), "x"); over <- err }()
	close(release)
	err := <-done
	if !errors.Is(err, actors.ErrUnavailable) || !errors.Is(err, fail) {
		t.Fatalf("failed proposal: %v, want ErrUnavailable wrapping the store's error", err)
	}
	if err := <-over; err != nil {
		t.Fatalf("Book over a reservation whose write failed: %v, want success", err)
	}
	if !e.slots(t, "p1", "beard", "2026-12-02")[at(2, 14, 0)] {
		t.Fatal("released reservation still busy")
	}
	for _, r := range []*calendarv1.AvailabilityRequest{
		{ProviderId: "p1", ServiceId: "nope", FromDate: "2026-12-02", Days: 1},
		{ProviderId: "p1", ServiceId: "cut", FromDate: "2026-02-30", Days: 1},
		{ProviderId: "p1", ServiceId: "cut", FromDate: "2026-12-02", Days: 0},
		{ProviderId: "p1", ServiceId: "cut", FromDate: "2026-12-02", Days: 32},
	} {
		if _, err := e.cals.Availability(ctx(t), r); !errors.Is(err, actors.ErrInvalid) {
			t.Errorf("Availability %v: %v, want ErrInvalid", r, err)
		}
	}
}

func TestCalendars_ResultCodesMapToSentinels(t *testing.T) {
	e := newEnv(t, nil)
	e.mustBook(t, "p1", "cut", at(2, 9, 0), "warm")
	codes := map[bookingv1.ResultCode]error{
		bookingv1.ResultCode_RESULT_CODE_NOT_FOUND:            actors.ErrNotFound,
		bookingv1.ResultCode_RESULT_CODE_IDEMPOTENCY_MISMATCH: actors.ErrIdempotencyKeyReused,
		bookingv1.ResultCode_RESULT_CODE_INVALID:              actors.ErrInvalid,
	}
	for code, want := range codes {
		storeErr := errors.New("storage: " + code.String())
		s := &verdictStore{Store: e.store, code: code, err: storeErr}
		cfg := actorstest.Config(e.store, clock)
		cfg.Store = s
		c := actorstest.MustStart(t, cfg)
		_, err := c.Book(ctx(t), &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c",
			StartMs: at(3, 9, 0), BookingId: "m", IdempotencyKey: "m", RequestHash: []byte("m")})
		if !errors.Is(err, want) || !errors.Is(err, storeErr) {
			t.Errorf("%s: %v, want %v wrapping the store error", code, err, want)
		}
	}
}

// verdictStore answers every Propose with a fixed verdict.
type verdictStore struct {
	*actorstest.Store
	code bookingv1.ResultCode
	err  error
}

func (s *verdictStore) Propose(context.Context, *bookingv1.Command) (*bookingv1.CommandResult, error) {
	return &bookingv1.CommandResult{Code: s.code, Detail: "judged"}, s.err
}

func TestCalendars_UpdateProviderKeepsBookings(t *testing.T) {
	e := newEnv(t, nil)
	e.mustBook(t, "p1", "cut", at(2, 9, 0), "a")
	p := provider("p1")
	p.DateOverrides = []*bookingv1.DateOverride{{Date: "2026-12-02", Ranges: []*bookingv1.TimeRange{{StartMinute: 8 * 60, EndMinute: 10 * 60}}}}
	got, err := e.cals.UpdateProvider(ctx(t), &calendarv1.UpdateProviderRequest{Provider: p, IdempotencyKey: "u", RequestHash: []byte("u")})
	if err != nil || got.GetVersion() < 1 {
		t.Fatalf("UpdateProvider: %v %v", got, err)
	}
	slots := e.slots(t, "p1", "cut", "2026-12-02")
	// 08:00-10:00 that day; the 09:00 booking blocks [09:00, 09:40), so a 40-minute
	// span fits only at 08:00 and 08:15.
	if !slots[at(2, 8, 0)] || !slots[at(2, 8, 15)] || len(slots) != 2 {
		t.Fatalf("slots after update: %d %v", len(slots), slots)
	}
	if len(confirmed(e.store, "p1")) != 1 {
		t.Fatal("update touched bookings")
	}
	bad := provider("p1")
	bad.Timezone = "Mars/Olympus"
	if _, err := e.cals.UpdateProvider(ctx(t), &calendarv1.UpdateProviderRequest{Provider: bad}); !errors.Is(err, actors.ErrInvalid) {
		t.Fatalf("bad zone: %v", err)
	}
}

func TestCalendars_StopRefusesRequests(t *testing.T) {
	e := newEnv(t, nil)
	e.mustBook(t, "p1", "cut", at(2, 9, 0), "a")
	e.cals.Stop()
	if e.cals.Active() != 0 {
		t.Fatalf("Active after Stop = %d", e.cals.Active())
	}
	if _, err := e.book(t, "p1", "cut", at(2, 10, 0), "b"); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("Book after Stop: %v", err)
	}
}

func TestConfig_Validate(t *testing.T) {
	if err := actors.DefaultConfig().Validate(); err == nil {
		t.Fatal("config without Store validated")
	}
	c := actorstest.Config(actorstest.NewStore(), clock)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.RequestTimeout = time.Microsecond
	if err := c.Validate(); err == nil {
		t.Fatal("RequestTimeout of 1µs validated")
	}
	if _, err := actors.New(actors.Config{}); err == nil {
		t.Fatal("New without Store succeeded")
	}
}

// TestCalendars_ActivationWaitsForLinearizableRead: a calendar must not load from
// a replica that cannot prove it is up to date (it may have moved to a lagging
// follower); it answers unavailable instead of judging from stale state.
func TestCalendars_ActivationWaitsForLinearizableRead(t *testing.T) {
	e := newEnv(t, nil)
	e.store.ReadIndexErr = errors.New("no leader")
	if _, err := e.book(t, "p1", "cut", at(2, 10, 0), "lr-1"); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("Book with no linearizable read: %v, want ErrUnavailable", err)
	}
	e.store.ReadIndexErr = nil
	e.mustBook(t, "p1", "cut", at(2, 10, 0), "lr-2")
}

// TestCalendars_StaleConflictIsConfirmedWithTheStore: another activation (during a
// membership change) cancelled and moved bookings behind this one's back; memory
// still shows them. A request they seem to block is checked with the store before
// it is refused, so it succeeds instead of getting a wrong 409.
func TestCalendars_StaleConflictIsConfirmedWithTheStore(t *testing.T) {
	e := newEnv(t, nil)
	b1 := e.mustBook(t, "p1", "cut", at(2, 10, 0), "stale-1")
	b2 := e.mustBook(t, "p1", "cut", at(2, 11, 0), "stale-2")

	gone := proto.Clone(b1).(*bookingv1.Booking)
	gone.Status = bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED
	e.store.PutBooking(gone)
	moved := proto.Clone(b2).(*bookingv1.Booking)
	moved.StartMs, moved.EndMs, moved.BlockedUntilMs = at(2, 15, 0), at(2, 15, 30), at(2, 15, 40)
	e.store.PutBooking(moved)

	if _, err := e.book(t, "p1", "cut", at(2, 10, 0), "stale-3"); err != nil {
		t.Fatalf("slot of a booking cancelled behind memory's back: %v, want success", err)
	}
	if _, err := e.book(t, "p1", "cut", at(2, 11, 0), "stale-4"); err != nil {
		t.Fatalf("slot of a booking moved behind memory's back: %v, want success", err)
	}
	// A real conflict is still refused, after the check.
	if _, err := e.book(t, "p1", "cut", at(2, 15, 0), "stale-5"); !errors.Is(err, actors.ErrSlotTaken) {
		t.Fatalf("slot the moved booking holds now: %v, want ErrSlotTaken", err)
	}
	if _, err := e.book(t, "p1", "cut", at(2, 10, 15), "stale-6"); !errors.Is(err, actors.ErrSlotTaken) {
		t.Fatalf("slot taken by this activation's own booking: %v, want ErrSlotTaken", err)
	}
}

// TestCalendars_WriteInFlightIsNotAConflict: a write in flight reserves its
// interval, but a reservation is not a booking: the write may still fail (no
// leader, a timeout, a forward that never reaches the leader). A book or a
// reschedule that overlaps only the reservation waits for the write's verdict:
// refused if the write took the slot, judged afresh if it failed; never a 409
// that no committed booking explains (minority-partition, seed 3: ops 1099 and
// 1445 were refused over reservations of writes the log never got).
func TestCalendars_WriteInFlightIsNotAConflict(t *testing.T) {
	lost := errors.New("leader lost")
	for _, fails := range []bool{true, false} {
		name := "write commits"
		if fails {
			name = "write fails"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, nil)
			toMove := e.mustBook(t, "p1", "cut", at(2, 9, 0), "to-move")
			release := make(chan struct{})
			var once sync.Once
			free := func() { once.Do(func() { close(release) }) }
			t.Cleanup(free)
			e.store.BeforePropose = func(cmd *bookingv1.Command) error {
				if cmd.GetIdempotencyKey() != "pending" {
					return nil
				}
				<-release
				if fails {
					return lost
				}
				return nil
			}
			pending := make(chan error, 1)
			go func() { _, err := e.book(t, "p1", "cut", at(2, 14, 0), "pending"); pending <- err }() // [14:00, 14:40)
			eventually(t, "the write in flight", func() bool { return e.store.Proposals() == 2 })

			// Both overlap the reservation, not each other.
			book := make(chan error, 1)
			go func() { _, err := e.book(t, "p1", "beard", at(2, 14, 0), "over"); book <- err }() // [14:00, 14:25)
			move := make(chan error, 1)
			go func() {
				_, err := e.cals.Reschedule(ctx(t), &calendarv1.RescheduleRequest{ProviderId: "p1", BookingId: toMove.GetId(),
					StartMs: at(2, 14, 30), IdempotencyKey: "move", RequestHash: []byte("move")}) // [14:30, 15:10)
				move <- err
			}()
			select {
			case err := <-book:
				t.Fatalf("book over a write in flight answered before the write's verdict: %v", err)
			case err := <-move:
				t.Fatalf("reschedule over a write in flight answered before the write's verdict: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
			free()

			errBook, errMove, errPending := <-book, <-move, <-pending
			if fails {
				if !errors.Is(errPending, lost) {
					t.Fatalf("write in flight: %v, want %v", errPending, lost)
				}
				if errBook != nil || errMove != nil {
					t.Fatalf("after the write in flight failed: book %v, reschedule %v; want both to succeed", errBook, errMove)
				}
				return
			}
			if errPending != nil {
				t.Fatalf("write in flight: %v", errPending)
			}
			if !errors.Is(errBook, actors.ErrSlotTaken) || !errors.Is(errMove, actors.ErrSlotTaken) {
				t.Fatalf("after the write in flight committed: book %v, reschedule %v; want ErrSlotTaken for both", errBook, errMove)
			}
		})
	}
}

// TestCalendars_CancelOnALaggingReplicaIsNotNotFound: the calendar (just moved to
// a follower) is asked to cancel a booking it never saw and that its replica has
// not applied yet; "not found" must wait for a linearizable read.
func TestCalendars_CancelOnALaggingReplicaIsNotNotFound(t *testing.T) {
	e := newEnv(t, nil)
	e.mustBook(t, "p1", "cut", at(2, 9, 0), "lag-0") // activate the calendar
	b := proto.Clone(e.mustBook(t, "p2", "cut", at(2, 10, 0), "lag-1")).(*bookingv1.Booking)
	b.Id, b.ProviderId = "b-behind", "p1"
	e.store.PutBooking(b) // written by another activation, behind this one's back
	e.store.Lag("b-behind")
	got, err := e.cals.Cancel(ctx(t), &calendarv1.CancelRequest{ProviderId: "p1", BookingId: "b-behind"})
	if err != nil || got.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
		t.Fatalf("cancel of a booking the replica had not applied yet: %v %v, want cancelled", got, err)
	}
}

// TestCalendars_StorageUnavailableIsSaid: a store that cannot write (full
// disk) makes a booking fail with ErrStorageUnavailable — a code of its own in
// the reply, so a node that relays it says 503 storage_unavailable rather than
// jurisdiction_unavailable — and nothing is booked; once the store writes
// again the same request succeeds.
func TestCalendars_StorageUnavailableIsSaid(t *testing.T) {
	full := errors.New("storage: cannot write: no space left on device")
	e := newEnv(t, func(c *actors.Config) {
		c.IsStorageUnavailable = func(err error) bool { return errors.Is(err, full) }
	})
	var down atomic.Bool
	down.Store(true)
	e.store.BeforePropose = func(*bookingv1.Command) error {
		if down.Load() {
			return full
		}
		return nil
	}
	start := at(2, 10, 0)
	if _, err := e.book(t, "p1", "cut", start, "k1"); !errors.Is(err, actors.ErrStorageUnavailable) {
		t.Fatalf("booking on a full store: %v, want ErrStorageUnavailable", err)
	}
	if n := len(confirmed(e.store, "p1")); n != 0 {
		t.Fatalf("%d bookings made on a full store", n)
	}
	down.Store(false)
	e.mustBook(t, "p1", "cut", start, "k1")
}

// TestCalendars_KeyedRefusalOverLoadedBookingNeedsNoProposal: a keyed request
// for a slot held by a booking loaded from the store (whose key memory does not
// know) is refused without a Raft proposal when the store holds no record of
// its key; a retry of the request that made the booking is still replayed by
// the FSM, a key used by another request still answers a mismatch, and a
// request with policy the FSM checks before the slot still goes to the FSM.
func TestCalendars_KeyedRefusalOverLoadedBookingNeedsNoProposal(t *testing.T) {
	e := newEnv(t, func(c *actors.Config) { c.IdleTimeout = 50 * time.Millisecond })
	b := e.mustBook(t, "p1", "cut", at(2, 10, 0), "a")
	eventually(t, "passivation", func() bool { return e.cals.Active() == 0 })
	e.slots(t, "p1", "cut", "2026-12-02") // reactivate: the booking is loaded now

	props := e.store.Proposals()
	if _, err := e.book(t, "p1", "cut", at(2, 10, 0), "z"); !errors.Is(err, actors.ErrSlotTaken) {
		t.Fatalf("another key over a loaded booking: %v, want slot taken", err)
	}
	if n := e.store.Proposals() - props; n != 0 {
		t.Fatalf("refusal over a loaded booking made %d proposals, want 0", n)
	}
	props = e.store.Proposals()
	if _, err := e.cals.Book(ctx(t), &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c1",
		StartMs: at(2, 10, 0), BookingId: "b-psy", IdempotencyKey: "psy", RequestHash: []byte("psy"),
		ConsentPurpose: "psychology-care"}); err == nil {
		t.Fatal("policy request over a loaded booking was booked")
	}
	if n := e.store.Proposals() - props; n != 1 {
		t.Fatalf("request with a consent purpose over a loaded booking made %d proposals, want 1 (the FSM checks consent first)", n)
	}
	props = e.store.Proposals()
	again := e.mustBook(t, "p1", "cut", at(2, 10, 0), "a")
	if again.GetId() != b.GetId() || e.store.Proposals()-props != 1 {
		t.Fatalf("retry of the first request: %v after %d proposals, want %s replayed by the FSM", again, e.store.Proposals()-props, b.GetId())
	}
	if _, err := e.cals.Book(ctx(t), &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c1",
		StartMs: at(2, 10, 15), BookingId: "b-other", IdempotencyKey: "a", RequestHash: []byte("other")}); !errors.Is(err, actors.ErrIdempotencyKeyReused) {
		t.Fatalf("key of another request over a loaded booking: %v, want idempotency key reused", err)
	}
}
