package actors_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/actors/actorstest"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"google.golang.org/protobuf/proto"
)

// seriesReq is a weekly series of count "cut" occurrences for client c1 from start.
func seriesReq(provider string, start int64, count int, key string) *calendarv1.BookSeriesRequest {
	ids := make([]string, count)
	for i := range ids {
		ids[i] = key + "-" + string(rune('a'+i))
	}
	return &calendarv1.BookSeriesRequest{ProviderId: provider, ServiceId: "cut", ClientId: "c1", StartMs: start,
		EveryDays: 7, Count: int32(count), SeriesId: "srs-" + key, BookingIds: ids,
		IdempotencyKey: key, RequestHash: []byte(key)}
}

func starts(bs []*bookingv1.Booking) []int64 {
	var out []int64
	for _, b := range bs {
		out = append(out, b.GetStartMs())
	}
	slices.Sort(out)
	return out
}

func TestCalendars_SeriesIsAllOrNoneAndListsOnlyTheCollidingStarts(t *testing.T) {
	e := newEnv(t, nil)
	e.mustBook(t, "p1", "cut", at(9, 10, 0), "x")     // the 2nd occurrence's slot
	e.mustBook(t, "p1", "beard", at(23, 10, 30), "y") // overlaps the 4th's [10:00, 10:40)
	rep, err := e.cals.BookSeries(ctx(t), seriesReq("p1", at(2, 10, 0), 4, "s"))
	if !errors.Is(err, actors.ErrSlotTaken) {
		t.Fatalf("BookSeries over two taken slots: %v", err)
	}
	if want := []int64{at(9, 10, 0), at(23, 10, 0)}; !slices.Equal(rep.GetConflicts(), want) {
		t.Fatalf("conflicts %v, want exactly %v", rep.GetConflicts(), want)
	}
	if n := len(confirmed(e.store, "p1")); n != 2 {
		t.Fatalf("%d confirmed bookings after a refused series, want the 2 there were", n)
	}
	if slots := e.slots(t, "p1", "cut", "2026-12-02"); !slots[at(2, 10, 0)] {
		t.Fatal("the first occurrence's slot stayed busy after the series was refused")
	}

	// Shifted by an hour, nothing collides: every occurrence is booked at once.
	rep, err = e.cals.BookSeries(ctx(t), seriesReq("p1", at(2, 11, 0), 4, "s2"))
	if err != nil {
		t.Fatalf("BookSeries: %v", err)
	}
	want := []int64{at(2, 11, 0), at(9, 11, 0), at(16, 11, 0), at(23, 11, 0)}
	if got := starts(rep.GetBookings()); !slices.Equal(got, want) {
		t.Fatalf("occurrences %v, want %v", got, want)
	}
	if rep.GetSeries().GetId() != "srs-s2" || len(rep.GetSeries().GetBookingIds()) != 4 {
		t.Fatalf("series %v", rep.GetSeries())
	}
	for i, b := range rep.GetBookings() {
		if b.GetSeriesId() != "srs-s2" || b.GetId() != rep.GetSeries().GetBookingIds()[i] ||
			b.GetPrice().GetCents() != 1500000 || b.GetVertical() != "barber" || b.GetEndMs()-b.GetStartMs() != 30*60*1000 {
			t.Fatalf("occurrence %d: %v", i, b)
		}
	}
	if n := len(confirmed(e.store, "p1")); n != 6 {
		t.Fatalf("%d confirmed bookings, want 6", n)
	}
	if slots := e.slots(t, "p1", "cut", "2026-12-16"); slots[at(16, 11, 0)] {
		t.Fatal("an occurrence's slot is still offered")
	}
	// A single booking over an occurrence is refused by memory.
	if _, err := e.book(t, "p1", "cut", at(16, 11, 15), "z"); !errors.Is(err, actors.ErrSlotTaken) {
		t.Fatalf("Book over an occurrence: %v", err)
	}
}

