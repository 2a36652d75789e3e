package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/edge/ids"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/topology"
)

// Store is the part of the replicated booking store the edge reads and writes
// directly. *storage.Store satisfies it.
//
// Concurrency: every method may be called from many goroutines at once. Reads may
// be served from the local replica and so may be stale; LinearizableRead returns
// once the local replica has applied everything committed before the call, so a
// read issued after it sees every acknowledged write. Errors are the storage
// sentinels (storage.ErrNotFound, storage.ErrNotLeader, ...) wrapped with %w.
type Store interface {
	// Provider returns the provider or an error wrapping storage.ErrNotFound.
	Provider(ctx context.Context, id string) (*bookingv1.Provider, error)
	// Booking returns the booking or an error wrapping storage.ErrNotFound.
	Booking(ctx context.Context, id string) (*bookingv1.Booking, error)
	// ListProviders returns a page of providers matching f and the cursor of the
	// next page ("" at the end).
	ListProviders(ctx context.Context, f storage.ProviderFilter) ([]*bookingv1.Provider, string, error)
	// ProvidersVersion returns a number that changes whenever the provider
	// records Provider and ListProviders read may have changed (the edge keeps
	// encoded list pages per version: listmemo.go), or the error
	// ListProviders would return now that is not about its filter.
	ProvidersVersion() (uint64, error)
	// ClientBookings returns a page of a client's bookings, newest first, and the
	// cursor of the next page ("" at the end).
	ClientBookings(ctx context.Context, clientID string, p storage.Page) ([]*bookingv1.Booking, string, error)
	// Idempotency returns the record of an idempotency key or an error wrapping
	// storage.ErrNotFound.
	Idempotency(ctx context.Context, key string) (*bookingv1.IdempotencyRecord, error)
	// LinearizableRead waits until reads on this node reflect every write
	// committed before the call.
	LinearizableRead(ctx context.Context) error
	// Propose commits cmd through Raft and returns the FSM's verdict. The edge
	// uses it for the writes no calendar actor orders: creating and verifying
	// providers, granting and withdrawing consents, erasing a client's health
	// data, and appending audit records of reads and refusals (AppendAudit);
	// every booking write goes through the calendar actors. A verdict other than
	// OK comes back as err wrapping the storage sentinel (with the result).
	Propose(ctx context.Context, cmd *bookingv1.Command) (*bookingv1.CommandResult, error)

	// The records of the psychology vertical (issue 9). Each may read the local
	// replica, like Booking.

	// Consent returns the consent or an error wrapping storage.ErrNotFound.
	Consent(ctx context.Context, id string) (*bookingv1.Consent, error)
	// ClientConsents returns every consent of a client held in this store.
	ClientConsents(ctx context.Context, clientID string) ([]*bookingv1.Consent, error)
	// Series returns the series or an error wrapping storage.ErrNotFound.
	Series(ctx context.Context, id string) (*bookingv1.Series, error)
	// ClientKey returns the client's wrapped data key or an error wrapping
	// storage.ErrNotFound.
	ClientKey(ctx context.Context, clientID string) (*bookingv1.ClientKey, error)
	// Erasure returns the record of the client's health-data erasure or an
	// error wrapping storage.ErrNotFound.
	Erasure(ctx context.Context, clientID string) (*bookingv1.Erasure, error)
	// AuditEntries returns the audit entries matching f, in seq order, and the
	// After of the next page (0 at the end).
	AuditEntries(ctx context.Context, f AuditFilter) ([]*bookingv1.AuditEntry, uint64, error)
}

// AuditFilter selects audit entries (storage.AuditFilter).
type AuditFilter = storage.AuditFilter

// Calendars reaches the provider calendar actors wherever they are active.
// *actors.Calendars satisfies it.
//
// Concurrency: every method may be called from many goroutines at once; the
// actor of one provider orders that provider's requests. Errors are the actors
// sentinels (actors.ErrSlotTaken, actors.ErrInvalid, ...) or storage sentinels,
// wrapped with %w.
type Calendars interface {
	// Book creates a confirmed booking.
	Book(ctx context.Context, req *calendarv1.BookRequest) (*bookingv1.Booking, error)
	// Cancel cancels a booking; cancelling a cancelled booking returns it as is.
	Cancel(ctx context.Context, req *calendarv1.CancelRequest) (*bookingv1.Booking, error)
	// Reschedule moves a confirmed booking to a new start, atomically.
	Reschedule(ctx context.Context, req *calendarv1.RescheduleRequest) (*bookingv1.Booking, error)
	// Availability lists every start at which a booking would succeed now. A
	// refusal comes back as err wrapping an actors sentinel (as for every method).
	Availability(ctx context.Context, req *calendarv1.AvailabilityRequest) (*calendarv1.Reply, error)
	// UpdateProvider replaces the provider's mutable fields.
	UpdateProvider(ctx context.Context, req *calendarv1.UpdateProviderRequest) (*bookingv1.Provider, error)
	// BookSeries books every occurrence of a series or none. On a slot
	// conflict the reply (not nil) lists the colliding starts in conflicts and
	// err wraps the slot-taken sentinel.
	BookSeries(ctx context.Context, req *calendarv1.BookSeriesRequest) (*calendarv1.Reply, error)
	// CancelSeries cancels a series' occurrences from from_ms on; the reply's
	// bookings are the ones it cancelled.
	CancelSeries(ctx context.Context, req *calendarv1.CancelSeriesRequest) (*calendarv1.Reply, error)
	// Refresh makes the provider's calendar actor reload its bookings from the
	// store, after a write the actor did not order (a consent withdrawal that
	// cancelled bookings).
	Refresh(ctx context.Context, providerID string) error
}

