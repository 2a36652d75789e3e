package actors

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/barberpro/edge/actors/calendar"
	"github.com/barberpro/edge/actors/internal/activation"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// activate loads the calendar and arms passivation.
func (a *calendarActor) activate(ctx actor.Context) {
	a.load()
	ctx.SetReceiveTimeout(a.cfg.IdleTimeout)
	if a.loadErr != nil {
		a.retire(ctx)
	}
}

// retire asks the directory to stop routing here; retireNow arrives after every
// request already routed to us.
func (a *calendarActor) retire(ctx actor.Context) {
	activation.Retire(ctx, a.dir, a.providerID)
}

// load reads the provider and its upcoming bookings from the store.
func (a *calendarActor) load() {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.RequestTimeout)
	defer cancel()
	if err := a.store.LinearizableRead(ctx); err != nil {
		a.loadCode, a.loadErr = calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, fmt.Errorf("load provider %q: %w", a.providerID, err)
		a.log.WarnContext(a.lctx(), "calendar activation failed", slog.Any("error", err))
		return
	}
	p, err := a.store.Provider(ctx, a.providerID)
	if (err == nil && p == nil) || (err != nil && a.cfg.IsNotFound(err)) {
		a.loadCode, a.loadErr = calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND, fmt.Errorf("provider %q not found", a.providerID)
		return
	}
	if err != nil {
		a.loadCode, a.loadErr = calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, fmt.Errorf("load provider %q: %w", a.providerID, err)
		a.log.WarnContext(a.lctx(), "calendar activation failed", slog.Any("error", err))
		return
	}
	if err := a.loadBookings(ctx, p); err != nil {
		a.loadCode, a.loadErr = calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, err
		a.log.WarnContext(a.lctx(), "calendar activation failed", slog.Any("error", err))
		return
	}
	a.log.DebugContext(a.lctx(), "calendar activated", slog.Int("bookings", len(a.bookings)))
}

// loadBookings replaces the in-memory calendar with the store's, keeping the
// reservations of writes in flight.
func (a *calendarActor) loadBookings(ctx context.Context, p *bookingv1.Provider) error {
	now := a.now()
	to := now.Add(calendar.Horizon(p) + 24*time.Hour)
	bs, err := a.store.ProviderBookings(ctx, a.providerID, now.Add(-a.cfg.LookBack), to)
	if err != nil {
		return fmt.Errorf("load bookings of provider %q: %w", a.providerID, err)
	}
	a.provider = p
	a.loadedTo = to
	a.bookings = make(map[string]*held, len(bs))
	a.busy = calendar.NewBusy()
	for _, b := range bs {
		if b.GetProviderId() == a.providerID {
			a.upsert(b, true)
		}
	}
	for _, o := range a.ops {
		for i, iv := range o.reserved {
			a.busy.Add(reservationID(o.id, i), iv)
		}
	}
	return nil
}

// reload re-reads the calendar from the store after the store contradicted memory
// (or on a RefreshRequest); on failure memory stays as it was.
func (a *calendarActor) reload(reason string) error {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.RequestTimeout)
	defer cancel()
	err := a.store.LinearizableRead(ctx)
	var p *bookingv1.Provider
	if err == nil {
		p, err = a.store.Provider(ctx, a.providerID)
	}
	if err == nil && p != nil {
		err = a.loadBookings(ctx, p)
	}
	a.stale = err != nil
	if err != nil {
		a.log.WarnContext(a.lctx(), "calendar reload failed", slog.String("reason", reason), slog.Any("error", err))
		return err
	}
	a.log.InfoContext(a.lctx(), "calendar reloaded from the store", slog.String("reason", reason), slog.Int("bookings", len(a.bookings)))
	return nil
}

// refresh answers a RefreshRequest: memory is reloaded from the store, where
// the FSM may have cancelled bookings itself (a consent withdrawal, an
// erasure, a series cancelled elsewhere).
func (a *calendarActor) refresh() *calendarv1.Reply {
	if err := a.reload("refresh requested"); err != nil {
		return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "reload: %v", err)
	}
	return &calendarv1.Reply{Provider: a.provider}
}

// upsert records b in memory unless memory holds a newer version; a booking that
// is not confirmed leaves memory.
func (a *calendarActor) upsert(b *bookingv1.Booking, loaded bool) {
	id := b.GetId()
	if h := a.bookings[id]; h != nil && b.GetVersion() != 0 && h.b.GetVersion() > b.GetVersion() {
		return
	}
	if b.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED {
		delete(a.bookings, id)
		a.busy.Remove(bookingKey(id))
		return
	}
	a.bookings[id] = &held{b: b, loaded: loaded}
	a.busy.Add(bookingKey(id), calendar.BookingInterval(b))
}

// loadFor makes sure memory holds the bookings that can overlap a booking of
// svc offered over days local dates from from at now: those up to the end of
// its span at the earlier of the last date's end and the horizon, as the store
// has them. Memory holds them up to loadedTo; past it (a horizon extended
// while the store could not be read, or a day of activity moving the horizon)
// or after a reload failed (the store contradicted memory) the calendar is
// reloaded, and if that fails the answer would be a guess: the error says so.
func (a *calendarActor) loadFor(svc *bookingv1.Service, from calendar.Date, days int, now time.Time) error {
	if a.stale {
		return a.reload("a reload failed before")
	}
	covered := func(need time.Time) bool {
		_, blockedUntil := calendar.Span(svc, need)
		return !blockedUntil.After(a.loadedTo)
	}
	if covered(now.Add(calendar.Horizon(a.provider))) { // usual: a load reaches a day past the horizon
		return nil
	}
	if loc, err := calendar.Location(a.provider); err == nil && covered(time.Date(from.Year, from.Month, from.Day+days, 0, 0, 0, 0, loc)) {
		return nil // the dates asked end before the bookings loaded do
	}
	return a.reload("the horizon reaches past the bookings loaded")
}

// setProvider replaces the in-memory provider; bookings stay. A longer horizon
// loads the bookings it brings into reach.
func (a *calendarActor) setProvider(p *bookingv1.Provider) {
	a.provider = p
	if to := a.now().Add(calendar.Horizon(p) + 24*time.Hour); to.After(a.loadedTo) {
		a.reload("horizon extended")
	}
}
