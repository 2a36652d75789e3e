package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/barberpro/edge/edge/ids"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/topology"
)

// createBookingIn is the body of POST /v1/bookings.
type createBookingIn struct {
	ProviderID string `json:"provider_id"`
	ServiceID  string `json:"service_id"`
	ClientID   string `json:"client_id"`
	Start      string `json:"start"`
}

func (in *createBookingIn) providerOf() string { return in.ProviderID }

// rescheduleIn is the body of POST /v1/bookings/{id}/reschedule.
type rescheduleIn struct {
	Start string `json:"start"`
}

// checkBookingIn checks the ids of a booking (or series) body and that the
// caller may book for that client with that provider, and parses its start.
// Every missing or invalid field is reported (fieldErrors), with the failures
// of the body's other fields (more: a series' every and count), then
// ownership.
func checkBookingIn(ctx context.Context, providerID, serviceID, clientID, start string, more ...error) (time.Time, error) {
	var fe fieldErrors
	for _, f := range []struct{ name, v string }{
		{"provider_id", providerID}, {"service_id", serviceID}, {"client_id", clientID},
	} {
		fe.add(checkID(f.name, f.v))
	}
	var at time.Time
	if start == "" {
		fe.add(invalid("start is required"))
	} else {
		var err error
		at, err = parseInstant("start", start)
		fe.add(err)
	}
	for _, err := range more {
		fe.add(err)
	}
	if err := fe.err(); err != nil {
		return time.Time{}, err
	}
	if !owns(ctx, clientID, providerID) {
		return time.Time{}, errForbidden("a client books only for itself (client_id), a provider only in its own calendar (provider_id)")
	}
	return at, nil
}