// Sessions reaches the session actors (one per psychology booking, active only
// in the booking's home jurisdiction). The actor checks the caller again
// (subject and role travel in the request), seals and unseals notes, and
// appends the audit record of every request it answers, allowed or refused.
// *session.Sessions satisfies it (ClientNotes: see below).
//
// Concurrency: every method may be called from many goroutines at once.
type Sessions interface {
	// Do sends one request to the session actor of req.booking_id. A refusal
	// comes back in the reply's error code (FORBIDDEN, ERASED, NOT_FOUND,
	// INVALID_TRANSITION...); err is for transport faults (unavailable).
	Do(ctx context.Context, req *calendarv1.SessionRequest) (*calendarv1.SessionReply, error)
	// ClientNotes returns the notes of every session of client clientID held
	// in this node's jurisdiction, unsealed, for the client's export (GDPR Art.
	// 15 and 20): one reply per session with notes, its booking and its notes
	// (text, updated at). It appends no audit record: the edge's "export"
	// record covers the read. A client whose health data was erased has none
	// (nil, nil). A node without the key-encryption key answers an error
	// wrapping the unavailable sentinel.
	ClientNotes(ctx context.Context, clientID string) ([]*calendarv1.SessionReply, error)
}

// Placement is where a provider's calendar actor is active now.
type Placement struct {
	Node, City, Jurisdiction string
}

// Member is one node of the cluster as GET /v1/cluster/members shows it: the
// wire type of edge/client, so server and client cannot drift.
type Member = client.Member

// Config configures a Server. Build one with DefaultConfig and fill the
// dependencies; New validates it.
type Config struct {
	// NodeID is this node's id. Required.
	NodeID string
	// City is this node's city; it must be in Topology. Required.
	City string

	// Store is the replicated booking store. Required.
	Store Store
	// Calendars reaches the calendar actors. Required.
	Calendars Calendars
	// Topology gives cities (jurisdiction, zone, currency) and verticals. Required.
	Topology *topology.Topology
	// Sessions reaches the session actors (GET /v1/sessions/..., notes, the notes
	// of an export). nil: those routes answer 503 on this node.
	Sessions Sessions

	// Placement reports where a provider's calendar actor is active
	// (GET /v1/providers/{id}/placement). Required.
	Placement func(ctx context.Context, providerID string) (Placement, error)
	// Members lists the cluster's nodes (GET /v1/cluster/members). Default: this
	// node alone, with status "alive".
	Members func() []Member
	// Status reports the Raft groups this node knows (GET /v1/cluster/status). An
	// empty ClusterStatus.Node is filled with NodeID. Default: built from Members,
	// grouped by Raft.Group (term, applied index and lag 0).
	Status func(ctx context.Context) (ClusterStatus, error)
	// Leave starts this node's graceful leave (POST /v1/cluster/leave). It must
	// return as soon as the leave is accepted and do the rest on its own goroutine,
	// not tied to ctx, so the 202 reaches the operator before the node stops
	// serving. Default nil: the route answers 503.
	Leave func(ctx context.Context) error
	// Remove drops member id from the cluster (POST /v1/cluster/members/{id}/remove).
	// Without force it must refuse a member that is alive, with an error wrapping
	// ErrMemberAlive (409); an error wrapping ErrUnknownMember is a 404. Default
	// nil: the route answers 503.
	Remove func(ctx context.Context, id string, force bool) error
	// Backup streams a consistent backup of this node's jurisdiction store
	// (GET /v1/cluster/backup). Default nil: the route answers 503.
	Backup BackupFunc

	// Auth verifies the bearer tokens of people against the token key set (see
	// package edge/auth and security.md). Required: no route but the public ones
	// answers without a valid token.
	Auth *auth.Verifier
	// Limits are the rate limits of Handler (per token subject, per client IP
	// without one). Zero fields take DefaultLimits' values.
	Limits Limits

	// Router knows the live nodes of each jurisdiction. nil = single-jurisdiction
	// node: everything is local. With a Router, a request for another jurisdiction
	// is relayed to one of its nodes, and unfiltered lists gather every
	// jurisdiction's (see routing.go).
	Router Router
	// PeerTransport carries requests to other nodes (relayed requests and list
	// fan-out). Default: http.DefaultTransport.
	PeerTransport http.RoundTripper
	// PeerNode returns the node id the peer certificate of a mutual-TLS
	// connection names (the cluster fills it with its PKI's identity check).
	// PeerHandler honours ForwardedByHeader only when it equals PeerNode of the
	// request's connection. nil: PeerHandler takes no relayed request (403).
	PeerNode func(cs *tls.ConnectionState) (nodeID string, err error)
	// ForwardTimeout bounds one request to another node, body included. Default:
	// RequestTimeout + 2s, so the peer's own deadline answers first.
	ForwardTimeout time.Duration
	// Ready is nil once the node can serve; otherwise its error is the reason
	// /readyz answers 503. Default: always ready.
	Ready func() error

	// Clock is the time source. Default: time.Now.
	Clock func() time.Time
	// NewID returns a new opaque id: prefix + "_" + a unique random part. The edge
	// passes ids.Prefix(kind, city) for the ids that route ("prv_<city>",
	// "bkg_<city>": see package edge/ids) and plain prefixes for the others ("svc",
	// "upd", "rsc"). A routed id that does not parse back to its city with
	// ids.CityOf is a 500. Default: ids.New (ids in creation-time order).
	NewID func(prefix string) string

	// Logger receives request errors and recovered panics. Default: slog.Default().
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is served at /metrics. Default: a new
	// registry with the Go and process collectors.
	Registry *prometheus.Registry

	// MaxBodyBytes bounds request bodies; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// RequestTimeout bounds the handling of one request (the context passed to
	// Store and Calendars). Default 10s.
	RequestTimeout time.Duration
}

