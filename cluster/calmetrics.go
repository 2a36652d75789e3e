package cluster

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/edge"
	"github.com/barberpro/edge/edge/ids"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
)

// calendarMetrics decorates the edge's Calendars with the metrics the edge's
// HTTP metrics cannot have: by the provider's city and vertical. Every call
// is counted in barberpro_calendar_requests_total{op, city, vertical, outcome}
// and timed in barberpro_calendar_request_duration_seconds{op, city, vertical}.
// city is the provider's home city, from the provider or booking id ("unknown"
// for an id without one); vertical is the provider's, learned from the
// answers (a booking, a provider) or else read once from the local replica
// (lookup), and remembered by provider id; "unknown" if neither has it.
// outcome is "ok" or the actors sentinel's name (outcomeOf).
type calendarMetrics struct {
	edge.Calendars
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// verticals maps a provider id to its vertical (a provider's vertical never
	// changes). It holds one short entry per provider this node has served.
	verticals sync.Map
	// lookup reads a provider's vertical from the local replica ("" if it
	// cannot); nil: none.
	lookup func(providerID string) string
}

// instrumentCalendars wraps c with calendarMetrics registered on reg; lookup
// (may be nil) reads a provider's vertical when no answer told it.
func instrumentCalendars(c edge.Calendars, reg prometheus.Registerer, lookup func(providerID string) string) edge.Calendars {
	m := &calendarMetrics{
		Calendars: c,
		lookup:    lookup,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "barberpro", Subsystem: "calendar", Name: "requests_total",
			Help: "Calendar actor requests this node made, by op, provider city and vertical, and outcome (ok or the refusal).",
		}, []string{"op", "city", "vertical", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "barberpro", Subsystem: "calendar", Name: "request_duration_seconds",
			Help:    "Time for a calendar actor request (a write includes its Raft commit), by op, provider city and vertical.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .15, .25, .5, 1, 2.5, 5, 10},
		}, []string{"op", "city", "vertical"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// Book implements edge.Calendars.
func (m *calendarMetrics) Book(ctx context.Context, req *calendarv1.BookRequest) (*bookingv1.Booking, error) {
	start := time.Now()
	b, err := m.Calendars.Book(ctx, req)
	m.observe("book", req.GetProviderId(), req.GetBookingId(), b.GetVertical(), start, err)
	return b, err
}

// Cancel implements edge.Calendars.
func (m *calendarMetrics) Cancel(ctx context.Context, req *calendarv1.CancelRequest) (*bookingv1.Booking, error) {
	start := time.Now()
	b, err := m.Calendars.Cancel(ctx, req)
	m.observe("cancel", req.GetProviderId(), req.GetBookingId(), b.GetVertical(), start, err)
	return b, err
}

// Reschedule implements edge.Calendars.
func (m *calendarMetrics) Reschedule(ctx context.Context, req *calendarv1.RescheduleRequest) (*bookingv1.Booking, error) {
	start := time.Now()
	b, err := m.Calendars.Reschedule(ctx, req)
	m.observe("reschedule", req.GetProviderId(), req.GetBookingId(), b.GetVertical(), start, err)
	return b, err
}

// Availability implements edge.Calendars.
func (m *calendarMetrics) Availability(ctx context.Context, req *calendarv1.AvailabilityRequest) (*calendarv1.Reply, error) {
	start := time.Now()
	r, err := m.Calendars.Availability(ctx, req)
	m.observe("availability", req.GetProviderId(), "", "", start, err)
	return r, err
}

// UpdateProvider implements edge.Calendars.
func (m *calendarMetrics) UpdateProvider(ctx context.Context, req *calendarv1.UpdateProviderRequest) (*bookingv1.Provider, error) {
	start := time.Now()
	p, err := m.Calendars.UpdateProvider(ctx, req)
	m.observe("update_provider", req.GetProvider().GetId(), "", p.GetVertical(), start, err)
	return p, err
}

func (m *calendarMetrics) observe(op, providerID, bookingID, vertical string, start time.Time, err error) {
	d := time.Since(start)
	known, seen := m.verticals.Load(providerID)
	switch {
	case vertical != "" && providerID != "":
		// Stored only when new: a Store on every request allocates and takes
		// the map's lock (a provider's vertical never changes).
		if !seen || known != any(vertical) {
			m.verticals.Store(providerID, vertical)
		}
	case seen:
		vertical = known.(string)
	case providerID != "" && m.lookup != nil:
		if vertical = m.lookup(providerID); vertical != "" {
			m.verticals.Store(providerID, vertical)
		}
	}
	if vertical == "" {
		vertical = "unknown"
	}
	city, ok := ids.CityOf(providerID)
	if !ok {
		if city, ok = ids.CityOf(bookingID); !ok {
			city = "unknown"
		}
	}
	m.requests.WithLabelValues(op, city, vertical, outcomeOf(err)).Inc()
	m.latency.WithLabelValues(op, city, vertical).Observe(d.Seconds())
}

// storeVertical returns a lookup for instrumentCalendars that reads the
// provider from s, the local replica (the calendars are only called for
// providers of this node's jurisdiction).
func storeVertical(s *storage.Store) func(string) string {
	return func(providerID string) string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p, err := s.Provider(ctx, providerID)
		if err != nil {
			return ""
		}
		return p.GetVertical()
	}
}

// outcomeOf names err for the outcome label: "ok", the actors sentinel it
// wraps, "timeout" or "error".
func outcomeOf(err error) string {
	for _, o := range []struct {
		err  error
		name string
	}{
		{actors.ErrSlotTaken, "slot_taken"},
		{actors.ErrInvalid, "invalid"},
		{actors.ErrNotFound, "not_found"},
		{actors.ErrIdempotencyKeyReused, "idempotency_key_reused"},
		{actors.ErrInvalidTransition, "invalid_transition"},
		{actors.ErrUnavailable, "unavailable"},
		{actors.ErrStorageUnavailable, "storage_unavailable"},
		{context.DeadlineExceeded, "timeout"},
		{context.Canceled, "canceled"},
	} {
		if errors.Is(err, o.err) {
			return o.name
		}
	}
	if err != nil {
		return "error"
	}
	return "ok"
}