func TestCalendars_SeriesInvalidOccurrenceRefusesAll(t *testing.T) {
	e := newEnv(t, nil)
	// Weekly from Saturday 12-05 at 11:00 lands on Saturdays, fine; from
	// Wednesday 12-02 with every 4 days, the 2nd is Sunday 12-06 (closed).
	r := seriesReq("p1", at(2, 10, 0), 3, "d")
	r.EveryDays = 4
	if _, err := e.cals.BookSeries(ctx(t), r); !errors.Is(err, actors.ErrInvalid) {
		t.Fatalf("series with a closed day: %v", err)
	}
	// Beyond the 30-day horizon.
	if _, err := e.cals.BookSeries(ctx(t), seriesReq("p1", at(2, 10, 0), 6, "h")); !errors.Is(err, actors.ErrInvalid) {
		t.Fatalf("series beyond the horizon: %v", err)
	}
	for _, bad := range []func(*calendarv1.BookSeriesRequest){
		func(r *calendarv1.BookSeriesRequest) { r.Count = 1 },
		func(r *calendarv1.BookSeriesRequest) { r.Count = 53 },
		func(r *calendarv1.BookSeriesRequest) { r.EveryDays = 0 },
		func(r *calendarv1.BookSeriesRequest) { r.BookingIds = r.BookingIds[:2] },
		func(r *calendarv1.BookSeriesRequest) { r.BookingIds[1] = r.BookingIds[0] },
		func(r *calendarv1.BookSeriesRequest) { r.ClientId = "" },
		func(r *calendarv1.BookSeriesRequest) { r.ServiceId = "nope" },
		func(r *calendarv1.BookSeriesRequest) {
			r.SessionStatus = bookingv1.SessionStatus_SESSION_STATUS_COMPLETED
		},
	} {
		r := seriesReq("p1", at(2, 10, 0), 3, "bad")
		bad(r)
		if _, err := e.cals.BookSeries(ctx(t), r); !errors.Is(err, actors.ErrInvalid) {
			t.Fatalf("%v: %v, want ErrInvalid", r, err)
		}
	}
	if n := e.store.Proposals(); n != 0 {
		t.Fatalf("%d commands proposed for invalid series", n)
	}
}

func TestCalendars_SeriesKeepsLocalWallTimeAcrossDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	s := actorstest.NewStore()
	p := provider("nyc")
	p.Timezone, p.HorizonDays = "America/New_York", 200
	s.PutProvider(p)
	cals := actorstest.MustStart(t, actorstest.Config(s, clock))
	// Wednesdays 10:00 around the change of 2027-03-14 (EST → EDT).
	start := time.Date(2027, 3, 3, 10, 0, 0, 0, ny)
	r := seriesReq("nyc", start.UnixMilli(), 3, "dst")
	rep, err := cals.BookSeries(ctx(t), r)
	if err != nil {
		t.Fatalf("BookSeries: %v", err)
	}
	got := starts(rep.GetBookings())
	for i, ms := range got {
		l := time.UnixMilli(ms).In(ny)
		if l.Hour() != 10 || l.Minute() != 0 || l.Weekday() != time.Wednesday {
			t.Fatalf("occurrence %d at %s, want Wednesday 10:00 local", i, l)
		}
	}
	// In UTC the third one is an hour earlier than a fixed 7×24h step.
	if d := time.Duration(got[2]-got[1]) * time.Millisecond; d != 7*24*time.Hour-time.Hour {
		t.Fatalf("step across the change = %s, want 167h", d)
	}
	if d := time.Duration(got[1]-got[0]) * time.Millisecond; d != 7*24*time.Hour {
		t.Fatalf("step before the change = %s, want 168h", d)
	}
}