// Defaults of Config.
const (
	// DefaultMaxBodyBytes is the default Config.MaxBodyBytes: 1 MiB.
	DefaultMaxBodyBytes int64 = 1 << 20
	// DefaultRequestTimeout is the default Config.RequestTimeout.
	DefaultRequestTimeout = 10 * time.Second
)

// DefaultConfig returns a Config with every optional field at its default and the
// required dependencies (NodeID, City, Store, Calendars, Topology, Placement,
// Auth) unset.
func DefaultConfig() Config {
	return Config{
		Clock:          time.Now,
		NewID:          ids.New,
		Logger:         slog.Default(),
		MaxBodyBytes:   DefaultMaxBodyBytes,
		RequestTimeout: DefaultRequestTimeout,
		Limits:         DefaultLimits(),
	}
}

// Validate reports the first required field that is missing or value out of range.
func (c Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("edge: Config.NodeID is required")
	case c.Store == nil:
		return errors.New("edge: Config.Store is required")
	case c.Calendars == nil:
		return errors.New("edge: Config.Calendars is required")
	case c.Topology == nil:
		return errors.New("edge: Config.Topology is required")
	case c.Placement == nil:
		return errors.New("edge: Config.Placement is required")
	case c.Auth == nil:
		return errors.New("edge: Config.Auth (the token key set) is required")
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("edge: Config.MaxBodyBytes %d is negative", c.MaxBodyBytes)
	case c.RequestTimeout < 0:
		return fmt.Errorf("edge: Config.RequestTimeout %v is negative", c.RequestTimeout)
	case c.ForwardTimeout < 0:
		return fmt.Errorf("edge: Config.ForwardTimeout %v is negative", c.ForwardTimeout)
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	city, err := c.Topology.City(c.City)
	if err != nil {
		return fmt.Errorf("edge: Config.City: %w", err)
	}
	for _, name := range c.Topology.CityNames() {
		if !ids.ValidCity(name) {
			return fmt.Errorf("edge: Config.Topology: city %q cannot be carried in an id (a-z, 0-9 and '-' only)", name)
		}
	}
	if c.Router != nil && c.Router.Jurisdiction() != city.Jurisdiction {
		return fmt.Errorf("edge: Config.Router is of jurisdiction %q but city %s is of %q",
			c.Router.Jurisdiction(), c.City, city.Jurisdiction)
	}
	return nil
}

// withDefaults fills the zero optional fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Clock == nil {
		c.Clock = d.Clock
	}
	if c.NewID == nil {
		c.NewID = d.NewID
	}
	if c.Logger == nil {
		c.Logger = d.Logger
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.ForwardTimeout == 0 {
		c.ForwardTimeout = c.RequestTimeout + 2*time.Second
	}
	if c.PeerTransport == nil {
		c.PeerTransport = http.DefaultTransport
	}
	c.Limits = c.Limits.withDefaults()
	if c.Ready == nil {
		c.Ready = func() error { return nil }
	}
	if c.Members == nil {
		self := Member{ID: c.NodeID, City: c.City, Status: "alive", Addresses: map[string]string{}}
		if city, err := c.Topology.City(c.City); err == nil {
			self.Jurisdiction = city.Jurisdiction
		}
		c.Members = func() []Member { return []Member{self} }
	}
	if c.Status == nil {
		members := c.Members
		c.Status = func(context.Context) (ClusterStatus, error) { return statusFromMembers(members()), nil }
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
		c.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return c
}
