package actors

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"google.golang.org/protobuf/proto"
)

// Calendars is the front door to the providers' calendar actors: it routes each
// request to the provider's activation (activating it on demand) and turns the
// Reply into a value or an error wrapping one of the package's sentinels. It is
// safe for concurrent use. The records it answers (bookings, providers, the
// Reply) may be shared with the calendar actor's memory and other callers:
// read them, never modify them (proto.Clone one to change it).
type Calendars struct {
	cfg Config

	mu        sync.Mutex
	system    *actor.ActorSystem
	ownSystem bool
	dir       *localDirectory
	req       requester
	cluster   *clusterRequester // set by UseCluster
	grains    grainCount        // calendar grains active here (cluster mode)
	stopped   bool
}

// New validates cfg (zero fields other than Store take their defaults) and
// returns Calendars. It starts no goroutine; call Start.
func New(cfg Config) (*Calendars, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Calendars{cfg: cfg}, nil
}

// Start creates the actor system if Config.System is nil and begins serving.
// Calendar actors are activated on demand.
func (c *Calendars) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.req != nil || c.stopped {
		return fmt.Errorf("actors: Calendars already started")
	}
	if c.cluster != nil {
		c.req = c.cluster
		return nil
	}
	c.system = c.cfg.System
	if c.system == nil {
		logger := c.cfg.Logger
		c.system = actor.NewActorSystem(
			actor.WithLoggerFactory(func(s *actor.ActorSystem) *slog.Logger {
				return logger.With(slog.String("lib", "protoactor"), slog.String("system", s.ID))
			}),
			actor.WithDeadLetterRequestLogging(false),
		)
		c.ownSystem = true
	}
	d := newLocalDirectory(c.system, &c.cfg)
	c.dir, c.req = d, d
	return nil
}

// Stop stops routing requests, lets every calendar actor finish its writes in
// flight (up to RequestTimeout) and stops them, then shuts down the actor system
// if Start created it. Requests after Stop fail with ErrUnavailable.
func (c *Calendars) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	d := c.dir
	c.mu.Unlock()
	if d == nil || c.cluster != nil {
		return // the cluster stops its grains when it shuts down
	}
	d.Close(c.cfg.RequestTimeout)
	if c.ownSystem {
		c.system.Shutdown()
	}
}

// Active is the number of calendar actors active in this process now.
func (c *Calendars) Active() int {
	c.mu.Lock()
	d, clustered := c.dir, c.cluster != nil
	c.mu.Unlock()
	if clustered {
		return int(c.grains.Load())
	}
	if d == nil {
		return 0
	}
	return d.Active()
}

func (c *Calendars) request(ctx context.Context, providerID string, msg proto.Message) (*calendarv1.Reply, error) {
	c.mu.Lock()
	r, stopped := c.req, c.stopped
	c.mu.Unlock()
	if r == nil || stopped {
		return nil, fmt.Errorf("%w: calendars not running", ErrUnavailable)
	}
	if providerID == "" {
		return nil, fmt.Errorf("%w: provider_id is required", ErrInvalid)
	}
	return r.Request(ctx, providerID, msg)
}

// Book creates a confirmed booking of r.service_id at r.start_ms. It answers only
// after the store committed it. Errors: ErrSlotTaken when it overlaps another
// booking (checked first), ErrInvalid when the start could never be offered or
// the service is unknown, ErrNotFound for an unknown provider,
// ErrIdempotencyKeyReused, ErrUnavailable; with r.consent_purpose or
// r.require_verified set, ErrConsentRequired (no active consent of the client
// for that purpose in the store's jurisdiction) and ErrProviderUnverified, which
// the store checks before the slot. r.audit rides on the store command, and
// r.session_status (unset or SCHEDULED) is the new booking's.
func (c *Calendars) Book(ctx context.Context, r *calendarv1.BookRequest) (*bookingv1.Booking, error) {
	rep, err := c.request(ctx, r.GetProviderId(), r)
	if err != nil {
		return nil, err
	}
	return rep.GetBooking(), nil
}

