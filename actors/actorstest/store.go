// Package actorstest holds test doubles for package actors: an in-memory Store
// that applies commands with the rules the Raft FSM enforces. It is never used by
// the product.
package actorstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/barberpro/edge/actors"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"google.golang.org/protobuf/proto"
)

// ErrNotFound is the Store's "no such record" (like storage.ErrNotFound).
var ErrNotFound = errors.New("actorstest: not found")

// Store is an in-memory actors.Store. Its Propose applies a command with the
// FSM's rules: bookings of one provider never overlap on [start_ms,
// blocked_until_ms); an idempotency key with the same hash replays the first OK
// result, with another hash it is RESULT_CODE_IDEMPOTENCY_MISMATCH; cancelling a
// cancelled booking is a no-op; rescheduling a cancelled one is
// RESULT_CODE_INVALID_TRANSITION. CreateBooking and CreateSeries check consent
// (an active consent of the client for consent_purpose at the entry time) and
// verification (require_verified: the provider's verified_at_ms) before the
// slot; a series (its occurrences in bookings, booking_ids filled by the
// store) is created all or none, a slot conflict listing the colliding starts
// (with stored bookings or with another occurrence); CancelSeries cancels the confirmed occurrences from from_ms on;
// WithdrawConsent cancels the client's confirmed bookings of its verticals that
// start after the entry time. Safe for concurrent use.
type Store struct {
	// ProposeDelay is slept (outside the lock) before each command applies.
	ProposeDelay time.Duration
	// BeforePropose, if set, runs before each command applies; a non-nil error is
	// returned by Propose without applying (e.g. a lost leader).
	BeforePropose func(cmd *bookingv1.Command) error
	// ReadIndexErr, if set, is what LinearizableRead returns (a replica that
	// cannot reach its leader).
	ReadIndexErr error

	mu        sync.Mutex
	lagging   map[string]bool
	providers map[string]*bookingv1.Provider
	bookings  map[string]*bookingv1.Booking
	series    map[string]*bookingv1.Series
	consents  map[string]*bookingv1.Consent
	keys      map[string]idem
	commands  []*bookingv1.Command

	proposals     atomic.Int64
	providerLoads atomic.Int64
}

type idem struct {
	hash []byte
	res  *bookingv1.CommandResult
}

var _ actors.Store = (*Store)(nil)

// LinearizableRead returns ReadIndexErr; on success every lagging booking (Lag)
// has caught up.
func (s *Store) LinearizableRead(context.Context) error {
	if s.ReadIndexErr != nil {
		return s.ReadIndexErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lagging = nil
	return nil
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{providers: map[string]*bookingv1.Provider{}, bookings: map[string]*bookingv1.Booking{},
		series: map[string]*bookingv1.Series{}, consents: map[string]*bookingv1.Consent{}, keys: map[string]idem{}}
}

// PutProvider stores p as is.
func (s *Store) PutProvider(p *bookingv1.Provider) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.providers[p.GetId()] = proto.Clone(p).(*bookingv1.Provider)
}

// PutBooking stores b as is, bypassing every rule (another writer).
func (s *Store) PutBooking(b *bookingv1.Booking) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bookings[b.GetId()] = proto.Clone(b).(*bookingv1.Booking)
}

// Bookings returns the provider's bookings with the given status (any if 0).
func (s *Store) Bookings(providerID string, status bookingv1.BookingStatus) []*bookingv1.Booking {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*bookingv1.Booking
	for _, b := range s.bookings {
		if b.GetProviderId() == providerID && (status == 0 || b.GetStatus() == status) {
			out = append(out, proto.Clone(b).(*bookingv1.Booking))
		}
	}
	return out
}

// Proposals counts the commands proposed so far.
func (s *Store) Proposals() int64 { return s.proposals.Load() }

// ProviderLoads counts the Provider calls so far (activations and reloads).
func (s *Store) ProviderLoads() int64 { return s.providerLoads.Load() }

// Provider implements actors.Store.
func (s *Store) Provider(_ context.Context, id string) (*bookingv1.Provider, error) {
	s.providerLoads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.providers[id]
	if !ok {
		return nil, fmt.Errorf("provider %q: %w", id, ErrNotFound)
	}
	return proto.Clone(p).(*bookingv1.Provider), nil
}

// Booking implements actors.Store.
func (s *Store) Booking(_ context.Context, id string) (*bookingv1.Booking, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bookings[id]
	if !ok || s.lagging[id] {
		return nil, fmt.Errorf("booking %q: %w", id, ErrNotFound)
	}
	return proto.Clone(b).(*bookingv1.Booking), nil
}

