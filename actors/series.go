package actors

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/barberpro/edge/actors/calendar"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"google.golang.org/protobuf/proto"
)

// bookSeries books every occurrence of a series or none. Each occurrence is
// judged in memory as Book judges one booking (and against the others); a
// collision refuses them all with the colliding starts in Reply.conflicts;
// otherwise one CreateSeries command carries them all, and the FSM judges them
// again (consent, verification, overlap) all or none.
func (a *calendarActor) bookSeries(ctx actor.Context, r *calendarv1.BookSeriesRequest, w waiter) {
	svc := a.checkBooking(ctx, w, r.GetServiceId(), r.GetClientId(), r.GetSessionStatus())
	if svc == nil {
		return
	}
	count := int(r.GetCount())
	if err := checkSeriesIDs(r.GetBookingIds(), count); err != nil {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "%v", err), nil)
		return
	}
	if a.checkKey(ctx, opSeries, r.GetIdempotencyKey(), r.GetRequestHash(), w) {
		return
	}
	starts, err := calendar.SeriesStarts(a.provider, time.UnixMilli(r.GetStartMs()), int(r.GetEveryDays()), count)
	if err != nil {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "%v", err), nil)
		return
	}
	ivs := make([]calendar.Interval, count)
	for i, s := range starts {
		_, blockedUntil := calendar.Span(svc, s)
		ivs[i] = calendar.Interval{Start: s, End: blockedUntil}
	}

	// Collisions with memory (bookings; writes in flight make it wait) and
	// between occurrences (a service longer than the interval: both collide),
	// as the FSM judges them.
	var conflicts []int64
	var holders []*bookingv1.Booking
	seen := map[string]bool{}
	replayable := r.GetIdempotencyKey() != "" // every collision may be this very series, stored before
	for i, iv := range ivs {
		collides := false
		for _, id := range a.busy.OverlappingAll(iv, "") {
			if a.parkBehind(ctx, id, r, w) {
				return
			}
			collides = true
			h := a.bookings[id[min(2, len(id)):]]
			if h == nil || !h.loaded {
				replayable = false
			}
			if h != nil && !seen[id] {
				seen[id] = true
				holders = append(holders, h.b)
			}
		}
		for j := range ivs {
			if j != i && ivs[j].Overlap(iv) {
				collides, replayable = true, false
			}
		}
		if collides {
			conflicts = append(conflicts, starts[i].UnixMilli())
		}
	}
	invalid := a.checkStarts(svc, starts)
	verify := false
	if len(conflicts) > 0 {
		if !refusedByStoreOnly(r) && (!replayable || invalid != nil) {
			// A slot lost to another booking is a 409, even if a start is also
			// invalid; memory is confirmed with the store before it refuses.
			if len(holders) > 0 && !a.confirming {
				a.confirmConflict(ctx, holders, r, w, "")
				return
			}
			rep := errReply(calendarv1.ErrorCode_ERROR_CODE_SLOT_TAKEN,
				"%d of the %d occurrences overlap other bookings", len(conflicts), count)
			rep.Conflicts = conflicts
			a.reply(ctx, w, rep, nil)
			return
		}
		// Every collision is with a booking loaded from the store, whose key we
		// do not know: the FSM replays the first answer or refuses.
		verify = true
	} else if invalid != nil {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "%v", invalid), nil)
		return
	}

	seriesID := r.GetSeriesId()
	if seriesID == "" {
		seriesID = a.cfg.NewID()
	}
	ids := r.GetBookingIds()
	if len(ids) == 0 {
		ids = make([]string, count)
		for i := range ids {
			ids[i] = a.cfg.NewID()
		}
	}
	series := &bookingv1.Series{
		Id:          seriesID,
		ProviderId:  a.providerID,
		ServiceId:   svc.GetId(),
		ClientId:    r.GetClientId(),
		EveryDays:   r.GetEveryDays(),
		BookingIds:  ids,
		CreatedAtMs: a.now().UnixMilli(),
	}
	bookings := make([]*bookingv1.Booking, count)
	for i, s := range starts {
		bookings[i] = a.newBooking(svc, ids[i], r.GetClientId(), s, seriesID, r.GetSessionStatus())
	}
	o := a.newOp(opSeries, r.GetIdempotencyKey(), r.GetRequestHash(), w)
	o.series, o.bookings, o.verify = series, bookings, verify
	if !verify {
		a.reserve(o, ivs...)
	}
	// The command lists the occurrences in bookings only: the FSM fills the
	// stored series' booking_ids from them.
	proposed := proto.Clone(series).(*bookingv1.Series)
	proposed.BookingIds, proposed.CreatedAtMs = nil, 0
	a.propose(ctx, o, &bookingv1.Command{Audit: r.GetAudit(), Op: &bookingv1.Command_CreateSeries{CreateSeries: &bookingv1.CreateSeries{
		Series:          proposed,
		Bookings:        bookings,
		ConsentPurpose:  r.GetConsentPurpose(),
		RequireVerified: r.GetRequireVerified(),
	}}})
}

