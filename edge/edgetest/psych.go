package edgetest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/actors"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
)

// The psychology vertical's records in the doubles: consents, series, client
// keys, erasures and the hash-chained audit log, with the FSM's rules for the
// commands the edge proposes (storage/fsm*.go is the reference).

// apply applies cmd; s.mu is held.
func (s *Store) apply(cmd *bookingv1.Command) (*bookingv1.CommandResult, error) {
	at := cmd.GetProposedAtMs()
	switch op := cmd.GetOp().(type) {
	case *bookingv1.Command_CreateProvider:
		return s.applyProvider(cmd)
	case *bookingv1.Command_AppendAudit:
		return ok(&bookingv1.CommandResult{}), nil
	case *bookingv1.Command_GrantConsent:
		c := op.GrantConsent.GetConsent()
		if r, done := s.idemResult(cmd); done {
			if r.Code != bookingv1.ResultCode_RESULT_CODE_OK {
				return r, storage.ErrIdempotencyKeyReused
			}
			r.Consent = proto.CloneOf(s.consents[s.idem[cmd.IdempotencyKey].ResourceId])
			return r, nil
		}
		if c.GetId() == "" || c.GetClientId() == "" {
			return code(bookingv1.ResultCode_RESULT_CODE_INVALID), fmt.Errorf("%w: consent without id or client", storage.ErrInvalid)
		}
		if _, dup := s.consents[c.Id]; dup {
			return code(bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS), storage.ErrAlreadyExists
		}
		s.consents[c.Id] = proto.CloneOf(c)
		s.remember(cmd.IdempotencyKey, cmd.RequestHash, c.Id, at)
		return ok(&bookingv1.CommandResult{Consent: proto.CloneOf(c)}), nil
	case *bookingv1.Command_WithdrawConsent:
		w := op.WithdrawConsent
		c, found := s.consents[w.GetConsentId()]
		if !found || c.ClientId != w.GetClientId() {
			return code(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND), fmt.Errorf("%w: consent", storage.ErrNotFound)
		}
		res := ok(&bookingv1.CommandResult{})
		if c.WithdrawnAtMs == 0 {
			c.WithdrawnAtMs = at
			for _, b := range s.bookings {
				if b.ClientId == c.ClientId && b.Status == bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED &&
					b.StartMs > at && slices.Contains(w.GetVerticals(), b.Vertical) {
					cancelBooking(b, "consent_withdrawn", at)
					res.Bookings = append(res.Bookings, proto.CloneOf(b))
				}
			}
			sort.Slice(res.Bookings, func(i, j int) bool { return res.Bookings[i].Id < res.Bookings[j].Id })
		}
		res.Consent = proto.CloneOf(c)
		return res, nil
	case *bookingv1.Command_VerifyProvider:
		p, found := s.providers[op.VerifyProvider.GetProviderId()]
		if !found {
			return code(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND), fmt.Errorf("%w: provider", storage.ErrNotFound)
		}
		if p.VerifiedAtMs == 0 {
			p.VerifiedAtMs, p.VerifiedBy = at, op.VerifyProvider.GetVerifiedBy()
			p.Version++
			s.provVer++
		}
		return ok(&bookingv1.CommandResult{Provider: proto.CloneOf(p)}), nil
	case *bookingv1.Command_EraseHealthData:
		client := op.EraseHealthData.GetClientId()
		e := &bookingv1.Erasure{ClientId: client, ErasedAtMs: at}
		if k, found := s.keys[client]; found {
			e.KeyIds = append(e.KeyIds, k.KeyId)
			delete(s.keys, client)
		}
		for _, b := range s.bookings {
			if b.ClientId == client && b.SessionStatus != bookingv1.SessionStatus_SESSION_STATUS_UNSPECIFIED {
				b.Erased = true
			}
		}
		if _, found := s.erasures[client]; !found {
			s.erasures[client] = e
		}
		return ok(&bookingv1.CommandResult{}), nil
	}
	return code(bookingv1.ResultCode_RESULT_CODE_INVALID), fmt.Errorf("%w: edgetest.Store does not apply %T", storage.ErrInvalid, cmd.GetOp())
}