func TestCalendars_SeriesIdempotentReplay(t *testing.T) {
	e := newEnv(t, nil)
	r := seriesReq("p1", at(2, 10, 0), 3, "k")
	first, err := e.cals.BookSeries(ctx(t), r)
	if err != nil {
		t.Fatalf("BookSeries: %v", err)
	}
	n := e.store.Proposals()
	again, err := e.cals.BookSeries(ctx(t), proto.Clone(r).(*calendarv1.BookSeriesRequest))
	if err != nil || !proto.Equal(first, again) {
		t.Fatalf("replay in the same activation: %v\n%v\n%v", err, first, again)
	}
	if e.store.Proposals() != n {
		t.Fatal("a replay answered by the activation proposed again")
	}
	// A fresh activation knows the bookings from the store only: the FSM replays.
	fresh := actorstest.MustStart(t, actorstest.Config(e.store, clock))
	replayed, err := fresh.BookSeries(ctx(t), proto.Clone(r).(*calendarv1.BookSeriesRequest))
	if err != nil {
		t.Fatalf("replay on a fresh activation: %v", err)
	}
	if replayed.GetSeries().GetId() != "srs-k" || !slices.Equal(starts(replayed.GetBookings()), starts(first.GetBookings())) {
		t.Fatalf("replayed %v", replayed)
	}
	if n := len(confirmed(e.store, "p1")); n != 3 {
		t.Fatalf("%d confirmed bookings after replays, want 3", n)
	}
	other := proto.Clone(r).(*calendarv1.BookSeriesRequest)
	other.RequestHash = []byte("another body")
	if _, err := e.cals.BookSeries(ctx(t), other); !errors.Is(err, actors.ErrIdempotencyKeyReused) {
		t.Fatalf("same key, another body: %v", err)
	}
	// Another key over the same slots is a conflict on every occurrence.
	rep, err := fresh.BookSeries(ctx(t), seriesReq("p1", at(2, 10, 0), 3, "k2"))
	if !errors.Is(err, actors.ErrSlotTaken) || len(rep.GetConflicts()) != 3 {
		t.Fatalf("another key over the series: %v %v", err, rep.GetConflicts())
	}
}

func TestCalendars_CancelSeriesFromADateOn(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.cals.BookSeries(ctx(t), seriesReq("p1", at(2, 10, 0), 4, "c")); err != nil {
		t.Fatalf("BookSeries: %v", err)
	}
	rep, err := e.cals.CancelSeries(ctx(t), &calendarv1.CancelSeriesRequest{ProviderId: "p1", SeriesId: "srs-c", FromMs: at(16, 0, 0)})
	if err != nil {
		t.Fatalf("CancelSeries: %v", err)
	}
	if got, want := starts(rep.GetBookings()), []int64{at(16, 10, 0), at(23, 10, 0)}; !slices.Equal(got, want) {
		t.Fatalf("cancelled %v, want %v", got, want)
	}
	if got, want := starts(confirmed(e.store, "p1")), []int64{at(2, 10, 0), at(9, 10, 0)}; !slices.Equal(got, want) {
		t.Fatalf("still confirmed %v, want %v", got, want)
	}
	if slots := e.slots(t, "p1", "cut", "2026-12-16"); !slots[at(16, 10, 0)] {
		t.Fatal("a cancelled occurrence's slot is not offered again")
	}
	if slots := e.slots(t, "p1", "cut", "2026-12-09"); slots[at(9, 10, 0)] {
		t.Fatal("an occurrence before from_ms was freed")
	}
	// Again: nothing more to cancel.
	rep, err = e.cals.CancelSeries(ctx(t), &calendarv1.CancelSeriesRequest{ProviderId: "p1", SeriesId: "srs-c", FromMs: at(16, 0, 0)})
	if err != nil || len(rep.GetBookings()) != 0 {
		t.Fatalf("cancelling again: %v %v", err, rep.GetBookings())
	}
	if _, err := e.cals.CancelSeries(ctx(t), &calendarv1.CancelSeriesRequest{ProviderId: "p1", SeriesId: "srs-none"}); !errors.Is(err, actors.ErrNotFound) {
		t.Fatalf("unknown series: %v", err)
	}
	if _, err := e.cals.CancelSeries(ctx(t), &calendarv1.CancelSeriesRequest{ProviderId: "p1"}); !errors.Is(err, actors.ErrInvalid) {
		t.Fatalf("no series id: %v", err)
	}
}