// checkSeriesIDs accepts no booking ids (the calendar picks them) or exactly
// count distinct non-empty ones.
func checkSeriesIDs(ids []string, count int) error {
	if len(ids) == 0 {
		return nil
	}
	if len(ids) != count {
		return fmt.Errorf("%d booking ids for %d occurrences", len(ids), count)
	}
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		if id == "" || seen[id] {
			return fmt.Errorf("booking id %d is empty or repeated", i+1)
		}
		seen[id] = true
	}
	return nil
}

// checkSessionStatus accepts what a new booking may start as: no session, or
// a scheduled one.
func checkSessionStatus(s bookingv1.SessionStatus) error {
	switch s {
	case bookingv1.SessionStatus_SESSION_STATUS_UNSPECIFIED, bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED:
		return nil
	}
	return fmt.Errorf("a new booking's session_status must be unset or SCHEDULED, not %s", s)
}

// checkStarts is the first occurrence whose start could never be offered
// (notice, horizon, hours, grid), or nil.
func (a *calendarActor) checkStarts(svc *bookingv1.Service, starts []time.Time) error {
	now := a.now()
	for i, s := range starts {
		if err := calendar.CheckStart(a.provider, svc, s, now); err != nil {
			return fmt.Errorf("occurrence %d of %d: %w", i+1, len(starts), err)
		}
	}
	return nil
}

// cancelSeries cancels the series' occurrences from r.from_ms on (0: the
// command's entry time) with one CancelSeries command. Cancelling again
// cancels nothing more.
func (a *calendarActor) cancelSeries(ctx actor.Context, r *calendarv1.CancelSeriesRequest, w waiter) {
	if r.GetSeriesId() == "" {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "series_id is required"), nil)
		return
	}
	if r.GetFromMs() < 0 {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "from_ms must not be negative"), nil)
		return
	}
	o := a.newOp(opCancelSeries, "", nil, w)
	o.series = &bookingv1.Series{Id: r.GetSeriesId(), ProviderId: a.providerID}
	a.propose(ctx, o, &bookingv1.Command{Audit: r.GetAudit(), Op: &bookingv1.Command_CancelSeries{CancelSeries: &bookingv1.CancelSeries{
		SeriesId: r.GetSeriesId(),
		FromMs:   r.GetFromMs(),
	}}})
}

// settleSeries makes memory follow a series write the store accepted and fills
// the answer: the series and its bookings (created, or those cancelled).
func (a *calendarActor) settleSeries(o *op, res *bookingv1.CommandResult, rep *calendarv1.Reply) {
	bs := res.GetBookings()
	switch o.kind {
	case opSeries:
		if len(bs) == 0 { // a store that answers without the records
			bs = o.bookings
		}
		unknown := false
		for _, b := range bs {
			if b.GetProviderId() != a.providerID {
				continue
			}
			_, known := a.bookings[b.GetId()]
			unknown = unknown || !known
			a.upsert(b, false)
		}
		if o.verify && unknown {
			a.reload("store accepted a series memory had as taken")
		}
		rep.Series = res.GetSeries()
		if rep.Series == nil {
			rep.Series = o.series
		}
	case opCancelSeries:
		if bs == nil && res.GetSeries() == nil {
			// The store did not say what it cancelled.
			a.reload("store cancelled a series without listing its bookings")
		}
		foreign := false
		for _, b := range bs {
			if b.GetProviderId() != a.providerID {
				foreign = true
				continue
			}
			a.upsert(b, false)
		}
		if foreign {
			a.log.WarnContext(a.lctx(), "a series of another provider was cancelled through this calendar", slog.Int("bookings", len(bs)))
		}
		rep.Series = res.GetSeries()
	}
	rep.Bookings = bs
}

// newBooking is the confirmed booking of svc at start that Book and BookSeries
// propose: price and vertical from the provider, session status as the edge
// asked (SCHEDULED for verticals whose bookings are sessions).
func (a *calendarActor) newBooking(svc *bookingv1.Service, id, clientID string, start time.Time, seriesID string,
	session bookingv1.SessionStatus) *bookingv1.Booking {
	end, blockedUntil := calendar.Span(svc, start)
	now := a.now().UnixMilli()
	b := &bookingv1.Booking{
		Id:             id,
		ProviderId:     a.providerID,
		ServiceId:      svc.GetId(),
		ClientId:       clientID,
		StartMs:        start.UnixMilli(),
		EndMs:          end.UnixMilli(),
		BlockedUntilMs: blockedUntil.UnixMilli(),
		Status:         bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED,
		Vertical:       a.provider.GetVertical(),
		CreatedAtMs:    now,
		UpdatedAtMs:    now,
		SeriesId:       seriesID,
		SessionStatus:  session,
	}
	if svc.GetPrice() != nil {
		b.Price = proto.Clone(svc.GetPrice()).(*bookingv1.Money)
	}
	return b
}