// idemResult answers a command whose idempotency key was seen; s.mu is held.
func (s *Store) idemResult(cmd *bookingv1.Command) (*bookingv1.CommandResult, bool) {
	r, found := s.idem[cmd.IdempotencyKey]
	if cmd.IdempotencyKey == "" || !found {
		return nil, false
	}
	if string(r.RequestHash) != string(cmd.RequestHash) {
		return code(bookingv1.ResultCode_RESULT_CODE_IDEMPOTENCY_MISMATCH), true
	}
	return ok(&bookingv1.CommandResult{}), true
}

func ok(r *bookingv1.CommandResult) *bookingv1.CommandResult {
	r.Code = bookingv1.ResultCode_RESULT_CODE_OK
	return r
}

func code(c bookingv1.ResultCode) *bookingv1.CommandResult { return &bookingv1.CommandResult{Code: c} }

// cancelBooking cancels b (a session too) with reason at atMs.
func cancelBooking(b *bookingv1.Booking, reason string, atMs int64) {
	b.Status = bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED
	b.CancelReason = reason
	b.UpdatedAtMs = atMs
	if b.SessionStatus != bookingv1.SessionStatus_SESSION_STATUS_UNSPECIFIED {
		b.SessionStatus = bookingv1.SessionStatus_SESSION_STATUS_CANCELLED
	}
}

// codeOf is the result code of an error of the doubles.
func codeOf(err error) bookingv1.ResultCode {
	switch {
	case err == nil:
		return bookingv1.ResultCode_RESULT_CODE_OK
	case isAny(err, actors.ErrSlotTaken, storage.ErrSlotTaken):
		return bookingv1.ResultCode_RESULT_CODE_SLOT_TAKEN
	case isAny(err, actors.ErrNotFound, storage.ErrNotFound):
		return bookingv1.ResultCode_RESULT_CODE_NOT_FOUND
	case strings.Contains(err.Error(), consentRefusal):
		return bookingv1.ResultCode_RESULT_CODE_CONSENT_REQUIRED
	case strings.Contains(err.Error(), unverifiedRefusal):
		return bookingv1.ResultCode_RESULT_CODE_PROVIDER_UNVERIFIED
	}
	return bookingv1.ResultCode_RESULT_CODE_INVALID
}

func isAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// The doubles' texts of the FSM's consent and verification refusals. Until
// actors has sentinels of its own for them, the doubles wrap actors.ErrInvalid
// (the edge pre-checks both, so the doubles refuse only on a race).
const (
	consentRefusal    = "consent required"
	unverifiedRefusal = "provider unverified"
)

// judge applies CreateBooking's verification and consent rules, in the FSM's
// order (verification first); s.mu is held.
func (s *Store) judge(p *bookingv1.Provider, clientID, purpose string, requireVerified bool, nowMs int64) error {
	if requireVerified && p.VerifiedAtMs == 0 {
		return fmt.Errorf("%w: %s", actors.ErrInvalid, unverifiedRefusal)
	}
	if purpose != "" && !s.activeConsent(clientID, purpose, p.Jurisdiction, nowMs) {
		return fmt.Errorf("%w: %s", actors.ErrInvalid, consentRefusal)
	}
	return nil
}

// activeConsent reports whether the client has an active consent; s.mu is held.
func (s *Store) activeConsent(clientID, purpose, jurisdiction string, nowMs int64) bool {
	for _, c := range s.consents {
		if c.ClientId == clientID && c.Purpose == purpose && c.Jurisdiction == jurisdiction &&
			c.WithdrawnAtMs == 0 && nowMs < c.ExpiresAtMs {
			return true
		}
	}
	return false
}

