// Package edgetest holds in-memory test doubles of edge.Store and edge.Calendars:
// a Store that keeps providers, bookings and idempotency records in maps, and
// Calendars that apply the calendar rules (hours, step, notice, horizon, overlap
// with buffers, idempotency) over it. They are for tests and benchmarks of the
// edge only: single process, no Raft, no actors.
package edgetest

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/actors"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
)

// Store is an in-memory edge.Store. The zero value is not usable; call NewStore.
// It is safe for concurrent use.
type Store struct {
	mu        sync.Mutex
	providers map[string]*bookingv1.Provider
	provVer   uint64 // ProvidersVersion: moved on by every provider write
	bookings  map[string]*bookingv1.Booking
	idem      map[string]*bookingv1.IdempotencyRecord
	seq       int64 // creation order of bookings

	// The psychology vertical's records (psych.go).
	consents map[string]*bookingv1.Consent
	series   map[string]*bookingv1.Series
	keys     map[string]*bookingv1.ClientKey
	erasures map[string]*bookingv1.Erasure
	audit    []*bookingv1.AuditEntry

	// Fail, when set, is asked before every operation ("Provider", "Booking",
	// "ListProviders", "ClientBookings", "Idempotency", "LinearizableRead",
	// "Propose"); a non-nil error is returned instead.
	Fail func(op string) error
}

// ProvidersVersion returns a number that changes with every provider write,
// or Fail("ListProviders")'s error.
func (s *Store) ProvidersVersion() (uint64, error) {
	if err := s.fail("ListProviders"); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.provVer, nil
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{
		providers: map[string]*bookingv1.Provider{},
		bookings:  map[string]*bookingv1.Booking{},
		idem:      map[string]*bookingv1.IdempotencyRecord{},
		consents:  map[string]*bookingv1.Consent{},
		series:    map[string]*bookingv1.Series{},
		keys:      map[string]*bookingv1.ClientKey{},
		erasures:  map[string]*bookingv1.Erasure{},
	}
}

func (s *Store) fail(op string) error {
	if s.Fail != nil {
		return s.Fail(op)
	}
	return nil
}

// get is every keyed read of the double: the injected failure of op, then a
// copy of m[key] or an error wrapping storage.ErrNotFound naming what.
func get[T proto.Message](s *Store, op string, m map[string]T, key, what string) (T, error) {
	var zero T
	if err := s.fail(op); err != nil {
		return zero, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := m[key]
	if !ok {
		return zero, fmt.Errorf("%w: %s", storage.ErrNotFound, what)
	}
	return proto.CloneOf(v), nil
}

// put stores a copy of v under key in m.
func put[T proto.Message](s *Store, m map[string]T, key string, v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m[key] = proto.CloneOf(v)
}

// PutProvider stores p as is (a copy); ProvidersVersion moves on.
func (s *Store) PutProvider(p *bookingv1.Provider) {
	put(s, s.providers, p.Id, p)
	s.mu.Lock()
	s.provVer++
	s.mu.Unlock()
}

// Provider implements edge.Store.
func (s *Store) Provider(_ context.Context, id string) (*bookingv1.Provider, error) {
	return get(s, "Provider", s.providers, id, "provider "+id)
}

// Booking implements edge.Store.
func (s *Store) Booking(_ context.Context, id string) (*bookingv1.Booking, error) {
	return get(s, "Booking", s.bookings, id, "booking "+id)
}

// ListProviders implements edge.Store: by id, After is the last id seen.
func (s *Store) ListProviders(_ context.Context, f storage.ProviderFilter) ([]*bookingv1.Provider, string, error) {
	if err := s.fail("ListProviders"); err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.providers))
	for id := range s.providers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	var out []*bookingv1.Provider
	for _, id := range ids {
		p := s.providers[id]
		if id <= f.After || (f.City != "" && p.City != f.City) || (f.Vertical != "" && p.Vertical != f.Vertical) {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].Id, nil
		}
		out = append(out, proto.CloneOf(p))
	}
	return out, "", nil
}