func TestCalendars_ConsentVerifiedAndAuditReachTheCommands(t *testing.T) {
	e := newEnv(t, nil)
	audit := []*bookingv1.AuditRecord{{Subject: "c1", Role: "client", Action: "booking.create", Object: "b-psy", Node: "n1"}}
	book := &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c1", StartMs: at(2, 10, 0),
		BookingId: "b-psy", IdempotencyKey: "psy", RequestHash: []byte("psy"),
		ConsentPurpose: "psychology-care", RequireVerified: true, Audit: audit,
		SessionStatus: bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED}
	// Verification is judged before consent (review9 finding 3): an unverified
	// provider learns nothing of a client's consents.
	if _, err := e.cals.Book(ctx(t), book); !errors.Is(err, actors.ErrProviderUnverified) {
		t.Fatalf("Book without consent at an unverified provider: %v", err)
	}
	cmds := e.store.Commands()
	cb := cmds[len(cmds)-1].GetCreateBooking()
	if cb.GetConsentPurpose() != "psychology-care" || !cb.GetRequireVerified() || !proto.Equal(cmds[len(cmds)-1].GetAudit()[0], audit[0]) {
		t.Fatalf("CreateBooking command %v", cmds[len(cmds)-1])
	}
	if cb.GetBooking().GetSessionStatus() != bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED {
		t.Fatalf("the request's session status did not reach the booking: %v", cb.GetBooking())
	}
	p := provider("p1")
	p.VerifiedAtMs, p.VerifiedBy = now.UnixMilli(), "op1"
	e.store.PutProvider(p)
	book.IdempotencyKey, book.RequestHash = "psy2", []byte("psy2")
	if _, err := e.cals.Book(ctx(t), book); !errors.Is(err, actors.ErrConsentRequired) {
		t.Fatalf("Book without consent at a verified provider: %v", err)
	}
	grant := &bookingv1.Command{ProposedAtMs: now.UnixMilli(), Op: &bookingv1.Command_GrantConsent{GrantConsent: &bookingv1.GrantConsent{
		Consent: &bookingv1.Consent{Id: "cns-1", ClientId: "c1", Purpose: "psychology-care", Jurisdiction: "ar",
			GrantedAtMs: now.UnixMilli(), ExpiresAtMs: now.AddDate(0, 0, 730).UnixMilli()}}}}
	if res, err := e.store.Propose(ctx(t), grant); err != nil || res.GetCode() != bookingv1.ResultCode_RESULT_CODE_OK {
		t.Fatalf("grant: %v %v", res, err)
	}
	book.IdempotencyKey, book.RequestHash = "psy3", []byte("psy3")
	b, err := e.cals.Book(ctx(t), book)
	if err != nil {
		t.Fatalf("Book with consent at a verified provider: %v", err)
	}

	sr := seriesReq("p1", at(3, 10, 0), 2, "psys")
	sr.ConsentPurpose, sr.RequireVerified, sr.Audit = "psychology-care", true, audit
	sr.SessionStatus = bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED
	if _, err := e.cals.BookSeries(ctx(t), sr); err != nil {
		t.Fatalf("BookSeries: %v", err)
	}
	cmds = e.store.Commands()
	cs := cmds[len(cmds)-1]
	if cs.GetCreateSeries().GetConsentPurpose() != "psychology-care" || !cs.GetCreateSeries().GetRequireVerified() ||
		len(cs.GetAudit()) != 1 || cs.GetIdempotencyKey() != "psys" {
		t.Fatalf("CreateSeries command %v", cs)
	}
	for _, ob := range cs.GetCreateSeries().GetBookings() {
		if ob.GetSessionStatus() != bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED {
			t.Fatalf("occurrence not SCHEDULED: %v", ob)
		}
	}

	move := []*bookingv1.AuditRecord{{Subject: "c1", Role: "client", Action: "booking.reschedule", Object: b.GetId()}}
	if _, err := e.cals.Reschedule(ctx(t), &calendarv1.RescheduleRequest{ProviderId: "p1", BookingId: b.GetId(), StartMs: at(2, 11, 0), Audit: move,
		ConsentPurpose: "psychology-care"}); err != nil {
		t.Fatalf("Reschedule: %v", err)
	}
	cmds = e.store.Commands()
	if rb := cmds[len(cmds)-1].GetRescheduleBooking(); rb.GetConsentPurpose() != "psychology-care" {
		t.Fatalf("the request's consent purpose did not reach RescheduleBooking: %v", cmds[len(cmds)-1])
	}
	cancel := []*bookingv1.AuditRecord{{Subject: "c1", Role: "client", Action: "booking.cancel", Object: b.GetId()}}
	if _, err := e.cals.Cancel(ctx(t), &calendarv1.CancelRequest{ProviderId: "p1", BookingId: b.GetId(), Audit: cancel}); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	scancel := []*bookingv1.AuditRecord{{Subject: "c1", Role: "client", Action: "series.cancel", Object: "srs-psys"}}
	if _, err := e.cals.CancelSeries(ctx(t), &calendarv1.CancelSeriesRequest{ProviderId: "p1", SeriesId: "srs-psys", Audit: scancel}); err != nil {
		t.Fatalf("CancelSeries: %v", err)
	}
	cmds = e.store.Commands()
	tail := cmds[len(cmds)-3:]
	if tail[0].GetRescheduleBooking() == nil || !proto.Equal(tail[0].GetAudit()[0], move[0]) ||
		tail[1].GetCancelBooking() == nil || !proto.Equal(tail[1].GetAudit()[0], cancel[0]) ||
		tail[2].GetCancelSeries() == nil || !proto.Equal(tail[2].GetAudit()[0], scancel[0]) {
		t.Fatalf("audit records did not ride on their commands: %v", tail)
	}
}