// createBooking handles POST /v1/bookings.
func (s *Server) createBooking(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	in, err := decodedBody[createBookingIn](s, w, r)
	if err != nil {
		return err
	}
	start, err := checkBookingIn(ctx, in.ProviderID, in.ServiceID, in.ClientID, in.Start)
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
	var bookingID string
	if routed || ids.ValidCity(city) {
		if bookingID, err = s.newRoutedID(ids.Booking, city); err != nil {
			return err
		}
	} else {
		bookingID = s.cfg.NewID("bkg")
	}
	idem, err := idempotencyOf(r, in, bookingID)
	if err != nil {
		return err
	}
	if done, err := s.replayBooking(ctx, w, idem, http.StatusCreated); done || err != nil {
		return err
	}
	if p == nil {
		if p, err = s.providerFacts(ctx, in.ProviderID, in.ServiceID); err != nil {
			return err
		}
	}
	if !offers(p, in.ServiceID) {
		return invalid("service_id %q is not a service of provider %s", in.ServiceID, in.ProviderID)
	}
	v := s.vertical(p.GetVertical())
	if v.LicenseRequired && p.GetVerifiedAtMs() == 0 {
		// The precheck reads the verification, which changes: from the store.
		if p, err = s.readProvider(ctx, in.ProviderID); err != nil {
			return err
		}
		if p.GetVerifiedAtMs() != 0 {
			s.providers.put(p) // verified once, for good: later bookings read it no more
		}
	}
	if err := s.checkResidency("a booking of provider "+p.GetId(), v, p.GetJurisdiction()); err != nil {
		return err
	}
	if err := s.precheckBooking(ctx, v, p, in.ClientID, "booking.create", bookingID); err != nil {
		return err
	}
	b, err := s.cfg.Calendars.Book(ctx, &calendarv1.BookRequest{
		ProviderId:      in.ProviderID,
		ServiceId:       in.ServiceID,
		ClientId:        in.ClientID,
		StartMs:         start.UnixMilli(),
		BookingId:       bookingID,
		IdempotencyKey:  idem.key,
		RequestHash:     idem.hash,
		ConsentPurpose:  v.ConsentPurpose(),
		RequireVerified: v.LicenseRequired,
		SessionStatus:   sessionStart(v),
		Audit:           auditRecords(ctx, v.Audit, "booking.create", bookingID),
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
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("booking %q does not exist", id)
	}
	if err != nil {
		return err
	}
	v := s.vertical(b.GetVertical())
	if !owns(ctx, b.GetClientId(), b.GetProviderId()) {
		return s.refuse(ctx, v.Audit, "booking.read", id, notFound("booking %q does not exist", id))
	}
	if err := s.checkBookingResidency(ctx, b, v); err != nil {
		return err
	}
	if err := s.appendAudit(ctx, v.Audit, auditRead, "booking.read", id, ""); err != nil {
		return err
	}
	s.cacheFor(w, b.GetVertical())
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
	b, err := s.readOwnBooking(ctx, r.PathValue("id"), "booking.cancel")
	if err != nil {
		return err
	}
	v := s.vertical(b.GetVertical())
	out, err := s.cfg.Calendars.Cancel(ctx, &calendarv1.CancelRequest{ProviderId: b.GetProviderId(), BookingId: b.GetId(),
		Audit: auditRecords(ctx, v.Audit, "booking.cancel", b.GetId())})
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
	b, err := s.readOwnBooking(ctx, r.PathValue("id"), "booking.reschedule")
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
	// A booking moved is a booking made at its new time: the vertical's rules
	// (a verified provider, an active consent) hold for it as for a new one.
	v := s.vertical(b.GetVertical())
	if v.ConsentPurpose() != "" || v.LicenseRequired {
		p, err := s.readProvider(ctx, b.GetProviderId())
		if err != nil {
			return err
		}
		if err := s.precheckBooking(ctx, v, p, b.GetClientId(), "booking.reschedule", b.GetId()); err != nil {
			return err
		}
	}
	out, err := s.cfg.Calendars.Reschedule(ctx, &calendarv1.RescheduleRequest{
		ProviderId:     b.GetProviderId(),
		BookingId:      b.GetId(),
		StartMs:        start.UnixMilli(),
		IdempotencyKey: idem.key,
		RequestHash:    idem.hash,
		Audit:          auditRecords(ctx, v.Audit, "booking.reschedule", b.GetId()),
		ConsentPurpose: v.ConsentPurpose(),
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
	s.cacheFor(w, bookingVerticals(items, s.cfg.Topology.VerticalNames())...)
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
// it may not is answered 404, as a missing one: the answer reveals nothing of it
// (the refusal is audited as action when the booking's vertical audits
// refusals). A home-resident booking of another jurisdiction is refused.
func (s *Server) readOwnBooking(ctx context.Context, id, action string) (*bookingv1.Booking, error) {
	b, err := s.readBooking(ctx, id)
	if err != nil {
		return nil, err
	}
	v := s.vertical(b.GetVertical())
	if !owns(ctx, b.GetClientId(), b.GetProviderId()) {
		return nil, s.refuse(ctx, v.Audit, action, id, notFound("booking %q does not exist", id))
	}
	if err := s.checkBookingResidency(ctx, b, v); err != nil {
		return nil, err
	}
	return b, nil
}

// checkBookingResidency refuses a booking of a home-resident vertical whose
// provider is of another jurisdiction than this node's.
func (s *Server) checkBookingResidency(ctx context.Context, b *bookingv1.Booking, v topology.Vertical) error {
	if v.Residency != topology.ResidencyHome {
		return nil
	}
	p, err := s.cfg.Store.Provider(ctx, b.GetProviderId())
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil // the provider is not here either: nothing is held abroad
		}
		return err
	}
	return s.checkResidency("booking "+b.GetId(), v, p.GetJurisdiction())
}

// sessionStart is the session status of a new booking of v: scheduled for
// verticals whose bookings are sessions.
func sessionStart(v topology.Vertical) bookingv1.SessionStatus {
	if v.Sessions {
		return bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED
	}
	return bookingv1.SessionStatus_SESSION_STATUS_UNSPECIFIED
}

// precheckBooking refuses, before any slot is looked at, a booking (or series,
// action) of client with provider p of vertical v that the FSM would refuse for
// the vertical's rules: no active consent of the client for the vertical's
// purpose in the provider's jurisdiction (422 consent_required), a provider
// whose licence is not verified (422 provider_unverified). Consents are read
// from this node's store (the provider's jurisdiction's: the request was
// relayed home); one not found locally is looked for again after a
// linearizable read. The FSM checks both again at the entry time. A refusal is
// audited when v audits refusals. The provider's verification is checked
// first: an unverified provider (who may book nothing) must not learn from the
// answer which clients hold a consent.
func (s *Server) precheckBooking(ctx context.Context, v topology.Vertical, p *bookingv1.Provider, clientID, action, object string) error {
	var refusal *apiError
	if v.LicenseRequired && p.GetVerifiedAtMs() == 0 {
		refusal = errProviderUnverified()
	}
	if purpose := v.ConsentPurpose(); refusal == nil && purpose != "" {
		ok, err := s.hasConsent(ctx, clientID, purpose, p.GetJurisdiction())
		if err != nil {
			return err
		}
		if !ok {
			refusal = errConsentRequired(purpose, p.GetJurisdiction())
		}
	}
	if refusal == nil {
		return nil
	}
	if err := s.appendAudit(ctx, v.Audit, auditRefusal, action, object, refusal.code); err != nil {
		return err
	}
	return refusal
}

// hasConsent reports whether the client has an active consent for purpose in
// jurisdiction j in this node's store.
func (s *Server) hasConsent(ctx context.Context, clientID, purpose, j string) (bool, error) {
	now := s.cfg.Clock().UnixMilli()
	for attempt := 0; attempt < 2; attempt++ {
		if attempt == 1 {
			if err := s.cfg.Store.LinearizableRead(ctx); err != nil {
				return false, err
			}
		}
		cs, err := s.cfg.Store.ClientConsents(ctx, clientID)
		if err != nil {
			return false, err
		}
		for _, c := range cs {
			if c.GetPurpose() == purpose && c.GetJurisdiction() == j && consentStatus(c, now) == consentActive {
				return true, nil
			}
		}
	}
	return false, nil
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
	o := formatBooking(b, loc)
	bp := pooledBody()
	body := appendBooking(*bp, &o)
	writeBody(w, status, "application/json", body)
	putBody(bp, body)
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
// the same body: the first answer (status, body, Location), as api.md's "the
// same result" means it, not the booking as it is now (a booking cancelled
// since replays as the confirmed booking its creation answered). The booking
// is still read, so a booking gone or erased since answers as its read does.
// done reports whether it answered.
func (s *Server) replayBooking(ctx context.Context, w http.ResponseWriter, idem idempotency, status int) (done bool, err error) {
	rec, err := s.replayedRecord(ctx, idem)
	if err != nil || rec == nil {
		return false, err
	}
	b, err := s.readBooking(ctx, rec.GetResourceId())
	if err != nil {
		return false, err
	}
	// The replay answers the whole booking: a read of it, audited as one.
	if err := s.appendAudit(ctx, s.vertical(b.GetVertical()).Audit, auditRead, "booking.read", b.GetId(), ""); err != nil {
		return false, err
	}
	if first := firstAnswer(rec).GetBooking(); first != nil && first.GetId() == b.GetId() {
		b = first
	}
	markReplayed(w)
	if status == http.StatusCreated {
		w.Header().Set("Location", "/v1/bookings/"+b.GetId())
	}
	return true, s.writeBooking(ctx, w, status, b, nil)
}

// bookingVerticals are the verticals whose cache_ttl bounds a list of bookings:
// those of its items, or every vertical for an empty list.
func bookingVerticals(items []*bookingv1.Booking, all []string) []string {
	if len(items) == 0 {
		return all
	}
	vs := make([]string, 0, len(items))
	for _, b := range items {
		vs = append(vs, b.GetVertical())
	}
	return vs
}