// ClientBookings implements edge.Store as storage.Store does: newest created
// first, ties by id descending; the cursor is storage's, base64url(be64(created
// ms) ‖ id) of the last booking of the previous page, and means "strictly older
// than that position" (so it works even if no such booking is in this store). A
// malformed cursor is storage.ErrInvalid.
func (s *Store) ClientBookings(_ context.Context, clientID string, p storage.Page) ([]*bookingv1.Booking, string, error) {
	if err := s.fail("ClientBookings"); err != nil {
		return nil, "", err
	}
	var afterMs int64
	var afterID string
	if p.After != "" {
		raw, err := base64.RawURLEncoding.DecodeString(p.After)
		if err != nil || len(raw) < 8 {
			return nil, "", fmt.Errorf("%w: bad cursor", storage.ErrInvalid)
		}
		afterMs, afterID = int64(binary.BigEndian.Uint64(raw[:8])), string(raw[8:])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*bookingv1.Booking
	for _, b := range s.bookings {
		if b.ClientId != clientID {
			continue
		}
		ms := max(b.CreatedAtMs, 0)
		if p.After != "" && (ms > afterMs || ms == afterMs && b.Id >= afterID) {
			continue
		}
		all = append(all, b)
	}
	sort.Slice(all, func(i, j int) bool {
		if a, b := max(all[i].CreatedAtMs, 0), max(all[j].CreatedAtMs, 0); a != b {
			return a > b
		}
		return all[i].Id > all[j].Id
	})
	limit := p.Limit
	if limit <= 0 {
		limit = 50
	}
	next := ""
	if len(all) > limit {
		all = all[:limit]
		last := all[limit-1]
		raw := binary.BigEndian.AppendUint64(nil, uint64(max(last.CreatedAtMs, 0)))
		next = base64.RawURLEncoding.EncodeToString(append(raw, last.Id...))
	}
	out := make([]*bookingv1.Booking, len(all))
	for i, b := range all {
		out[i] = proto.CloneOf(b)
	}
	return out, next, nil
}

// Idempotency implements edge.Store.
func (s *Store) Idempotency(_ context.Context, key string) (*bookingv1.IdempotencyRecord, error) {
	if err := s.fail("Idempotency"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.idem[key]
	if !ok {
		return nil, fmt.Errorf("%w: idempotency key", storage.ErrNotFound)
	}
	return proto.CloneOf(r), nil
}

// LinearizableRead implements edge.Store: the maps are always current.
func (s *Store) LinearizableRead(context.Context) error { return s.fail("LinearizableRead") }

// Propose implements edge.Store for the commands the edge proposes
// (create_provider, verify_provider, grant_consent, withdraw_consent,
// erase_health_data, append_audit), with the FSM's idempotency rule; every
// command's audit records are appended with its outcome, as the FSM does.
func (s *Store) Propose(_ context.Context, cmd *bookingv1.Command) (*bookingv1.CommandResult, error) {
	if err := s.fail("Propose"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.apply(cmd)
	s.appendAudit(cmd.GetAudit(), res.GetCode(), cmd.GetProposedAtMs())
	return res, err
}

// applyProvider applies create_provider; s.mu is held.
func (s *Store) applyProvider(cmd *bookingv1.Command) (*bookingv1.CommandResult, error) {
	cp := cmd.GetCreateProvider()
	if cp == nil || cp.Provider == nil || cp.Provider.Id == "" {
		return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_INVALID},
			fmt.Errorf("%w: edgetest.Store proposes create_provider only", storage.ErrInvalid)
	}
	if r, ok := s.idem[cmd.IdempotencyKey]; ok && cmd.IdempotencyKey != "" {
		if string(r.RequestHash) != string(cmd.RequestHash) {
			return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_IDEMPOTENCY_MISMATCH}, storage.ErrIdempotencyKeyReused
		}
		return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Provider: proto.CloneOf(s.providers[r.ResourceId])}, nil
	}
	if _, ok := s.providers[cp.Provider.Id]; ok {
		return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS}, storage.ErrAlreadyExists
	}
	p := proto.CloneOf(cp.Provider)
	p.Version = 1
	s.providers[p.Id] = p
	s.provVer++
	s.remember(cmd.IdempotencyKey, cmd.RequestHash, p.Id, cmd.ProposedAtMs)
	return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Provider: proto.CloneOf(p)}, nil
}