func TestCalendars_RefreshDropsABookingCancelledBehindTheActor(t *testing.T) {
	e := newEnv(t, nil)
	grant := &bookingv1.Command{ProposedAtMs: now.UnixMilli(), Op: &bookingv1.Command_GrantConsent{GrantConsent: &bookingv1.GrantConsent{
		Consent: &bookingv1.Consent{Id: "cns-1", ClientId: "c1", Purpose: "barber-care", GrantedAtMs: now.UnixMilli(), ExpiresAtMs: now.AddDate(2, 0, 0).UnixMilli()}}}}
	if _, err := e.store.Propose(ctx(t), grant); err != nil {
		t.Fatal(err)
	}
	e.mustBook(t, "p1", "cut", at(2, 10, 0), "a")
	if slots := e.slots(t, "p1", "cut", "2026-12-02"); slots[at(2, 10, 0)] {
		t.Fatal("booked slot offered")
	}
	// The FSM cancels the client's future bookings on withdrawal, without the calendar.
	res, err := e.store.Propose(ctx(t), &bookingv1.Command{ProposedAtMs: now.UnixMilli(), Op: &bookingv1.Command_WithdrawConsent{
		WithdrawConsent: &bookingv1.WithdrawConsent{ClientId: "c1", ConsentId: "cns-1", Verticals: []string{"barber"}}}})
	if err != nil || len(res.GetBookings()) != 1 {
		t.Fatalf("withdraw: %v %v", res, err)
	}
	if slots := e.slots(t, "p1", "cut", "2026-12-02"); slots[at(2, 10, 0)] {
		t.Fatal("the calendar learned of the cancellation without a refresh: this test proves nothing")
	}
	if err := e.cals.Refresh(ctx(t), "p1"); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if slots := e.slots(t, "p1", "cut", "2026-12-02"); !slots[at(2, 10, 0)] {
		t.Fatal("the slot of a booking cancelled by the FSM is still busy after Refresh")
	}
	if err := e.cals.Refresh(ctx(t), "nobody"); !errors.Is(err, actors.ErrNotFound) {
		t.Fatalf("Refresh of an unknown provider: %v", err)
	}
}