// Cancel cancels a booking of the provider; its slot is free at once. Cancelling
// a cancelled booking returns it unchanged. ErrNotFound for an unknown booking or
// one of another provider.
func (c *Calendars) Cancel(ctx context.Context, r *calendarv1.CancelRequest) (*bookingv1.Booking, error) {
	rep, err := c.request(ctx, r.GetProviderId(), r)
	if err != nil {
		return nil, err
	}
	return rep.GetBooking(), nil
}

// Reschedule moves a confirmed booking to r.start_ms with the same duration and
// buffer, atomically: either it moved or nothing changed. Errors: ErrNotFound,
// ErrInvalidTransition (cancelled), ErrSlotTaken (overlaps another booking),
// ErrInvalid (the new start could never be offered), ErrUnavailable.
func (c *Calendars) Reschedule(ctx context.Context, r *calendarv1.RescheduleRequest) (*bookingv1.Booking, error) {
	rep, err := c.request(ctx, r.GetProviderId(), r)
	if err != nil {
		return nil, err
	}
	return rep.GetBooking(), nil
}

// Availability lists every start at which a booking of r.service_id would
// succeed now, over r.days (1..31) local dates from r.from_date, in Reply.slots,
// with the provider's zone in Reply.timezone. Writes in flight count as busy.
func (c *Calendars) Availability(ctx context.Context, r *calendarv1.AvailabilityRequest) (*calendarv1.Reply, error) {
	return c.request(ctx, r.GetProviderId(), r)
}

// UpdateProvider replaces the provider's mutable fields through the store and
// then in the calendar; existing bookings are untouched.
func (c *Calendars) UpdateProvider(ctx context.Context, r *calendarv1.UpdateProviderRequest) (*bookingv1.Provider, error) {
	rep, err := c.request(ctx, r.GetProvider().GetId(), r)
	if err != nil {
		return nil, err
	}
	return rep.GetProvider(), nil
}

// BookSeries books r.count occurrences of r.service_id every r.every_days days
// from r.start_ms, each at the same local wall time in the provider's time zone
// (across a daylight-saving change the instants move, the wall time does not),
// all or none, with one store command; r.booking_ids name the occurrences in
// order (none: the calendar picks them) and r.series_id the series. It answers
// the series in Reply.series and its bookings in Reply.bookings once the store
// committed them. Errors: ErrSlotTaken when an occurrence overlaps another
// booking (or another occurrence) — the Reply is returned too, with the starts
// (ms) of exactly the colliding occurrences in Reply.conflicts; ErrInvalid when
// an occurrence could never be offered (notice, horizon, hours, grid, a
// wall time lost to a daylight-saving gap), count is outside 2..52,
// every_days outside 1..366 or the ids do not match count; ErrConsentRequired,
// ErrProviderUnverified (r.consent_purpose, r.require_verified);
// ErrIdempotencyKeyReused; ErrNotFound; ErrUnavailable.
func (c *Calendars) BookSeries(ctx context.Context, r *calendarv1.BookSeriesRequest) (*calendarv1.Reply, error) {
	return c.request(ctx, r.GetProviderId(), r)
}

// CancelSeries cancels the confirmed occurrences of series r.series_id that
// start at or after r.from_ms (0: now, the store's entry time); their slots are
// free at once. r.provider_id must be the series' provider. It answers the
// cancelled bookings in Reply.bookings (and the series in Reply.series when the
// store gives it); cancelling again cancels nothing more. ErrNotFound for an
// unknown series.
func (c *Calendars) CancelSeries(ctx context.Context, r *calendarv1.CancelSeriesRequest) (*calendarv1.Reply, error) {
	return c.request(ctx, r.GetProviderId(), r)
}

// Refresh makes the provider's calendar reload its provider and bookings from
// the store. Call it after a write that changed the provider's bookings without
// going through its calendar (a consent withdrawal or an erasure the FSM
// applied, a series cancelled elsewhere): until then memory may hold a slot as
// taken that is free (a refusal is still confirmed with the store first, so it
// only costs a store read). ErrNotFound for an unknown provider, ErrUnavailable
// when the store cannot be read.
func (c *Calendars) Refresh(ctx context.Context, providerID string) error {
	_, err := c.request(ctx, providerID, &calendarv1.RefreshRequest{ProviderId: providerID})
	return err
}