// remember records an idempotency key; s.mu is held.
func (s *Store) remember(key string, hash []byte, resourceID string, atMs int64) {
	if key == "" {
		return
	}
	// The first answer, as the FSM keeps it (storage.firstResult): the booking
	// or provider the request answered.
	first := &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK}
	if b, ok := s.bookings[resourceID]; ok {
		first.Booking = proto.CloneOf(b)
	} else if p, ok := s.providers[resourceID]; ok {
		first.Provider = proto.CloneOf(p)
	} else if c, ok := s.consents[resourceID]; ok {
		first.Consent = proto.CloneOf(c)
	} else if sr, ok := s.series[resourceID]; ok {
		first.Series = proto.CloneOf(sr)
		for _, id := range sr.GetBookingIds() {
			if b, ok := s.bookings[id]; ok {
				first.Bookings = append(first.Bookings, proto.CloneOf(b))
			}
		}
	}
	enc, _ := proto.MarshalOptions{Deterministic: true}.Marshal(first)
	s.idem[key] = &bookingv1.IdempotencyRecord{Key: key, RequestHash: slices.Clone(hash), ResourceId: resourceID, CreatedAtMs: atMs, FirstResult: enc}
}

// Calendars is an in-memory edge.Calendars over a Store: it applies the calendar
// rules a real calendar actor applies. It is safe for concurrent use.
type Calendars struct {
	Store *Store
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Fail, when set, is asked before every operation ("Book", "Cancel",
	// "Reschedule", "Availability", "UpdateProvider", "BookSeries",
	// "CancelSeries", "Refresh"); a non-nil error is returned instead.
	Fail func(op string) error

	refreshMu sync.Mutex
	refreshed []string
}

// NewCalendars returns Calendars over st with the clock now.
func NewCalendars(st *Store, now func() time.Time) *Calendars {
	return &Calendars{Store: st, Now: now}
}

func (c *Calendars) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Calendars) fail(op string) error {
	if c.Fail != nil {
		return c.Fail(op)
	}
	return nil
}

// Book implements edge.Calendars. It judges consent_purpose and
// require_verified as the FSM does (before the slot), copies session_status and
// appends the request's audit records with the outcome.
func (c *Calendars) Book(_ context.Context, req *calendarv1.BookRequest) (b *bookingv1.Booking, err error) {
	if err := c.fail("Book"); err != nil {
		return nil, err
	}
	s := c.Store
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.appendAudit(req.GetAudit(), codeOf(err), c.now().UnixMilli()) }()
	if b, done, err := s.replay(req.IdempotencyKey, req.RequestHash); done {
		return b, err
	}
	p, ok := s.providers[req.ProviderId]
	if !ok {
		return nil, fmt.Errorf("%w: provider %s", actors.ErrNotFound, req.ProviderId)
	}
	if err := s.judge(p, req.ClientId, req.ConsentPurpose, req.RequireVerified, c.now().UnixMilli()); err != nil {
		return nil, err
	}
	svc, err := service(p, req.ServiceId)
	if err != nil {
		return nil, err
	}
	start := time.UnixMilli(req.StartMs)
	if err := c.offerable(p, svc, start); err != nil {
		return nil, err
	}
	end := start.Add(time.Duration(svc.DurationMinutes) * time.Minute)
	blocked := end.Add(time.Duration(svc.BufferMinutes) * time.Minute)
	if s.overlaps(p.Id, "", start.UnixMilli(), blocked.UnixMilli()) {
		return nil, fmt.Errorf("%w: %s", actors.ErrSlotTaken, start.UTC().Format(time.RFC3339))
	}
	now := c.now().UnixMilli()
	s.seq++
	b = &bookingv1.Booking{
		Id: req.BookingId, ProviderId: p.Id, ServiceId: svc.Id, ClientId: req.ClientId,
		StartMs: start.UnixMilli(), EndMs: end.UnixMilli(), BlockedUntilMs: blocked.UnixMilli(),
		Price: proto.CloneOf(svc.Price), Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED,
		Vertical: p.Vertical, CreatedAtMs: now, UpdatedAtMs: now, Version: uint64(s.seq),
		SessionStatus: req.SessionStatus,
	}
	s.bookings[b.Id] = b
	s.remember(req.IdempotencyKey, req.RequestHash, b.Id, now)
	return proto.CloneOf(b), nil
}