func TestCalendars_NewResultCodesMapToSentinels(t *testing.T) {
	e := newEnv(t, nil)
	codes := map[bookingv1.ResultCode]error{
		bookingv1.ResultCode_RESULT_CODE_CONSENT_REQUIRED:    actors.ErrConsentRequired,
		bookingv1.ResultCode_RESULT_CODE_PROVIDER_UNVERIFIED: actors.ErrProviderUnverified,
		bookingv1.ResultCode_RESULT_CODE_ERASED:              actors.ErrErased,
	}
	for code, want := range codes {
		storeErr := errors.New("storage: " + code.String())
		cfg := actorstest.Config(e.store, clock)
		cfg.Store = &verdictStore{Store: e.store, code: code, err: storeErr}
		c := actorstest.MustStart(t, cfg)
		_, err := c.Book(ctx(t), &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c",
			StartMs: at(3, 9, 0), BookingId: "m", IdempotencyKey: "m", RequestHash: []byte("m")})
		if !errors.Is(err, want) || !errors.Is(err, storeErr) {
			t.Errorf("Book %s: %v, want %v wrapping the store error", code, err, want)
		}
		_, err = c.BookSeries(ctx(t), seriesReq("p1", at(3, 10, 0), 2, "m"))
		if !errors.Is(err, want) {
			t.Errorf("BookSeries %s: %v, want %v", code, err, want)
		}
	}
}

// TestCalendars_SeriesWaitsForAWriteInFlight: a series whose occurrence
// overlaps only a write in flight waits for its verdict, and is booked when
// that write fails.
func TestCalendars_SeriesWaitsForAWriteInFlight(t *testing.T) {
	lost := errors.New("leader lost")
	e := newEnv(t, nil)
	release := make(chan struct{})
	e.store.BeforePropose = func(cmd *bookingv1.Command) error {
		if cmd.GetIdempotencyKey() == "pending" {
			<-release
			return lost
		}
		if cmd.GetIdempotencyKey() == "series" {
			<-release
		}
		return nil
	}
	pending := make(chan error, 1)
	go func() { _, err := e.book(t, "p1", "cut", at(9, 10, 0), "pending"); pending <- err }()
	eventually(t, "the write in flight", func() bool { return e.store.Proposals() == 1 })
	series := make(chan error, 1)
	go func() { _, err := e.cals.BookSeries(ctx(t), seriesReq("p1", at(2, 10, 0), 3, "series")); series <- err }()
	select {
	case err := <-series:
		t.Fatalf("series over a write in flight answered before its verdict: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-pending; !errors.Is(err, lost) {
		t.Fatalf("write in flight: %v", err)
	}
	if err := <-series; err != nil {
		t.Fatalf("series after the write in flight failed: %v", err)
	}
	if n := len(confirmed(e.store, "p1")); n != 3 {
		t.Fatalf("%d confirmed, want the 3 occurrences", n)
	}
}

// TestCalendars_SeriesOccurrencesCollidingWithEachOther: occurrences of a
// service longer than the interval collide with each other; every one that
// collides is listed (as the FSM lists them), and nothing is proposed.
func TestCalendars_SeriesOccurrencesCollidingWithEachOther(t *testing.T) {
	s := actorstest.NewStore()
	p := provider("p1")
	p.Services = append(p.Services, &bookingv1.Service{Id: "long", DurationMinutes: 60, BufferMinutes: 2 * 24 * 60})
	s.PutProvider(p)
	cals := actorstest.MustStart(t, actorstest.Config(s, clock))
	r := seriesReq("p1", at(2, 10, 0), 3, "l")
	r.ServiceId, r.EveryDays = "long", 2
	rep, err := cals.BookSeries(ctx(t), r)
	if !errors.Is(err, actors.ErrSlotTaken) || !slices.Equal(rep.GetConflicts(), []int64{at(2, 10, 0), at(4, 10, 0), at(6, 10, 0)}) {
		t.Fatalf("self-colliding series: %v %v", err, rep.GetConflicts())
	}
	if s.Proposals() != 0 {
		t.Fatal("a self-colliding series was proposed")
	}
}