// Idempotency implements actors.Store: the record of a key whose command
// took effect (ErrNotFound otherwise).
func (s *Store) Idempotency(_ context.Context, key string) (*bookingv1.IdempotencyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.keys[key]
	if !ok {
		return nil, fmt.Errorf("idempotency key %q: %w", key, ErrNotFound)
	}
	return &bookingv1.IdempotencyRecord{Key: key, RequestHash: rec.hash, ResourceId: rec.res.GetBooking().GetId()}, nil
}

// Lag makes Booking answer "not found" for id until the next LinearizableRead,
// as a follower replica that has not yet applied the booking would.
func (s *Store) Lag(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lagging == nil {
		s.lagging = map[string]bool{}
	}
	s.lagging[id] = true
}

// ProviderBookings implements actors.Store (cancelled bookings included).
func (s *Store) ProviderBookings(_ context.Context, providerID string, from, to time.Time) ([]*bookingv1.Booking, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*bookingv1.Booking
	for _, b := range s.bookings {
		if b.GetProviderId() == providerID && b.GetBlockedUntilMs() > from.UnixMilli() && b.GetStartMs() < to.UnixMilli() {
			out = append(out, proto.Clone(b).(*bookingv1.Booking))
		}
	}
	return out, nil
}

// Propose implements actors.Store.
func (s *Store) Propose(ctx context.Context, cmd *bookingv1.Command) (*bookingv1.CommandResult, error) {
	s.proposals.Add(1)
	if s.ProposeDelay > 0 {
		select {
		case <-time.After(s.ProposeDelay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.BeforePropose != nil {
		if err := s.BeforePropose(cmd); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands = append(s.commands, proto.Clone(cmd).(*bookingv1.Command))
	if k := cmd.GetIdempotencyKey(); k != "" {
		if rec, ok := s.keys[k]; ok {
			if !bytes.Equal(rec.hash, cmd.GetRequestHash()) {
				return result(bookingv1.ResultCode_RESULT_CODE_IDEMPOTENCY_MISMATCH, "key reused"), nil
			}
			return proto.Clone(rec.res).(*bookingv1.CommandResult), nil
		}
	}
	res := s.apply(cmd)
	if k := cmd.GetIdempotencyKey(); k != "" && res.GetCode() == bookingv1.ResultCode_RESULT_CODE_OK {
		s.keys[k] = idem{hash: cmd.GetRequestHash(), res: proto.Clone(res).(*bookingv1.CommandResult)}
	}
	return res, nil
}

func result(c bookingv1.ResultCode, detail string) *bookingv1.CommandResult {
	return &bookingv1.CommandResult{Code: c, Detail: detail}
}

func (s *Store) overlaps(providerID, except string, start, until int64) bool {
	for _, o := range s.bookings {
		if o.GetProviderId() == providerID && o.GetId() != except &&
			o.GetStatus() == bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED &&
			o.GetStartMs() < until && start < o.GetBlockedUntilMs() {
			return true
		}
	}
	return false
}

func (s *Store) apply(cmd *bookingv1.Command) *bookingv1.CommandResult {
	ok := func(b *bookingv1.Booking) *bookingv1.CommandResult {
		r := result(bookingv1.ResultCode_RESULT_CODE_OK, "")
		r.Booking = proto.Clone(b).(*bookingv1.Booking)
		return r
	}
	switch op := cmd.GetOp().(type) {
	case *bookingv1.Command_CreateBooking:
		c := op.CreateBooking
		b := proto.Clone(c.GetBooking()).(*bookingv1.Booking)
		if r := s.judge(b, c.GetConsentPurpose(), c.GetRequireVerified(), cmd.GetProposedAtMs()); r != nil {
			return r
		}
		if s.overlaps(b.GetProviderId(), "", b.GetStartMs(), b.GetBlockedUntilMs()) {
			return result(bookingv1.ResultCode_RESULT_CODE_SLOT_TAKEN, "overlaps another booking")
		}
		b.Version = 1
		b.CreatedAtMs, b.UpdatedAtMs = cmd.GetProposedAtMs(), cmd.GetProposedAtMs()
		s.bookings[b.GetId()] = b
		return ok(b)
	case *bookingv1.Command_CreateSeries:
		return s.createSeries(op.CreateSeries, cmd.GetProposedAtMs())
	case *bookingv1.Command_CancelSeries:
		return s.cancelSeries(op.CancelSeries, cmd.GetProposedAtMs())
	case *bookingv1.Command_GrantConsent:
		c := proto.Clone(op.GrantConsent.GetConsent()).(*bookingv1.Consent)
		if _, dup := s.consents[c.GetId()]; dup || c.GetId() == "" {
			return result(bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS, "consent id exists")
		}
		s.consents[c.GetId()] = c
		r := result(bookingv1.ResultCode_RESULT_CODE_OK, "")
		r.Consent = proto.Clone(c).(*bookingv1.Consent)
		return r
	case *bookingv1.Command_WithdrawConsent:
		return s.withdrawConsent(op.WithdrawConsent, cmd.GetProposedAtMs())
	case *bookingv1.Command_CancelBooking:
		b, found := s.bookings[op.CancelBooking.GetBookingId()]
		if !found {
			return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "no such booking")
		}
		if b.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
			b.Status = bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED
			b.Version++
			b.UpdatedAtMs = cmd.GetProposedAtMs()
		}
		return ok(b)
	case *bookingv1.Command_RescheduleBooking:
		r := op.RescheduleBooking
		b, found := s.bookings[r.GetBookingId()]
		if !found {
			return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "no such booking")
		}
		if b.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED {
			return result(bookingv1.ResultCode_RESULT_CODE_INVALID_TRANSITION, "booking is cancelled")
		}
		if purpose := r.GetConsentPurpose(); purpose != "" && !s.consented(b.GetClientId(), purpose, cmd.GetProposedAtMs()) {
			return result(bookingv1.ResultCode_RESULT_CODE_CONSENT_REQUIRED, "no active consent")
		}
		if s.overlaps(b.GetProviderId(), b.GetId(), r.GetStartMs(), r.GetBlockedUntilMs()) {
			return result(bookingv1.ResultCode_RESULT_CODE_SLOT_TAKEN, "overlaps another booking")
		}
		b.StartMs, b.EndMs, b.BlockedUntilMs = r.GetStartMs(), r.GetEndMs(), r.GetBlockedUntilMs()
		b.Version++
		b.UpdatedAtMs = cmd.GetProposedAtMs()
		return ok(b)
	case *bookingv1.Command_CreateProvider:
		p := op.CreateProvider.GetProvider()
		if _, dup := s.providers[p.GetId()]; dup {
			return result(bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS, "provider id exists")
		}
		p = proto.Clone(p).(*bookingv1.Provider)
		p.Version = 1
		s.providers[p.GetId()] = p
		r := result(bookingv1.ResultCode_RESULT_CODE_OK, "")
		r.Provider = proto.Clone(p).(*bookingv1.Provider)
		return r
	case *bookingv1.Command_UpdateProvider:
		p := op.UpdateProvider.GetProvider()
		old, found := s.providers[p.GetId()]
		if !found {
			return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "no such provider")
		}
		p = proto.Clone(p).(*bookingv1.Provider)
		p.Version = old.GetVersion() + 1
		p.CreatedAtMs = old.GetCreatedAtMs()
		p.UpdatedAtMs = cmd.GetProposedAtMs()
		s.providers[p.GetId()] = p
		r := result(bookingv1.ResultCode_RESULT_CODE_OK, "")
		r.Provider = proto.Clone(p).(*bookingv1.Provider)
		return r
	}
	return result(bookingv1.ResultCode_RESULT_CODE_INVALID, "unknown command")
}