// replay answers a repeated idempotency key; s.mu is held.
func (s *Store) replay(key string, hash []byte) (*bookingv1.Booking, bool, error) {
	r, ok := s.idem[key]
	if key == "" || !ok {
		return nil, false, nil
	}
	if string(r.RequestHash) != string(hash) {
		return nil, true, actors.ErrIdempotencyKeyReused
	}
	return proto.CloneOf(s.bookings[r.ResourceId]), true, nil
}

// overlaps reports whether a non-cancelled booking of the provider other than
// except overlaps [from, to); s.mu is held.
func (s *Store) overlaps(providerID, except string, from, to int64) bool {
	for _, b := range s.bookings {
		if b.ProviderId == providerID && b.Id != except && b.Status == bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED &&
			b.StartMs < to && from < b.BlockedUntilMs {
			return true
		}
	}
	return false
}

func service(p *bookingv1.Provider, id string) (*bookingv1.Service, error) {
	i := slices.IndexFunc(p.Services, func(s *bookingv1.Service) bool { return s.Id == id })
	if i < 0 {
		return nil, fmt.Errorf("%w: unknown service %s", actors.ErrInvalid, id)
	}
	return p.Services[i], nil
}

// offerable checks everything but overlap: step, hours, notice, horizon.
func (c *Calendars) offerable(p *bookingv1.Provider, svc *bookingv1.Service, start time.Time) error {
	loc, err := time.LoadLocation(p.Timezone)
	if err != nil {
		return fmt.Errorf("%w: provider zone %q", actors.ErrInvalid, p.Timezone)
	}
	now := c.now()
	if start.Before(now.Add(time.Duration(p.MinNoticeMinutes) * time.Minute)) {
		return fmt.Errorf("%w: start is in the past or within the minimum notice", actors.ErrInvalid)
	}
	if start.After(now.AddDate(0, 0, int(p.HorizonDays))) {
		return fmt.Errorf("%w: start is beyond the horizon", actors.ErrInvalid)
	}
	local := start.In(loc)
	step := p.SlotStepMinutes
	if step <= 0 {
		step = 15
	}
	minute := int32(local.Hour()*60 + local.Minute())
	if local.Second() != 0 || local.Nanosecond() != 0 || minute%step != 0 {
		return fmt.Errorf("%w: start is not aligned with the %d-minute step", actors.ErrInvalid, step)
	}
	for _, r := range hoursOn(p, local) {
		if minute >= r.StartMinute && minute+svc.DurationMinutes <= r.EndMinute {
			return nil
		}
	}
	return fmt.Errorf("%w: start is outside the provider's hours", actors.ErrInvalid)
}

// hoursOn returns the working ranges of the local date of t.
func hoursOn(p *bookingv1.Provider, t time.Time) []*bookingv1.TimeRange {
	date := t.Format("2006-01-02")
	for _, o := range p.DateOverrides {
		if o.Date == date {
			return o.Ranges
		}
	}
	if d := int(t.Weekday()); d < len(p.WeeklyHours) {
		return p.WeeklyHours[d].GetRanges()
	}
	return nil
}

// Cancel implements edge.Calendars.
func (c *Calendars) Cancel(_ context.Context, req *calendarv1.CancelRequest) (_ *bookingv1.Booking, err error) {
	if err := c.fail("Cancel"); err != nil {
		return nil, err
	}
	s := c.Store
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.appendAudit(req.GetAudit(), codeOf(err), c.now().UnixMilli()) }()
	b, ok := s.bookings[req.BookingId]
	if !ok || b.ProviderId != req.ProviderId {
		return nil, fmt.Errorf("%w: booking %s", actors.ErrNotFound, req.BookingId)
	}
	if b.Status != bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
		cancelBooking(b, "", c.now().UnixMilli())
	}
	return proto.CloneOf(b), nil
}

