package edge

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/barberpro/edge/edge/ids"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
)

// Series (psychology.md, "Series", every vertical): count occurrences every 1 or
// 2 weeks at the same local wall time, all booked or none. A series id
// (srs_<city>_...) carries its provider's city, as its bookings' ids do.

// Bounds of a series.
const (
	minSeriesCount = 2
	maxSeriesCount = 52
)

// seriesEvery maps the API's "every" to days.
var seriesEvery = map[string]int32{"1w": 7, "2w": 14}

// createSeriesIn is the body of POST /v1/bookings/series.
type createSeriesIn struct {
	ProviderID string `json:"provider_id"`
	ServiceID  string `json:"service_id"`
	ClientID   string `json:"client_id"`
	Start      string `json:"start"`
	Every      string `json:"every"`
	Count      int    `json:"count"`
}

func (in *createSeriesIn) providerOf() string { return in.ProviderID }

// cancelSeriesIn is the optional body of POST /v1/bookings/series/{id}/cancel.
type cancelSeriesIn struct {
	From string `json:"from,omitempty"`
}

// seriesOut is a series in an answer: its occurrences, in order.
type seriesOut struct {
	ID         string       `json:"id"`
	ProviderID string       `json:"provider_id"`
	ServiceID  string       `json:"service_id"`
	ClientID   string       `json:"client_id"`
	Every      string       `json:"every"`
	Items      []bookingOut `json:"items"`
}

// everyName is the API's name of a period of days.
func everyName(days int32) string {
	for k, v := range seriesEvery {
		if v == days {
			return k
		}
	}
	return ""
}

// createSeries handles POST /v1/bookings/series.
func (s *Server) createSeries(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	in, err := decodedBody[createSeriesIn](s, w, r)
	if err != nil {
		return err
	}
	var everyErr, countErr error
	every, ok := seriesEvery[in.Every]
	if !ok {
		everyErr = invalid("every %q must be \"1w\" or \"2w\"", in.Every)
	}
	if in.Count < minSeriesCount || in.Count > maxSeriesCount {
		countErr = invalid("count %d must be between %d and %d", in.Count, minSeriesCount, maxSeriesCount)
	}
	start, err := checkBookingIn(ctx, in.ProviderID, in.ServiceID, in.ClientID, in.Start, everyErr, countErr)
	if err != nil {
		return err
	}
	p, err := s.readProvider(ctx, in.ProviderID)
	if err != nil {
		return err
	}
	city := p.GetCity()
	if c, ok := ids.CityOf(in.ProviderID); ok {
		city = c
	}
	seriesID, err := s.newRoutedID(ids.Series, city)
	if err != nil {
		return err
	}
	idem, err := idempotencyOf(r, in, seriesID)
	if err != nil {
		return err
	}
	if rec, err := s.replayedRecord(ctx, idem); err != nil {
		return err
	} else if rec != nil {
		sr, err := s.readSeries(ctx, rec.GetResourceId())
		if err != nil {
			return err
		}
		// The replay answers the whole series: a read of it, audited as one.
		if err := s.appendAudit(ctx, s.vertical(p.GetVertical()).Audit, auditRead, "series.read", sr.GetId(), ""); err != nil {
			return err
		}
		// The first answer (api.md's "the same result"): the series and its
		// occurrences as they were booked, when the record keeps them.
		var known []*bookingv1.Booking
		if first := firstAnswer(rec); first.GetSeries().GetId() == sr.GetId() {
			sr, known = first.GetSeries(), first.GetBookings()
		}
		markReplayed(w)
		w.Header().Set("Location", "/v1/bookings/series/"+sr.GetId())
		return s.writeSeries(ctx, w, http.StatusCreated, sr, known, p)
	}
	if !slices.ContainsFunc(p.GetServices(), func(sv *bookingv1.Service) bool { return sv.GetId() == in.ServiceID }) {
		return invalid("service_id %q is not a service of provider %s", in.ServiceID, in.ProviderID)
	}
	v := s.vertical(p.GetVertical())
	if err := s.checkResidency("a series of provider "+p.GetId(), v, p.GetJurisdiction()); err != nil {
		return err
	}
	if err := s.precheckBooking(ctx, v, p, in.ClientID, "series.create", seriesID); err != nil {
		return err
	}
	bookingIDs := make([]string, in.Count)
	for i := range bookingIDs {
		if bookingIDs[i], err = s.newRoutedID(ids.Booking, city); err != nil {
			return err
		}
	}
	reply, err := s.cfg.Calendars.BookSeries(ctx, &calendarv1.BookSeriesRequest{
		ProviderId:      in.ProviderID,
		ServiceId:       in.ServiceID,
		ClientId:        in.ClientID,
		StartMs:         start.UnixMilli(),
		EveryDays:       every,
		Count:           int32(in.Count),
		SeriesId:        seriesID,
		BookingIds:      bookingIDs,
		IdempotencyKey:  idem.key,
		RequestHash:     idem.hash,
		ConsentPurpose:  v.ConsentPurpose(),
		RequireVerified: v.LicenseRequired,
		SessionStatus:   sessionStart(v),
		Audit:           auditRecords(ctx, v.Audit, "series.create", seriesID),
	})
	if err := s.seriesError(reply, err, p); err != nil {
		return err
	}
	sr := reply.GetSeries()
	if sr == nil {
		return errors.New("edge: the calendar answered no series")
	}
	w.Header().Set("Location", "/v1/bookings/series/"+sr.GetId())
	return s.writeSeries(ctx, w, http.StatusCreated, sr, reply.GetBookings(), p)
}

