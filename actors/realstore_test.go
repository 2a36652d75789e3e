package actors_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/actors/actorstest"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// realStore opens a one-node Raft store holding provider p1 and returns it
// with a calendar Config over it.
func realStore(t testing.TB) (*storage.Store, actors.Config) {
	t.Helper()
	cfg := storage.LocalConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftAddr, cfg.Bootstrap = "ba-1", t.TempDir(), "127.0.0.1:0", true
	cfg.Logger, cfg.Clock, cfg.Jurisdiction = st.Logger(), clock, "ar"
	s, err := storage.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := ctx(t)
	if err := s.WaitReady(c); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Propose(c, &bookingv1.Command{ProposedAtMs: now.UnixMilli(), Op: &bookingv1.Command_CreateProvider{
		CreateProvider: &bookingv1.CreateProvider{Provider: provider("p1")}}}); err != nil {
		t.Fatal(err)
	}
	ac := actorstest.Config(actorstest.NewStore(), clock)
	ac.Store = s
	ac.IsNotFound = func(err error) bool { return errors.Is(err, storage.ErrNotFound) }
	return s, ac
}

// TestCalendars_KeyedRefusalOnTheRealFSM: over the real store, a keyed booking
// of a slot a loaded booking holds is refused without a Raft entry, and a
// retry of the request that made the booking is replayed.
func TestCalendars_KeyedRefusalOnTheRealFSM(t *testing.T) {
	s, ac := realStore(t)
	c := ctx(t)
	first, err := actorstest.MustStart(t, ac).Book(c, &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c0",
		StartMs: at(16, 10, 0), BookingId: "single", IdempotencyKey: "single", RequestHash: []byte("single")})
	if err != nil {
		t.Fatalf("Book: %v", err)
	}
	fresh := actorstest.MustStart(t, ac) // loads the booking: its key unknown
	last := s.Stats().LastLogIndex
	if _, err := fresh.Book(c, &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c1",
		StartMs: at(16, 10, 0), BookingId: "other", IdempotencyKey: "other", RequestHash: []byte("other")}); !errors.Is(err, actors.ErrSlotTaken) {
		t.Fatalf("another key over the loaded booking: %v, want slot taken", err)
	}
	if got := s.Stats().LastLogIndex; got != last {
		t.Fatalf("the refusal appended %d Raft entries, want none", got-last)
	}
	again, err := fresh.Book(c, &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c0",
		StartMs: at(16, 10, 0), BookingId: "single-retry", IdempotencyKey: "single", RequestHash: []byte("single")})
	if err != nil || again.GetId() != first.GetId() {
		t.Fatalf("retry over its own loaded booking: %v %v, want %s replayed", again, err, first.GetId())
	}
}

// TestCalendars_SeriesAgainstTheRealFSM runs series through a real one-node
// Raft store: the command the calendar proposes is the one the FSM accepts
// (all or none, exact conflicts, cancel from a date, consent before the slot).
func TestCalendars_SeriesAgainstTheRealFSM(t *testing.T) {
	s, ac := realStore(t)
	c := ctx(t)
	cals := actorstest.MustStart(t, ac)

	if _, err := cals.Book(c, &calendarv1.BookRequest{ProviderId: "p1", ServiceId: "cut", ClientId: "c0", StartMs: at(16, 10, 0),
		BookingId: "single", IdempotencyKey: "single", RequestHash: []byte("single")}); err != nil {
		t.Fatalf("Book: %v", err)
	}
	rep, err := cals.BookSeries(c, seriesReq("p1", at(2, 10, 0), 4, "s"))
	if !errors.Is(err, actors.ErrSlotTaken) || !slices.Equal(rep.GetConflicts(), []int64{at(16, 10, 0)}) {
		t.Fatalf("series over a booking: %v %v", err, rep.GetConflicts())
	}
	rep, err = cals.BookSeries(c, seriesReq("p1", at(2, 11, 0), 4, "s2"))
	if err != nil {
		t.Fatalf("BookSeries on the real FSM: %v", err)
	}
	if sr, err := s.Series(c, "srs-s2"); err != nil || len(sr.GetBookingIds()) != 4 || !slices.Equal(sr.GetBookingIds(), rep.GetSeries().GetBookingIds()) {
		t.Fatalf("stored series %v %v, answered %v", sr, err, rep.GetSeries())
	}
	if got := starts(rep.GetBookings()); !slices.Equal(got, []int64{at(2, 11, 0), at(9, 11, 0), at(16, 11, 0), at(23, 11, 0)}) {
		t.Fatalf("occurrences %v", got)
	}
	// A fresh calendar replays the key through the FSM.
	fresh := actorstest.MustStart(t, ac)
	if again, err := fresh.BookSeries(c, seriesReq("p1", at(2, 11, 0), 4, "s2")); err != nil || again.GetSeries().GetId() != "srs-s2" {
		t.Fatalf("replay on the real FSM: %v %v", again, err)
	}
	cancelled, err := cals.CancelSeries(c, &calendarv1.CancelSeriesRequest{ProviderId: "p1", SeriesId: "srs-s2", FromMs: at(16, 0, 0)})
	if err != nil || !slices.Equal(starts(cancelled.GetBookings()), []int64{at(16, 11, 0), at(23, 11, 0)}) {
		t.Fatalf("CancelSeries on the real FSM: %v %v", cancelled, err)
	}
	for _, b := range cancelled.GetBookings() {
		if b.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
			t.Fatalf("not cancelled: %v", b)
		}
	}
	// Without consent the FSM refuses a series on free slots. (Over slots memory
	// knows are taken the calendar refuses first: it holds no consents; the
	// edge checks consent before it asks the calendar.)
	psy := seriesReq("p1", at(2, 11, 0), 2, "psy")
	psy.ConsentPurpose = "psychology-care"
	if _, err := fresh.BookSeries(c, psy); !errors.Is(err, actors.ErrSlotTaken) {
		t.Fatalf("series over taken slots: %v", err)
	}
	psy = seriesReq("p1", at(3, 15, 0), 2, "psy2")
	psy.ConsentPurpose = "psychology-care"
	if _, err := fresh.BookSeries(c, psy); !errors.Is(err, actors.ErrConsentRequired) || !errors.Is(err, storage.ErrConsentRequired) {
		t.Fatalf("series without consent on the real FSM: %v", err)
	}
}