// appendAudit appends records with the outcome of result code rc, chained as
// storage/audit.go does; s.mu is held.
func (s *Store) appendAudit(records []*bookingv1.AuditRecord, rc bookingv1.ResultCode, atMs int64) {
	for _, r := range records {
		prev := make([]byte, sha256.Size)
		if n := len(s.audit); n > 0 {
			prev = s.audit[n-1].Hash
		}
		outcome := r.GetOutcome()
		if outcome == "" {
			outcome = outcomeName(rc)
		}
		e := &bookingv1.AuditEntry{Seq: uint64(len(s.audit) + 1), AtMs: atMs, Subject: r.GetSubject(), Role: r.GetRole(),
			Action: r.GetAction(), Object: r.GetObject(), Node: r.GetNode(), Outcome: outcome, PrevHash: prev}
		canon := binary.BigEndian.AppendUint64(nil, e.Seq)
		canon = binary.BigEndian.AppendUint64(canon, uint64(e.AtMs))
		for _, f := range []string{e.Subject, e.Role, e.Action, e.Object, e.Node, e.Outcome} {
			canon = binary.BigEndian.AppendUint32(canon, uint32(len(f)))
			canon = append(canon, f...)
		}
		h := sha256.Sum256(append(slices.Clone(prev), canon...))
		e.Hash = h[:]
		s.audit = append(s.audit, e)
	}
}

// outcomeName is the FSM's outcome word of a result code.
func outcomeName(rc bookingv1.ResultCode) string {
	if rc == bookingv1.ResultCode_RESULT_CODE_OK {
		return "ok"
	}
	return strings.ToLower(strings.TrimPrefix(rc.String(), "RESULT_CODE_"))
}

// Audit returns a copy of the audit log.
func (s *Store) Audit() []*bookingv1.AuditEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*bookingv1.AuditEntry, len(s.audit))
	for i, e := range s.audit {
		out[i] = proto.CloneOf(e)
	}
	return out
}

// PutConsent stores c as is (a copy).
func (s *Store) PutConsent(c *bookingv1.Consent) { put(s, s.consents, c.Id, c) }

// PutClientKey stores k as is (a copy).
func (s *Store) PutClientKey(k *bookingv1.ClientKey) { put(s, s.keys, k.ClientId, k) }

// PutBooking stores b as is (a copy).
func (s *Store) PutBooking(b *bookingv1.Booking) { put(s, s.bookings, b.Id, b) }

// Consent implements edge.Store.
func (s *Store) Consent(_ context.Context, id string) (*bookingv1.Consent, error) {
	return get(s, "Consent", s.consents, id, "consent")
}

