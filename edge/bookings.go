package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/barberpro/edge/edge/ids"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
)

// createBookingIn is the body of POST /v1/bookings.
type createBookingIn struct {
	ProviderID string `json:"provider_id"`
	ServiceID  string `json:"service_id"`
	ClientID   string `json:"client_id"`
	Start      string `json:"start"`
}

// rescheduleIn is the body of POST /v1/bookings/{id}/reschedule.
type rescheduleIn struct {
	Start string `json:"start"`
}

// createBooking handles POST /v1/bookings.
func (s *Server) createBooking(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var in createBookingIn
	if _, err := s.decodeBody(w, r, &in, false); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{
		{"provider_id", in.ProviderID}, {"service_id", in.ServiceID}, {"client_id", in.ClientID},
	} {
		if err := checkID(f.name, f.v); err != nil {
			return err
		}
	}
	if !owns(ctx, in.ClientID, in.ProviderID) {
		return errForbidden("a client books only for itself (client_id), a provider only in its own calendar (provider_id)")
	}
	start, err := parseInstant("start", in.Start)
	if err != nil {
		return err
	}
	// The booking id carries its provider's city, read from the provider id (or,
	// for a provider id without one, from the provider).
	var p *bookingv1.Provider
	city, routed := ids.CityOf(in.ProviderID)
	if !routed {
		if p, err = s.readProvider(ctx, in.ProviderID); err != nil {
			return err
		}
		city = p.GetCity()
	}
	bookingID := s.cfg.NewID("bkg")
	if routed || ids.ValidCity(city) {
		if bookingID, err = s.newRoutedID(ids.Booking, city); err != nil {
			return err
		}
	}
	idem, err := idempotencyOf(r, &in, bookingID)
	if err != nil {
		return err
	}
	if done, err := s.replayBooking(ctx, w, idem, http.StatusCreated); done || err != nil {
		return err
	}
	if p == nil {
		if p, err = s.readProvider(ctx, in.ProviderID); err != nil {
			return err
		}
	}
	if !slices.ContainsFunc(p.GetServices(), func(sv *bookingv1.Service) bool { return sv.GetId() == in.ServiceID }) {
		return invalid("service_id %q is not a service of provider %s", in.ServiceID, in.ProviderID)
	}
	b, err := s.cfg.Calendars.Book(ctx, &calendarv1.BookRequest{
		ProviderId:     in.ProviderID,
		ServiceId:      in.ServiceID,
		ClientId:       in.ClientID,
		StartMs:        start.UnixMilli(),
		BookingId:      bookingID,
		IdempotencyKey: idem.key,
		RequestHash:    idem.hash,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/bookings/"+b.GetId())
	return s.writeBooking(ctx, w, http.StatusCreated, b, p)
}

// getBooking handles GET /v1/bookings/{id}: a linearizable read.
func (s *Server) getBooking(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := r.PathValue("id")
	if checkID("id", id) != nil {
		return notFound("booking %q does not exist", id)
	}
	if err := s.cfg.Store.LinearizableRead(ctx); err != nil {
		return err
	}
	b, err := s.cfg.Store.Booking(ctx, id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && !owns(ctx, b.GetClientId(), b.GetProviderId())) {
		return notFound("booking %q does not exist", id)
	}
	if err != nil {
		return err
	}
	return s.writeBooking(ctx, w, http.StatusOK, b, nil)
}

// cancelBooking handles POST /v1/bookings/{id}/cancel. Its body is optional and,
// when present, must be the empty object {}.
func (s *Server) cancelBooking(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var in struct{}
	if _, err := s.decodeBody(w, r, &in, true); err != nil {
		return err
	}
	b, err := s.readOwnBooking(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	out, err := s.cfg.Calendars.Cancel(ctx, &calendarv1.CancelRequest{ProviderId: b.GetProviderId(), BookingId: b.GetId()})
	if err != nil {
		return err
	}
	return s.writeBooking(ctx, w, http.StatusOK, out, nil)
}

// rescheduleBooking handles POST /v1/bookings/{id}/reschedule.
func (s *Server) rescheduleBooking(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var in rescheduleIn
	if _, err := s.decodeBody(w, r, &in, false); err != nil {
		return err
	}
	start, err := parseInstant("start", in.Start)
	if err != nil {
		return err
	}
	b, err := s.readOwnBooking(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	idem, err := idempotencyOf(r, &in, s.cfg.NewID("rsc"))
	if err != nil {
		return err
	}
	if done, err := s.replayBooking(ctx, w, idem, http.StatusOK); done || err != nil {
		return err
	}
	out, err := s.cfg.Calendars.Reschedule(ctx, &calendarv1.RescheduleRequest{
		ProviderId:     b.GetProviderId(),
		BookingId:      b.GetId(),
		StartMs:        start.UnixMilli(),
		IdempotencyKey: idem.key,
		RequestHash:    idem.hash,
	})
	if err != nil {
		return err
	}
	return s.writeBooking(ctx, w, http.StatusOK, out, nil)
}

// clientBookings handles GET /v1/clients/{client_id}/bookings: newest first, a
// linearizable read.
func (s *Server) clientBookings(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	clientID := r.PathValue("client_id")
	if err := checkID("client_id", clientID); err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := queryLimit(q)
	if err != nil {
		return err
	}
	page := storage.Page{After: q.Get("cursor"), Limit: limit}
	if s.fansOut(r) {
		return s.clientBookingsEverywhere(w, r, clientID, page)
	}
	items, out, next, err := s.localClientBookings(ctx, clientID, page)
	if err != nil {
		return err
	}
	if relayed(r) {
		// A node gathering every jurisdiction's list merges by creation instant.
		w.Header().Set(CreatedMsHeader, formatCreatedMs(items))
	}
	writeJSON(w, http.StatusOK, listOut[bookingOut]{Items: out, NextCursor: next})
	return nil
}

// readBooking reads a booking from the local replica, catching up
// (LinearizableRead) and reading again when it is not there.
func (s *Server) readBooking(ctx context.Context, id string) (*bookingv1.Booking, error) {
	if checkID("id", id) != nil {
		return nil, notFound("booking %q does not exist", id)
	}
	b, err := s.cfg.Store.Booking(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		// Not here yet, or not at all: only the leader's read index can say.
		// A replica that cannot reach it (no leader, cut off) must not answer
		// 404 for a booking it has simply not received.
		if lerr := s.cfg.Store.LinearizableRead(ctx); lerr != nil {
			return nil, lerr
		}
		b, err = s.cfg.Store.Booking(ctx, id)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("booking %q does not exist", id)
	}
	return b, err
}

// readOwnBooking is readBooking for a booking the caller may act on (owns); one
// it may not is answered 404, as a missing one: the answer reveals nothing of it.
func (s *Server) readOwnBooking(ctx context.Context, id string) (*bookingv1.Booking, error) {
	b, err := s.readBooking(ctx, id)
	if err != nil {
		return nil, err
	}
	if !owns(ctx, b.GetClientId(), b.GetProviderId()) {
		return nil, notFound("booking %q does not exist", id)
	}
	return b, nil
}

// writeBooking answers b with its times in its provider's zone; p, when not nil,
// is that provider.
func (s *Server) writeBooking(ctx context.Context, w http.ResponseWriter, status int, b *bookingv1.Booking, p *bookingv1.Provider) error {
	if b == nil {
		return fmt.Errorf("edge: the calendar answered no booking")
	}
	var loc *time.Location
	if p != nil && p.GetId() == b.GetProviderId() {
		loc = s.zone(p.GetTimezone())
	} else {
		loc = s.providerZone(ctx, b.GetProviderId())
	}
	writeJSON(w, status, formatBooking(b, loc))
	return nil
}

// providerZone is the time zone of a provider; UTC if the provider cannot be read
// (its bookings must still be answered).
func (s *Server) providerZone(ctx context.Context, providerID string) *time.Location {
	p, err := s.cfg.Store.Provider(ctx, providerID)
	if err != nil {
		// No ids in logs: the error may name the provider; log its kind only.
		s.log.WarnContext(ctx, "edge: provider of a booking unreadable, answering in UTC", "reason", errorKind(err))
		return time.UTC
	}
	return s.zone(p.GetTimezone())
}

// replayBooking answers a request whose Idempotency-Key was seen before with
// the same body: the booking it made, as it is now, with the route's status.
// done reports whether it answered.
func (s *Server) replayBooking(ctx context.Context, w http.ResponseWriter, idem idempotency, status int) (done bool, err error) {
	id, err := s.replayed(ctx, idem)
	if err != nil || id == "" {
		return false, err
	}
	b, err := s.readBooking(ctx, id)
	if err != nil {
		return false, err
	}
	markReplayed(w)
	return true, s.writeBooking(ctx, w, status, b, nil)
}
