package actors

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// Store is what a calendar needs of the replicated store (storage.*Store satisfies
// it; tests use actorstest.Store).
//
// Concurrency contract: every method may be called from many goroutines at once
// (one calendar actor proposes several commands concurrently). Propose returns a
// non-nil CommandResult whenever the FSM judged the command, with its verdict in
// Code (RESULT_CODE_OK or the rule it broke); an error without a result means the
// command's fate is unknown or it was not proposed (no leader, timeout, closed).
// Provider and Booking report a missing record with an error for which
// Config.IsNotFound is true (or a nil record and nil error).
type Store interface {
	// Provider returns the provider with that id.
	Provider(ctx context.Context, id string) (*bookingv1.Provider, error)
	// Booking returns the booking with that id.
	Booking(ctx context.Context, id string) (*bookingv1.Booking, error)
	// ProviderBookings returns the provider's bookings whose blocked span
	// [start_ms, blocked_until_ms) meets [from, to), cancelled ones included or not.
	ProviderBookings(ctx context.Context, providerID string, from, to time.Time) ([]*bookingv1.Booking, error)
	// Propose replicates cmd through Raft and returns the FSM's result.
	Propose(ctx context.Context, cmd *bookingv1.Command) (*bookingv1.CommandResult, error)
	// LinearizableRead returns once this replica has applied every write
	// committed before the call: a calendar that (re)loads on a follower, e.g.
	// after moving from a dead node, must not start from stale state.
	LinearizableRead(ctx context.Context) error
	// Idempotency returns the record of an idempotency key whose command took
	// effect, or an error for which Config.IsNotFound is true when there is
	// none.
	Idempotency(ctx context.Context, key string) (*bookingv1.IdempotencyRecord, error)
}

// Defaults of Config.
const (
	// DefaultIdleTimeout is how long a calendar actor stays active without messages.
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultRequestTimeout bounds one request to a calendar actor, and one store
	// call made by it.
	DefaultRequestTimeout = 5 * time.Second
	// DefaultLookBack is how far before now an activation loads bookings.
	DefaultLookBack = 10 * time.Hour
	// MaxAvailabilityDays is the most days one availability request may ask for.
	MaxAvailabilityDays = 31
)

// Config configures Calendars. Start from DefaultConfig or LocalConfig and set
// Store; zero fields other than Store take their defaults in New.
type Config struct {
	// Store is the replicated store. Required.
	Store Store
	// Clock is the time source (default time.Now). Tests and simulations substitute it.
	Clock func() time.Time
	// IdleTimeout passivates a calendar actor after that long without messages and
	// with no write in flight. Default DefaultIdleTimeout (10m); at least 10ms.
	IdleTimeout time.Duration
	// RequestTimeout bounds a request to a calendar actor (also capped by the
	// caller's context deadline) and each store call an actor makes. Default
	// DefaultRequestTimeout (5s); at least 10ms.
	RequestTimeout time.Duration
	// LookBack is how far before now an activation loads bookings, so that long
	// services that started earlier still block. Default DefaultLookBack (10h).
	LookBack time.Duration
	// Logger receives the package's and protoactor's logs. Default: JSON on stderr.
	Logger *slog.Logger
	// System is the actor system to host calendar actors on. nil: Start creates one
	// that logs through Logger (actor.WithLoggerFactory), and Stop shuts it down.
	System *actor.ActorSystem
	// IsNotFound tells a store error that means "no such record" from others.
	// Default: errors.Is(err, ErrNotFound). The node wires
	// errors.Is(err, storage.ErrNotFound) here.
	IsNotFound func(error) bool
	// IsStorageUnavailable tells a store error that means "this store cannot
	// write now" (full disk, I/O error) from others, so the answer says so
	// (ErrStorageUnavailable) also when it crosses nodes. Default:
	// errors.Is(err, ErrStorageUnavailable). The node wires
	// errors.Is(err, storage.ErrStorageUnavailable) here.
	IsStorageUnavailable func(error) bool
	// NewID returns a new booking id for a BookRequest without booking_id.
	// Default: 16 random bytes, hex.
	NewID func() string
}

// DefaultConfig is the production preset (without a Store).
func DefaultConfig() Config {
	return Config{
		Clock:                time.Now,
		IdleTimeout:          DefaultIdleTimeout,
		RequestTimeout:       DefaultRequestTimeout,
		LookBack:             DefaultLookBack,
		Logger:               slog.New(slog.NewJSONHandler(os.Stderr, nil)),
		IsNotFound:           func(err error) bool { return errors.Is(err, ErrNotFound) },
		IsStorageUnavailable: func(err error) bool { return errors.Is(err, ErrStorageUnavailable) },
		NewID:                randomID,
	}
}

// LocalConfig is the preset for tests and simulations: short idle and request
// timeouts, logs discarded below warnings.
func LocalConfig() Config {
	c := DefaultConfig()
	c.IdleTimeout = 2 * time.Second
	c.RequestTimeout = 2 * time.Second
	c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return c
}

// Validate reports whether the configuration can be used as is.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if c.Clock == nil {
		errs = append(errs, errors.New("Clock is required"))
	}
	if c.IdleTimeout < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("IdleTimeout %s is below 10ms", c.IdleTimeout))
	}
	if c.RequestTimeout < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("RequestTimeout %s is below 10ms", c.RequestTimeout))
	}
	if c.LookBack < 0 {
		errs = append(errs, fmt.Errorf("LookBack %s is negative", c.LookBack))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("Logger is required"))
	}
	if c.IsNotFound == nil || c.NewID == nil {
		errs = append(errs, errors.New("IsNotFound and NewID are required"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("actors: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.LookBack == 0 {
		c.LookBack = d.LookBack
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.IsNotFound == nil {
		c.IsNotFound = d.IsNotFound
	}
	if c.IsStorageUnavailable == nil {
		c.IsStorageUnavailable = d.IsStorageUnavailable
	}
	if c.NewID == nil {
		c.NewID = d.NewID
	}
	return c
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