// ClientConsents implements edge.Store: by id.
func (s *Store) ClientConsents(_ context.Context, clientID string) ([]*bookingv1.Consent, error) {
	if err := s.fail("ClientConsents"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*bookingv1.Consent
	for _, c := range s.consents {
		if c.ClientId == clientID {
			out = append(out, proto.CloneOf(c))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out, nil
}

// Series implements edge.Store.
func (s *Store) Series(_ context.Context, id string) (*bookingv1.Series, error) {
	return get(s, "Series", s.series, id, "series")
}

// ClientKey implements edge.Store.
func (s *Store) ClientKey(_ context.Context, clientID string) (*bookingv1.ClientKey, error) {
	return get(s, "ClientKey", s.keys, clientID, "client key")
}

// Erasure implements edge.Store.
func (s *Store) Erasure(_ context.Context, clientID string) (*bookingv1.Erasure, error) {
	return get(s, "Erasure", s.erasures, clientID, "erasure")
}

// AuditEntries implements edge.Store.
func (s *Store) AuditEntries(_ context.Context, f storage.AuditFilter) ([]*bookingv1.AuditEntry, uint64, error) {
	if err := s.fail("AuditEntries"); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	var out []*bookingv1.AuditEntry
	for _, e := range s.audit {
		if e.Seq <= f.After || (f.Object != "" && e.Object != f.Object) || (f.Subject != "" && e.Subject != f.Subject) {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].Seq, nil
		}
		out = append(out, proto.CloneOf(e))
	}
	return out, 0, nil
}

// BookSeries implements edge.Calendars: every occurrence at the same local wall
// time every every_days days in the provider's zone, judged as Book judges one
// (and against the others); any refusal refuses all, and slot conflicts are
// listed by start.
func (c *Calendars) BookSeries(_ context.Context, req *calendarv1.BookSeriesRequest) (reply *calendarv1.Reply, err error) {
	if err := c.fail("BookSeries"); err != nil {
		return nil, err
	}
	s := c.Store
	s.mu.Lock()
	defer s.mu.Unlock()
	now := c.now().UnixMilli()
	defer func() { s.appendAudit(req.GetAudit(), codeOf(err), now) }()
	if r, found := s.idem[req.IdempotencyKey]; found && req.IdempotencyKey != "" {
		if string(r.RequestHash) != string(req.RequestHash) {
			return &calendarv1.Reply{Error: calendarv1.ErrorCode_ERROR_CODE_IDEMPOTENCY_MISMATCH}, actors.ErrIdempotencyKeyReused
		}
		return s.seriesReply(s.series[r.ResourceId]), nil
	}
	p, found := s.providers[req.ProviderId]
	if !found {
		return &calendarv1.Reply{Error: calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND}, fmt.Errorf("%w: provider", actors.ErrNotFound)
	}
	if len(req.BookingIds) != int(req.Count) || req.Count < 1 || req.EveryDays < 1 {
		return &calendarv1.Reply{Error: calendarv1.ErrorCode_ERROR_CODE_INVALID}, fmt.Errorf("%w: series shape", actors.ErrInvalid)
	}
	if err := s.judge(p, req.ClientId, req.ConsentPurpose, req.RequireVerified, now); err != nil {
		return &calendarv1.Reply{Error: calendarv1.ErrorCode_ERROR_CODE_INVALID}, err
	}
	svc, err := service(p, req.ServiceId)
	if err != nil {
		return &calendarv1.Reply{Error: calendarv1.ErrorCode_ERROR_CODE_INVALID}, err
	}
	loc, err := time.LoadLocation(p.Timezone)
	if err != nil {
		return &calendarv1.Reply{Error: calendarv1.ErrorCode_ERROR_CODE_INVALID}, fmt.Errorf("%w: zone", actors.ErrInvalid)
	}
	first := time.UnixMilli(req.StartMs).In(loc)
	var bookings []*bookingv1.Booking
	var conflicts []int64
	for i := range int(req.Count) {
		start := first.AddDate(0, 0, i*int(req.EveryDays))
		if err := c.offerable(p, svc, start); err != nil {
			return &calendarv1.Reply{Error: calendarv1.ErrorCode_ERROR_CODE_INVALID}, fmt.Errorf("occurrence %d: %w", i+1, err)
		}
		end := start.Add(time.Duration(svc.DurationMinutes) * time.Minute)
		blocked := end.Add(time.Duration(svc.BufferMinutes) * time.Minute)
		b := &bookingv1.Booking{
			Id: req.BookingIds[i], ProviderId: p.Id, ServiceId: svc.Id, ClientId: req.ClientId,
			StartMs: start.UnixMilli(), EndMs: end.UnixMilli(), BlockedUntilMs: blocked.UnixMilli(),
			Price: proto.CloneOf(svc.Price), Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED,
			Vertical: p.Vertical, CreatedAtMs: now, UpdatedAtMs: now, SeriesId: req.SeriesId,
			SessionStatus: req.SessionStatus,
		}
		if s.overlaps(p.Id, "", b.StartMs, b.BlockedUntilMs) {
			conflicts = append(conflicts, b.StartMs)
		}
		bookings = append(bookings, b)
	}
	if len(conflicts) > 0 {
		return &calendarv1.Reply{Error: calendarv1.ErrorCode_ERROR_CODE_SLOT_TAKEN, Conflicts: conflicts}, actors.ErrSlotTaken
	}
	sr := &bookingv1.Series{Id: req.SeriesId, ProviderId: p.Id, ServiceId: svc.Id, ClientId: req.ClientId,
		EveryDays: req.EveryDays, BookingIds: slices.Clone(req.BookingIds), CreatedAtMs: now}
	for _, b := range bookings {
		s.seq++
		b.Version = uint64(s.seq)
		s.bookings[b.Id] = b
	}
	s.series[sr.Id] = sr
	s.remember(req.IdempotencyKey, req.RequestHash, sr.Id, now)
	return s.seriesReply(sr), nil
}

// seriesReply is a reply with sr and its occurrences; s.mu is held.
func (s *Store) seriesReply(sr *bookingv1.Series) *calendarv1.Reply {
	r := &calendarv1.Reply{Series: proto.CloneOf(sr)}
	for _, id := range sr.BookingIds {
		if b, found := s.bookings[id]; found {
			r.Bookings = append(r.Bookings, proto.CloneOf(b))
		}
	}
	return r
}

// CancelSeries implements edge.Calendars.
func (c *Calendars) CancelSeries(_ context.Context, req *calendarv1.CancelSeriesRequest) (_ *calendarv1.Reply, err error) {
	if err := c.fail("CancelSeries"); err != nil {
		return nil, err
	}
	s := c.Store
	s.mu.Lock()
	defer s.mu.Unlock()
	now := c.now().UnixMilli()
	defer func() { s.appendAudit(req.GetAudit(), codeOf(err), now) }()
	sr, found := s.series[req.SeriesId]
	if !found || sr.ProviderId != req.ProviderId {
		return &calendarv1.Reply{Error: calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND}, fmt.Errorf("%w: series", actors.ErrNotFound)
	}
	from := req.FromMs
	if from == 0 {
		from = now
	}
	r := &calendarv1.Reply{Series: proto.CloneOf(sr)}
	for _, id := range sr.BookingIds {
		b := s.bookings[id]
		if b != nil && b.Status == bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED && b.StartMs >= from {
			cancelBooking(b, "series_cancelled", now)
			r.Bookings = append(r.Bookings, proto.CloneOf(b))
		}
	}
	return r, nil
}

// Refresh implements edge.Calendars: it records the provider (Refreshed).
func (c *Calendars) Refresh(_ context.Context, providerID string) error {
	if err := c.fail("Refresh"); err != nil {
		return err
	}
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	c.refreshed = append(c.refreshed, providerID)
	return nil
}

// Refreshed lists the providers Refresh was called for, in order.
func (c *Calendars) Refreshed() []string {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	return slices.Clone(c.refreshed)
}

// Sessions is an in-memory edge.Sessions over a Store, with the session actor's
// rules: the booking's client, its provider and operators read the session; the
// treating provider alone moves it and reads and writes its notes; an erased
// client's notes are gone (ERASED); every request appends its audit record,
// allowed or refused. Notes are kept in memory in plain text (a double: the
// real actor seals them).
type Sessions struct {
	Store *Store
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Fail, when set, is asked before every call ("Do", "ClientNotes").
	Fail func(op string) error

	mu    sync.Mutex
	notes map[string]note // booking id →
}

type note struct {
	text string
	at   int64
}

// NewSessions returns Sessions over st with the clock now.
func NewSessions(st *Store, now func() time.Time) *Sessions {
	return &Sessions{Store: st, Now: now, notes: map[string]note{}}
}

func (x *Sessions) now() int64 {
	if x.Now != nil {
		return x.Now().UnixMilli()
	}
	return time.Now().UnixMilli()
}

// legalMoves are the session moves SetSessionStatus allows.
var legalMoves = map[bookingv1.SessionStatus][]bookingv1.SessionStatus{
	bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED:  {bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN, bookingv1.SessionStatus_SESSION_STATUS_NO_SHOW},
	bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN: {bookingv1.SessionStatus_SESSION_STATUS_COMPLETED},
}

// Do implements edge.Sessions.
func (x *Sessions) Do(_ context.Context, req *calendarv1.SessionRequest) (*calendarv1.SessionReply, error) {
	if x.Fail != nil {
		if err := x.Fail("Do"); err != nil {
			return nil, err
		}
	}
	s := x.Store
	s.mu.Lock()
	defer s.mu.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	now := x.now()
	action := map[bool]string{true: "notes.read", false: "session.read"}[req.GetGetNotes() != nil]
	switch {
	case req.GetMove() != nil:
		action = "session.move"
	case req.GetPutNotes() != nil:
		action = "notes.write"
	}
	refuse := func(code calendarv1.ErrorCode, outcome string) (*calendarv1.SessionReply, error) {
		s.appendAudit([]*bookingv1.AuditRecord{{Subject: req.Subject, Role: req.Role, Action: action,
			Object: req.BookingId, Node: req.Node, Outcome: outcome}}, bookingv1.ResultCode_RESULT_CODE_OK, now)
		return &calendarv1.SessionReply{Error: code, Detail: outcome}, nil
	}
	b, found := s.bookings[req.GetBookingId()]
	if !found {
		return refuse(calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND, "not_found")
	}
	treating := req.Role == "provider" && req.Subject == b.ProviderId
	owner := treating || (req.Role == "client" && req.Subject == b.ClientId) || req.Role == "operator"
	_, erased := s.erasures[b.ClientId]
	reply := &calendarv1.SessionReply{}
	switch op := req.GetOp().(type) {
	case *calendarv1.SessionRequest_Get:
		if !owner {
			return refuse(calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN, "forbidden")
		}
	case *calendarv1.SessionRequest_Move:
		if !treating {
			return refuse(calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN, "forbidden")
		}
		if !slices.Contains(legalMoves[b.SessionStatus], op.Move.GetStatus()) || b.Status != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED {
			return refuse(calendarv1.ErrorCode_ERROR_CODE_INVALID_TRANSITION, "invalid_transition")
		}
		b.SessionStatus, b.UpdatedAtMs = op.Move.GetStatus(), now
	case *calendarv1.SessionRequest_PutNotes, *calendarv1.SessionRequest_GetNotes:
		if !treating {
			return refuse(calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN, "forbidden")
		}
		if erased {
			return refuse(calendarv1.ErrorCode_ERROR_CODE_ERASED, "erased")
		}
		if put := req.GetPutNotes(); put != nil {
			x.notes[b.Id] = note{text: put.GetText(), at: now}
		}
		n := x.notes[b.Id]
		reply.Notes, reply.NotesUpdatedAtMs = n.text, n.at
	default:
		return refuse(calendarv1.ErrorCode_ERROR_CODE_INVALID, "invalid")
	}
	s.appendAudit([]*bookingv1.AuditRecord{{Subject: req.Subject, Role: req.Role, Action: action,
		Object: req.BookingId, Node: req.Node}}, bookingv1.ResultCode_RESULT_CODE_OK, now)
	reply.Booking = proto.CloneOf(b)
	return reply, nil
}

// ClientNotes implements edge.Sessions: the notes of the client's sessions, by
// booking id; none once the client's health data was erased. Like the real
// one, it records nothing: the edge's "export" record covers the read.
func (x *Sessions) ClientNotes(_ context.Context, clientID string) ([]*calendarv1.SessionReply, error) {
	if x.Fail != nil {
		if err := x.Fail("ClientNotes"); err != nil {
			return nil, err
		}
	}
	s := x.Store
	s.mu.Lock()
	defer s.mu.Unlock()
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, erased := s.erasures[clientID]; erased {
		return nil, nil
	}
	var out []*calendarv1.SessionReply
	for id, n := range x.notes {
		b := s.bookings[id]
		if b == nil || b.ClientId != clientID {
			continue
		}
		out = append(out, &calendarv1.SessionReply{Booking: proto.CloneOf(b), Notes: n.text, NotesUpdatedAtMs: n.at})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Booking.Id < out[j].Booking.Id })
	return out, nil
}