// Reschedule implements edge.Calendars.
func (c *Calendars) Reschedule(_ context.Context, req *calendarv1.RescheduleRequest) (_ *bookingv1.Booking, err error) {
	if err := c.fail("Reschedule"); err != nil {
		return nil, err
	}
	s := c.Store
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.appendAudit(req.GetAudit(), codeOf(err), c.now().UnixMilli()) }()
	if b, done, err := s.replay(req.IdempotencyKey, req.RequestHash); done {
		return b, err
	}
	b, ok := s.bookings[req.BookingId]
	if !ok || b.ProviderId != req.ProviderId {
		return nil, fmt.Errorf("%w: booking %s", actors.ErrNotFound, req.BookingId)
	}
	if b.Status != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED {
		return nil, fmt.Errorf("%w: booking %s is cancelled", actors.ErrInvalidTransition, b.Id)
	}
	p := s.providers[b.ProviderId]
	if err := s.judge(p, b.ClientId, req.ConsentPurpose, false, c.now().UnixMilli()); err != nil {
		return nil, err
	}
	svc, err := service(p, b.ServiceId)
	if err != nil {
		return nil, err
	}
	start := time.UnixMilli(req.StartMs)
	if err := c.offerable(p, svc, start); err != nil {
		return nil, err
	}
	end := start.Add(time.Duration(svc.DurationMinutes) * time.Minute)
	blocked := end.Add(time.Duration(svc.BufferMinutes) * time.Minute)
	if s.overlaps(p.Id, b.Id, start.UnixMilli(), blocked.UnixMilli()) {
		return nil, actors.ErrSlotTaken
	}
	b.StartMs, b.EndMs, b.BlockedUntilMs = start.UnixMilli(), end.UnixMilli(), blocked.UnixMilli()
	b.UpdatedAtMs = c.now().UnixMilli()
	s.remember(req.IdempotencyKey, req.RequestHash, b.Id, b.UpdatedAtMs)
	return proto.CloneOf(b), nil
}

// Availability implements edge.Calendars.
func (c *Calendars) Availability(_ context.Context, req *calendarv1.AvailabilityRequest) (*calendarv1.Reply, error) {
	if err := c.fail("Availability"); err != nil {
		return nil, err
	}
	s := c.Store
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.providers[req.ProviderId]
	if !ok {
		return nil, fmt.Errorf("%w: provider %s", actors.ErrNotFound, req.ProviderId)
	}
	svc, err := service(p, req.ServiceId)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(p.Timezone)
	if err != nil {
		return nil, fmt.Errorf("%w: provider zone", actors.ErrInvalid)
	}
	day, err := time.ParseInLocation("2006-01-02", req.FromDate, loc)
	if err != nil {
		return nil, fmt.Errorf("%w: from_date", actors.ErrInvalid)
	}
	step := p.SlotStepMinutes
	if step <= 0 {
		step = 15
	}
	reply := &calendarv1.Reply{Timezone: p.Timezone}
	for d := 0; d < int(req.Days); d++ {
		date := day.AddDate(0, 0, d)
		for _, r := range hoursOn(p, date) {
			for m := r.StartMinute; m+svc.DurationMinutes <= r.EndMinute; m += step {
				start := time.Date(date.Year(), date.Month(), date.Day(), int(m/60), int(m%60), 0, 0, loc)
				if c.offerable(p, svc, start) != nil {
					continue
				}
				end := start.Add(time.Duration(svc.DurationMinutes) * time.Minute)
				blocked := end.Add(time.Duration(svc.BufferMinutes) * time.Minute)
				if s.overlaps(p.Id, "", start.UnixMilli(), blocked.UnixMilli()) {
					continue
				}
				reply.Slots = append(reply.Slots, &calendarv1.Slot{StartMs: start.UnixMilli(), EndMs: end.UnixMilli()})
			}
		}
	}
	return reply, nil
}

// UpdateProvider implements edge.Calendars.
func (c *Calendars) UpdateProvider(_ context.Context, req *calendarv1.UpdateProviderRequest) (*bookingv1.Provider, error) {
	if err := c.fail("UpdateProvider"); err != nil {
		return nil, err
	}
	s := c.Store
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.idem[req.IdempotencyKey]; ok && req.IdempotencyKey != "" {
		if string(r.RequestHash) != string(req.RequestHash) {
			return nil, actors.ErrIdempotencyKeyReused
		}
		return proto.CloneOf(s.providers[r.ResourceId]), nil
	}
	cur, ok := s.providers[req.GetProvider().GetId()]
	if !ok {
		return nil, fmt.Errorf("%w: provider", actors.ErrNotFound)
	}
	p := proto.CloneOf(req.Provider)
	p.Version = cur.Version + 1
	s.providers[p.Id] = p
	s.provVer++
	s.remember(req.IdempotencyKey, req.RequestHash, p.Id, c.now().UnixMilli())
	return proto.CloneOf(p), nil
}