// seriesError is the answer to a failed series request: a slot conflict names
// the colliding starts (in the provider's zone), and an actor's error code its
// problem.
func (s *Server) seriesError(reply *calendarv1.Reply, err error, p *bookingv1.Provider) error {
	if len(reply.GetConflicts()) > 0 {
		loc := s.zone(p.GetTimezone())
		starts := make([]string, 0, len(reply.GetConflicts()))
		for _, ms := range reply.GetConflicts() {
			starts = append(starts, formatInstant(ms, loc))
		}
		return &seriesConflict{starts: starts}
	}
	if err != nil {
		if rerr := replyError(reply.GetError(), reply.GetDetail()); rerr != nil {
			return rerr
		}
		return err
	}
	return replyError(reply.GetError(), reply.GetDetail())
}

// readSeries reads a series from the local replica, catching up and reading
// again when it is not there.
func (s *Server) readSeries(ctx context.Context, id string) (*bookingv1.Series, error) {
	if checkID("id", id) != nil {
		return nil, notFound("series %q does not exist", id)
	}
	sr, err := s.cfg.Store.Series(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		if lerr := s.cfg.Store.LinearizableRead(ctx); lerr != nil {
			return nil, lerr
		}
		sr, err = s.cfg.Store.Series(ctx, id)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, notFound("series %q does not exist", id)
	}
	return sr, err
}

// writeSeries answers sr with its occurrences: those of known (an actor's
// answer) as they are, the others read from the store.
func (s *Server) writeSeries(ctx context.Context, w http.ResponseWriter, status int, sr *bookingv1.Series, known []*bookingv1.Booking, p *bookingv1.Provider) error {
	byID := make(map[string]*bookingv1.Booking, len(known))
	for _, b := range known {
		byID[b.GetId()] = b
	}
	loc := s.zone(p.GetTimezone())
	out := seriesOut{ID: sr.GetId(), ProviderID: sr.GetProviderId(), ServiceID: sr.GetServiceId(),
		ClientID: sr.GetClientId(), Every: everyName(sr.GetEveryDays()), Items: make([]bookingOut, 0, len(sr.GetBookingIds()))}
	for _, id := range sr.GetBookingIds() {
		b, ok := byID[id]
		if !ok {
			var err error
			if b, err = s.readBooking(ctx, id); err != nil {
				return err
			}
		}
		out.Items = append(out.Items, formatBooking(b, loc))
	}
	writeJSON(w, status, out)
	return nil
}

// cancelSeries handles POST /v1/bookings/series/{id}/cancel: the occurrences
// starting at or after from (default now) are cancelled (series_cancelled).
func (s *Server) cancelSeries(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var in cancelSeriesIn
	if _, err := s.decodeBody(w, r, &in, true); err != nil {
		return err
	}
	var fromMs int64
	if in.From != "" {
		from, err := parseInstant("from", in.From)
		if err != nil {
			return err
		}
		fromMs = from.UnixMilli()
	}
	id := r.PathValue("id")
	sr, err := s.readSeries(ctx, id)
	if err != nil {
		return err
	}
	p, err := s.readProvider(ctx, sr.GetProviderId())
	if err != nil {
		return err
	}
	v := s.vertical(p.GetVertical())
	if !owns(ctx, sr.GetClientId(), sr.GetProviderId()) {
		return s.refuse(ctx, v.Audit, "series.cancel", id, notFound("series %q does not exist", id))
	}
	if err := s.checkResidency("series "+id, v, p.GetJurisdiction()); err != nil {
		return err
	}
	reply, err := s.cfg.Calendars.CancelSeries(ctx, &calendarv1.CancelSeriesRequest{
		ProviderId: sr.GetProviderId(),
		SeriesId:   id,
		FromMs:     fromMs,
		Audit:      auditRecords(ctx, v.Audit, "series.cancel", id),
	})
	if err := s.seriesError(reply, err, p); err != nil {
		return err
	}
	if reply.GetSeries() != nil {
		sr = reply.GetSeries()
	}
	return s.writeSeries(ctx, w, http.StatusOK, sr, reply.GetBookings(), p)
}