// judge applies CreateBooking's checks before the slot: the booking is new and
// well formed, its provider exists, the client's consent and the provider's
// verification hold when asked for. nil: go on.
func (s *Store) judge(b *bookingv1.Booking, purpose string, verified bool, at int64) *bookingv1.CommandResult {
	if _, dup := s.bookings[b.GetId()]; dup {
		return result(bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS, "booking id exists")
	}
	p, found := s.providers[b.GetProviderId()]
	if !found {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "no such provider")
	}
	if b.GetStartMs() >= b.GetEndMs() || b.GetEndMs() > b.GetBlockedUntilMs() {
		return result(bookingv1.ResultCode_RESULT_CODE_INVALID, "bad times")
	}
	if verified && p.GetVerifiedAtMs() == 0 {
		return result(bookingv1.ResultCode_RESULT_CODE_PROVIDER_UNVERIFIED, "provider not verified")
	}
	if purpose != "" && !s.consented(b.GetClientId(), purpose, at) {
		return result(bookingv1.ResultCode_RESULT_CODE_CONSENT_REQUIRED, "no active consent")
	}
	return nil
}

// consented reports whether the client has an active consent for purpose at.
func (s *Store) consented(clientID, purpose string, at int64) bool {
	for _, c := range s.consents {
		if c.GetClientId() == clientID && c.GetPurpose() == purpose && c.GetWithdrawnAtMs() == 0 &&
			c.GetGrantedAtMs() <= at && at < c.GetExpiresAtMs() {
			return true
		}
	}
	return false
}

func (s *Store) createSeries(c *bookingv1.CreateSeries, at int64) *bookingv1.CommandResult {
	sr := proto.Clone(c.GetSeries()).(*bookingv1.Series)
	if _, dup := s.series[sr.GetId()]; dup || sr.GetId() == "" {
		return result(bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS, "series id exists")
	}
	if len(c.GetBookings()) == 0 || len(sr.GetBookingIds()) != 0 {
		return result(bookingv1.ResultCode_RESULT_CODE_INVALID, "a series lists its bookings in bookings, not booking_ids")
	}
	var conflicts []int64
	for i, b := range c.GetBookings() {
		if b.GetSeriesId() != sr.GetId() || b.GetProviderId() != sr.GetProviderId() || b.GetClientId() != sr.GetClientId() {
			return result(bookingv1.ResultCode_RESULT_CODE_INVALID, "booking not of the series")
		}
		if r := s.judge(b, c.GetConsentPurpose(), c.GetRequireVerified(), at); r != nil {
			return r
		}
		taken := s.overlaps(b.GetProviderId(), "", b.GetStartMs(), b.GetBlockedUntilMs())
		for j, o := range c.GetBookings() {
			taken = taken || (j != i && o.GetStartMs() < b.GetBlockedUntilMs() && b.GetStartMs() < o.GetBlockedUntilMs())
		}
		if taken {
			conflicts = append(conflicts, b.GetStartMs())
		}
	}
	if len(conflicts) > 0 {
		r := result(bookingv1.ResultCode_RESULT_CODE_SLOT_TAKEN, "occurrences overlap other bookings")
		r.Conflicts = conflicts
		return r
	}
	sr.CreatedAtMs = at
	for _, b := range c.GetBookings() {
		sr.BookingIds = append(sr.BookingIds, b.GetId())
	}
	s.series[sr.GetId()] = sr
	r := result(bookingv1.ResultCode_RESULT_CODE_OK, "")
	r.Series = proto.Clone(sr).(*bookingv1.Series)
	for _, b := range c.GetBookings() {
		b = proto.Clone(b).(*bookingv1.Booking)
		b.Version = 1
		b.CreatedAtMs, b.UpdatedAtMs = at, at
		s.bookings[b.GetId()] = b
		r.Bookings = append(r.Bookings, proto.Clone(b).(*bookingv1.Booking))
	}
	return r
}

func (s *Store) cancelSeries(c *bookingv1.CancelSeries, at int64) *bookingv1.CommandResult {
	sr, found := s.series[c.GetSeriesId()]
	if !found {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "no such series")
	}
	from := c.GetFromMs()
	if from == 0 {
		from = at
	}
	r := result(bookingv1.ResultCode_RESULT_CODE_OK, "")
	r.Series = proto.Clone(sr).(*bookingv1.Series)
	for _, id := range sr.GetBookingIds() {
		b := s.bookings[id]
		if b == nil || b.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED || b.GetStartMs() < from {
			continue
		}
		b.Status, b.CancelReason = bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED, "series_cancelled"
		b.Version++
		b.UpdatedAtMs = at
		r.Bookings = append(r.Bookings, proto.Clone(b).(*bookingv1.Booking))
	}
	return r
}

func (s *Store) withdrawConsent(w *bookingv1.WithdrawConsent, at int64) *bookingv1.CommandResult {
	c, found := s.consents[w.GetConsentId()]
	if !found || c.GetClientId() != w.GetClientId() {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "no such consent")
	}
	r := result(bookingv1.ResultCode_RESULT_CODE_OK, "")
	if c.GetWithdrawnAtMs() == 0 {
		c.WithdrawnAtMs = at
		for _, b := range s.bookings {
			if b.GetClientId() != w.GetClientId() || b.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED ||
				b.GetStartMs() <= at || !slices.Contains(w.GetVerticals(), b.GetVertical()) {
				continue
			}
			b.Status, b.CancelReason = bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED, "consent_withdrawn"
			b.Version++
			b.UpdatedAtMs = at
			r.Bookings = append(r.Bookings, proto.Clone(b).(*bookingv1.Booking))
		}
	}
	r.Consent = proto.Clone(c).(*bookingv1.Consent)
	return r
}

// Commands returns a copy of every command proposed so far, in order (also
// those refused or replayed).
func (s *Store) Commands() []*bookingv1.Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*bookingv1.Command, len(s.commands))
	for i, c := range s.commands {
		out[i] = proto.Clone(c).(*bookingv1.Command)
	}
	return out
}

// Config returns actors.LocalConfig wired to s (IsNotFound knows ErrNotFound)
// with the given clock.
func Config(s *Store, clock func() time.Time) actors.Config {
	c := actors.LocalConfig()
	c.Store = s
	c.Clock = clock
	c.IsNotFound = func(err error) bool { return errors.Is(err, ErrNotFound) }
	return c
}

// MustStart creates and starts Calendars with cfg and stops them when t ends.
func MustStart(t testing.TB, cfg actors.Config) *actors.Calendars {
	t.Helper()
	c, err := actors.New(cfg)
	if err != nil {
		t.Fatalf("actors.New: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}
