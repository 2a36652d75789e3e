package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

const (
	day        = 24 * time.Hour
	psyPurpose = "psychology-care"
	psyVert    = "psychology"
)

const (
	codeOK          = bookingv1.ResultCode_RESULT_CODE_OK
	codeSlotTaken   = bookingv1.ResultCode_RESULT_CODE_SLOT_TAKEN
	codeNotFound    = bookingv1.ResultCode_RESULT_CODE_NOT_FOUND
	codeMismatch    = bookingv1.ResultCode_RESULT_CODE_IDEMPOTENCY_MISMATCH
	codeTransition  = bookingv1.ResultCode_RESULT_CODE_INVALID_TRANSITION
	codeExists      = bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS
	codeInvalid     = bookingv1.ResultCode_RESULT_CODE_INVALID
	codeConsent     = bookingv1.ResultCode_RESULT_CODE_CONSENT_REQUIRED
	codeUnverified  = bookingv1.ResultCode_RESULT_CODE_PROVIDER_UNVERIFIED
	codeErased      = bookingv1.ResultCode_RESULT_CODE_ERASED
	codeStale       = bookingv1.ResultCode_RESULT_CODE_STALE
	sessScheduled   = bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED
	sessCheckedIn   = bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN
	sessCompleted   = bookingv1.SessionStatus_SESSION_STATUS_COMPLETED
	sessNoShow      = bookingv1.SessionStatus_SESSION_STATUS_NO_SHOW
	sessCancelled   = bookingv1.SessionStatus_SESSION_STATUS_CANCELLED
	statusConfirmed = bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED
	statusCancelled = bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED
)

// erasedLog records OnErase calls.
type erasedLog struct {
	mu      sync.Mutex
	clients []string
	keys    [][]string
}

func (e *erasedLog) record(c string, keyIDs []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.clients = append(e.clients, c)
	e.keys = append(e.keys, slices.Clone(keyIDs))
}

func (e *erasedLog) keyLists() [][]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.keys)
}

func (e *erasedLog) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.clients)
}

// newPsychSeq is a test FSM of jurisdiction "ar" whose OnErase calls go to
// the returned log.
func newPsychSeq(t *testing.T) (*fsmSeq, *erasedLog) {
	t.Helper()
	log := &erasedLog{}
	fsm, err := storage.OpenTestFSMWith(filepath.Join(t.TempDir(), "fsm.db"), "ar", log.record)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fsm.Close() })
	return &fsmSeq{t: t, fsm: fsm}, log
}

// want applies cmd and fails unless its result has code.
func (s *fsmSeq) want(code bookingv1.ResultCode, cmd *bookingv1.Command) *bookingv1.CommandResult {
	s.t.Helper()
	r := s.apply(cmd)
	if r.Code != code {
		s.t.Fatalf("%T: got %v (%s), want %v", cmd.Op, r.Code, r.Detail, code)
	}
	return r
}

func (s *fsmSeq) booking(id string) *bookingv1.Booking {
	s.t.Helper()
	v, ok := s.dump()["bookings"][id]
	if !ok {
		s.t.Fatalf("booking %s missing", id)
	}
	b := new(bookingv1.Booking)
	if err := proto.Unmarshal([]byte(v), b); err != nil {
		s.t.Fatal(err)
	}
	return b
}

// cmdAt wraps op in a command proposed at T0+at.
func cmdAt(at time.Duration, op any) *bookingv1.Command {
	c := &bookingv1.Command{ProposedAtMs: st.At(at)}
	switch o := op.(type) {
	case *bookingv1.GrantConsent:
		c.Op = &bookingv1.Command_GrantConsent{GrantConsent: o}
	case *bookingv1.WithdrawConsent:
		c.Op = &bookingv1.Command_WithdrawConsent{WithdrawConsent: o}
	case *bookingv1.VerifyProvider:
		c.Op = &bookingv1.Command_VerifyProvider{VerifyProvider: o}
	case *bookingv1.CreateSeries:
		c.Op = &bookingv1.Command_CreateSeries{CreateSeries: o}
	case *bookingv1.CancelSeries:
		c.Op = &bookingv1.Command_CancelSeries{CancelSeries: o}
	case *bookingv1.SetSessionStatus:
		c.Op = &bookingv1.Command_SetSessionStatus{SetSessionStatus: o}
	case *bookingv1.PutClientKey:
		c.Op = &bookingv1.Command_PutClientKey{PutClientKey: o}
	case *bookingv1.PutNote:
		c.Op = &bookingv1.Command_PutNote{PutNote: o}
	case *bookingv1.EraseHealthData:
		c.Op = &bookingv1.Command_EraseHealthData{EraseHealthData: o}
	case *bookingv1.AppendAudit:
		c.Op = &bookingv1.Command_AppendAudit{AppendAudit: o}
	case *bookingv1.CreateBooking:
		c.Op = &bookingv1.Command_CreateBooking{CreateBooking: o}
	case *bookingv1.CancelBooking:
		c.Op = &bookingv1.Command_CancelBooking{CancelBooking: o}
	case *bookingv1.RescheduleBooking:
		c.Op = &bookingv1.Command_RescheduleBooking{RescheduleBooking: o}
	default:
		panic(fmt.Sprintf("cmdAt: %T", op))
	}
	return c
}

func withAudit(c *bookingv1.Command, recs ...*bookingv1.AuditRecord) *bookingv1.Command {
	c.Audit = append(c.Audit, recs...)
	return c
}

// psyProvider is a licensed psychology provider (not verified).
func psyProvider(id string) *bookingv1.Provider {
	p := st.Provider(id)
	p.Vertical = psyVert
	p.License = &bookingv1.License{Number: "MN-1234", Issuer: "colegio-ba"}
	return p
}

// session is a scheduled psychology session of client with provider over
// [T0+start, T0+start+50m).
func session(id, provider, client string, start time.Duration) *bookingv1.Booking {
	b := st.Booking(id, provider, start, start+50*time.Minute, start+time.Hour)
	b.ClientId = client
	b.Vertical = psyVert
	b.SessionStatus = sessScheduled
	return b
}

// book creates b at T0-1h requiring a psychology consent.
func book(b *bookingv1.Booking) *bookingv1.Command {
	return cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: b, ConsentPurpose: psyPurpose})
}

// consent is an "ar" psychology consent granted at T0+granted, lasting 730 days.
func consent(id, client string, granted time.Duration) *bookingv1.Consent {
	return &bookingv1.Consent{Id: id, ClientId: client, Purpose: psyPurpose, Jurisdiction: "ar", TextVersion: "2026-01",
		GrantedAtMs: st.At(granted), ExpiresAtMs: st.At(granted + 730*day)}
}

func grant(at time.Duration, c *bookingv1.Consent) *bookingv1.Command {
	return cmdAt(at, &bookingv1.GrantConsent{Consent: c})
}

func TestFSM_GrantConsent(t *testing.T) {
	s, _ := newPsychSeq(t)
	mut := func(f func(c *bookingv1.Consent)) *bookingv1.Consent {
		c := consent("cns_x", "c1", -day)
		f(c)
		return c
	}
	tests := []struct {
		name string
		c    *bookingv1.Consent
		want bookingv1.ResultCode
	}{
		{"nil", nil, codeInvalid},
		{"no id", mut(func(c *bookingv1.Consent) { c.Id = "" }), codeInvalid},
		{"no client", mut(func(c *bookingv1.Consent) { c.ClientId = "" }), codeInvalid},
		{"no purpose", mut(func(c *bookingv1.Consent) { c.Purpose = "" }), codeInvalid},
		{"no text version", mut(func(c *bookingv1.Consent) { c.TextVersion = "" }), codeInvalid},
		{"other jurisdiction", mut(func(c *bookingv1.Consent) { c.Jurisdiction = "uy" }), codeInvalid},
		{"expires before granted", mut(func(c *bookingv1.Consent) { c.ExpiresAtMs = c.GrantedAtMs }), codeInvalid},
		{"already withdrawn", mut(func(c *bookingv1.Consent) { c.WithdrawnAtMs = c.GrantedAtMs }), codeInvalid},
		{"ok", consent("cns_ok", "c1", -day), codeOK},
		{"same id again", consent("cns_ok", "c2", -day), codeExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			r := s.want(tc.want, grant(0, tc.c))
			if tc.want == codeOK && !proto.Equal(r.Consent, tc.c) {
				t.Fatalf("stored %v, want %v", r.Consent, tc.c)
			}
		})
	}
	s.t = t
	if n := len(s.dump()["consents"]); n != 1 {
		t.Fatalf("%d consents stored, want 1", n)
	}
	// granted_at 0: the entry time.
	c := consent("cns_now", "c1", 0)
	c.GrantedAtMs = 0
	if r := s.want(codeOK, grant(time.Hour, c)); r.Consent.GrantedAtMs != st.At(time.Hour) {
		t.Fatalf("granted_at %d, want the entry time %d", r.Consent.GrantedAtMs, st.At(time.Hour))
	}
}

func TestConsentStatus(t *testing.T) {
	c := consent("c", "x", 0)
	for _, tc := range []struct {
		now  int64
		w    int64
		want string
	}{
		{st.At(time.Hour), 0, storage.ConsentActive},
		{c.ExpiresAtMs - 1, 0, storage.ConsentActive},
		{c.ExpiresAtMs, 0, storage.ConsentExpired},
		{st.At(time.Hour), st.At(time.Minute), storage.ConsentWithdrawn},
		{c.ExpiresAtMs + 1, st.At(time.Minute), storage.ConsentWithdrawn},
	} {
		c.WithdrawnAtMs = tc.w
		if got := storage.ConsentStatus(c, tc.now); got != tc.want {
			t.Errorf("now %d withdrawn %d: %s, want %s", tc.now, tc.w, got, tc.want)
		}
	}
}

// TestFSM_BookingGate: a booking that asks for a consent purpose or a
// verified provider is refused with the 422-worthy codes when the check
// fails, before the slot is looked at.
func TestFSM_BookingGate(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *fsmSeq)
		cmd   *bookingv1.Command
		want  bookingv1.ResultCode
	}{
		{"no consent", nil, book(session("b", "psy", "c1", 0)), codeConsent},
		{"active consent", func(s *fsmSeq) { s.ok(grant(-2*time.Hour, consent("k1", "c1", -day))) },
			book(session("b", "psy", "c1", 0)), codeOK},
		{"expired consent", func(s *fsmSeq) { s.ok(grant(-2*time.Hour, consent("k1", "c1", -731*day))) },
			book(session("b", "psy", "c1", 0)), codeConsent},
		{"expires at the entry time", func(s *fsmSeq) {
			c := consent("k1", "c1", -day)
			c.ExpiresAtMs = st.At(-time.Hour)
			s.ok(grant(-2*time.Hour, c))
		}, book(session("b", "psy", "c1", 0)), codeConsent},
		{"withdrawn consent", func(s *fsmSeq) {
			s.ok(grant(-3*time.Hour, consent("k1", "c1", -day)))
			s.ok(cmdAt(-2*time.Hour, &bookingv1.WithdrawConsent{ClientId: "c1", ConsentId: "k1", Verticals: []string{psyVert}}))
		}, book(session("b", "psy", "c1", 0)), codeConsent},
		{"consent of another purpose", func(s *fsmSeq) {
			c := consent("k1", "c1", -day)
			c.Purpose = "coaching-care"
			s.ok(grant(-2*time.Hour, c))
		}, book(session("b", "psy", "c1", 0)), codeConsent},
		{"consent of another client", func(s *fsmSeq) { s.ok(grant(-2*time.Hour, consent("k1", "c2", -day))) },
			book(session("b", "psy", "c1", 0)), codeConsent},
		{"consent granted later than the entry", func(s *fsmSeq) {
			s.ok(grant(-2*time.Hour, consent("k1", "c1", -day)))
		}, cmdAt(-3*time.Hour, &bookingv1.CreateBooking{Booking: session("b", "psy", "c1", 0), ConsentPurpose: psyPurpose}), codeOK},
		{"no purpose asked", nil, cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("b", "psy", "c1", 0)}), codeOK},
		{"consent before slot", func(s *fsmSeq) {
			s.ok(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("other", "psy", "c9", 0)}))
		}, book(session("b", "psy", "c1", 0)), codeConsent},
		{"slot after consent", func(s *fsmSeq) {
			s.ok(grant(-2*time.Hour, consent("k1", "c1", -day)))
			s.ok(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("other", "psy", "c9", 0)}))
		}, book(session("b", "psy", "c1", 0)), codeSlotTaken},
		{"unverified provider", func(s *fsmSeq) { s.ok(grant(-2*time.Hour, consent("k1", "c1", -day))) },
			cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("b", "psy", "c1", 0), ConsentPurpose: psyPurpose, RequireVerified: true}),
			codeUnverified},
		// Verification before consent: an unverified provider learns nothing of
		// the client's consents (review9 finding 3).
		{"unverified provider, client without consent", nil,
			cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("b", "psy", "c1", 0), ConsentPurpose: psyPurpose, RequireVerified: true}),
			codeUnverified},
		{"unverified before slot", func(s *fsmSeq) {
			s.ok(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("other", "psy", "c9", 0)}))
		}, cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("b", "psy", "c1", 0), RequireVerified: true}), codeUnverified},
		{"verified provider", func(s *fsmSeq) {
			s.ok(grant(-2*time.Hour, consent("k1", "c1", -day)))
			s.ok(cmdAt(-2*time.Hour, &bookingv1.VerifyProvider{ProviderId: "psy", VerifiedBy: "op1"}))
		}, cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("b", "psy", "c1", 0), ConsentPurpose: psyPurpose, RequireVerified: true}),
			codeOK},
		{"session must start scheduled", nil, func() *bookingv1.Command {
			b := session("b", "psy", "c1", 0)
			b.SessionStatus = sessCompleted
			return cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: b})
		}(), codeInvalid},
		{"series id is not set by create_booking", nil, func() *bookingv1.Command {
			b := session("b", "psy", "c1", 0)
			b.SeriesId = "srs_x"
			return cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: b})
		}(), codeInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newPsychSeq(t)
			s.ok(st.CreateProvider(psyProvider("psy")))
			if tc.setup != nil {
				tc.setup(s)
			}
			before := len(s.dump()["bookings"])
			r := s.want(tc.want, tc.cmd)
			after := len(s.dump()["bookings"])
			if (tc.want == codeOK) != (after == before+1) {
				t.Fatalf("bookings %d → %d for %v", before, after, r.Code)
			}
			if tc.want == codeOK && r.Booking.SessionStatus != sessScheduled {
				t.Fatalf("session status %v", r.Booking.SessionStatus)
			}
		})
	}
}

// TestFSM_RescheduleConsentGate: a RescheduleBooking needs, at its entry time
// and before the slot, an active consent for the purpose the booking was
// created under (stored on it by the FSM) and for the one the proposer names
// (review9 finding 2: a session that survived its client's withdrawal, having
// started, could be moved into the future without consent).
func TestFSM_RescheduleConsentGate(t *testing.T) {
	move := func(at, start time.Duration, purpose string) *bookingv1.Command {
		return cmdAt(at, &bookingv1.RescheduleBooking{BookingId: "b", StartMs: st.At(start),
			EndMs: st.At(start + 50*time.Minute), BlockedUntilMs: st.At(start + time.Hour), ConsentPurpose: purpose})
	}
	withdraw := func(at time.Duration) func(s *fsmSeq) {
		return func(s *fsmSeq) {
			s.ok(cmdAt(at, &bookingv1.WithdrawConsent{ClientId: "c1", ConsentId: "k1", Verticals: []string{psyVert}}))
		}
	}
	tests := []struct {
		name   string
		create *bookingv1.Command
		setup  func(s *fsmSeq)
		cmd    *bookingv1.Command
		want   bookingv1.ResultCode
	}{
		{"active consent", book(session("b", "psy", "c1", 0)), nil, move(time.Minute, 7*day, ""), codeOK},
		{"withdrawn after the session started", book(session("b", "psy", "c1", 0)), withdraw(20 * time.Minute),
			move(21*time.Minute, 7*day, ""), codeConsent},
		{"withdrawn, proposer names the purpose", book(session("b", "psy", "c1", 0)), withdraw(20 * time.Minute),
			move(21*time.Minute, 7*day, psyPurpose), codeConsent},
		{"expired at the entry time", book(session("b", "psy", "c1", 0)), nil, move(731*day, 738*day, ""), codeConsent},
		{"consent before slot", book(session("b", "psy", "c1", 0)), func(s *fsmSeq) {
			withdraw(20 * time.Minute)(s)
			s.ok(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("other", "psy", "c9", 7*day)}))
		}, move(21*time.Minute, 7*day, ""), codeConsent},
		{"created without a purpose", cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("b", "psy", "c2", 0)}), nil,
			move(time.Minute, 7*day, ""), codeOK},
		{"created without a purpose, proposer names one", cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("b", "psy", "c2", 0)}), nil,
			move(time.Minute, 7*day, psyPurpose), codeConsent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newPsychSeq(t)
			s.ok(st.CreateProvider(psyProvider("psy")))
			s.ok(grant(-2*time.Hour, consent("k1", "c1", -day)))
			r := s.ok(tc.create)
			if got, want := r.Booking.ConsentPurpose, tc.create.GetCreateBooking().ConsentPurpose; got != want {
				t.Fatalf("stored consent_purpose %q, want %q", got, want)
			}
			if tc.setup != nil {
				tc.setup(s)
			}
			before := s.booking("b")
			s.want(tc.want, tc.cmd)
			after := s.booking("b")
			if moved := after.StartMs != before.StartMs; moved != (tc.want == codeOK) {
				t.Fatalf("start %d → %d for %v", before.StartMs, after.StartMs, tc.want)
			}
		})
	}
}

func TestFSM_VerifyProvider(t *testing.T) {
	s, _ := newPsychSeq(t)
	s.ok(st.CreateProvider(psyProvider("psy")))
	s.ok(st.CreateProvider(st.Provider("barber")))
	s.want(codeNotFound, cmdAt(0, &bookingv1.VerifyProvider{ProviderId: "nobody", VerifiedBy: "op1"}))
	s.want(codeInvalid, cmdAt(0, &bookingv1.VerifyProvider{ProviderId: "psy"}))
	s.want(codeInvalid, cmdAt(0, &bookingv1.VerifyProvider{ProviderId: "barber", VerifiedBy: "op1"}))
	r := s.want(codeOK, cmdAt(time.Hour, &bookingv1.VerifyProvider{ProviderId: "psy", VerifiedBy: "op1"}))
	p := r.Provider
	if p.VerifiedAtMs != st.At(time.Hour) || p.VerifiedBy != "op1" || p.Version != 2 || p.License.GetNumber() != "MN-1234" {
		t.Fatalf("verified provider %v", p)
	}
	again := s.want(codeOK, cmdAt(2*time.Hour, &bookingv1.VerifyProvider{ProviderId: "psy", VerifiedBy: "op2"}))
	if !proto.Equal(again.Provider, p) {
		t.Fatalf("second verification changed the provider: %v", again.Provider)
	}
	// An update keeps licence and verification.
	upd := proto.Clone(p).(*bookingv1.Provider)
	upd.Name, upd.License, upd.VerifiedAtMs = "renamed", nil, 0
	u := s.ok(&bookingv1.Command{ProposedAtMs: st.At(3 * time.Hour), Op: &bookingv1.Command_UpdateProvider{UpdateProvider: &bookingv1.UpdateProvider{Provider: upd}}})
	if u.Provider.VerifiedAtMs != p.VerifiedAtMs || u.Provider.License.GetNumber() != "MN-1234" {
		t.Fatalf("update lost verification: %v", u.Provider)
	}
}

// seriesOf returns occurrences of srs for client c1 with provider p at the
// given offsets from T0, 30 minutes each.
func seriesOf(id, p string, starts ...time.Duration) *bookingv1.CreateSeries {
	op := &bookingv1.CreateSeries{Series: &bookingv1.Series{Id: id, ProviderId: p, ServiceId: "cut", ClientId: "client1", EveryDays: 7}}
	for i, s := range starts {
		op.Bookings = append(op.Bookings, st.Booking(fmt.Sprintf("%s-%d", id, i), p, s, s+30*time.Minute, s+30*time.Minute))
	}
	return op
}

// TestFSM_SeriesAllOrNone: a series with occurrences colliding with a stored
// booking and with each other books nothing and lists exactly the colliding
// starts; a clean one books every occurrence; CancelSeries cancels the rest.
func TestFSM_SeriesAllOrNone(t *testing.T) {
	s, _ := newPsychSeq(t)
	s.ok(st.CreateProvider(st.Provider("p")))
	s.ok(st.CreateBooking(st.Booking("stored", "p", 7*day+15*time.Minute, 7*day+45*time.Minute, 7*day+45*time.Minute)))
	before := s.dump()

	bad := seriesOf("srs_1", "p", 0, 7*day, 14*day, 14*day+20*time.Minute, 21*day)
	r := s.want(codeSlotTaken, withAudit(cmdAt(0, bad), &bookingv1.AuditRecord{Subject: "client1", Role: "client", Action: "series.create", Object: "srs_1"}))
	want := []int64{st.At(7 * day), st.At(14 * day), st.At(14*day + 20*time.Minute)}
	if !slices.Equal(r.Conflicts, want) {
		t.Fatalf("conflicts %v, want %v", r.Conflicts, want)
	}
	after := s.dump()
	for _, b := range []string{"bookings", "provider_time", "client_bookings", "series", "idempotency"} {
		if len(after[b]) != len(before[b]) {
			t.Fatalf("refused series wrote to %s: %d → %d records", b, len(before[b]), len(after[b]))
		}
	}
	if len(after["audit"]) != 1 {
		t.Fatalf("refused series left %d audit entries, want 1", len(after["audit"]))
	}

	// Invalid series change nothing either.
	for name, op := range map[string]*bookingv1.CreateSeries{
		"one occurrence": seriesOf("srs_x", "p", 30*day),
		"53 occurrences": seriesOf("srs_x", "p", func() []time.Duration {
			var d []time.Duration
			for i := range 53 {
				d = append(d, 40*day+time.Duration(i)*7*day)
			}
			return d
		}()...),
		"other client": func() *bookingv1.CreateSeries {
			o := seriesOf("srs_x", "p", 30*day, 37*day)
			o.Bookings[1].ClientId = "c2"
			return o
		}(),
		"repeated id": func() *bookingv1.CreateSeries {
			o := seriesOf("srs_x", "p", 30*day, 37*day)
			o.Bookings[1].Id = o.Bookings[0].Id
			return o
		}(),
		"every 0 days": func() *bookingv1.CreateSeries {
			o := seriesOf("srs_x", "p", 30*day, 37*day)
			o.Series.EveryDays = 0
			return o
		}(),
		"nil occurrence": func() *bookingv1.CreateSeries {
			o := seriesOf("srs_x", "p", 30*day, 37*day)
			o.Bookings[1] = nil
			return o
		}(),
		"bad times": func() *bookingv1.CreateSeries {
			o := seriesOf("srs_x", "p", 30*day, 37*day)
			o.Bookings[1].EndMs = 0
			return o
		}(),
		"other service": func() *bookingv1.CreateSeries {
			o := seriesOf("srs_x", "p", 30*day, 37*day)
			o.Bookings[1].ServiceId = "beard"
			return o
		}(),
		"stored id again": func() *bookingv1.CreateSeries {
			o := seriesOf("srs_x", "p", 30*day, 37*day)
			o.Bookings[1].Id = "stored"
			return o
		}(),
	} {
		r := s.apply(cmdAt(0, op))
		if r.Code == codeOK || r.Code == codeSlotTaken {
			t.Fatalf("%s: %v", name, r.Code)
		}
	}
	if got := s.dump(); len(got["bookings"]) != len(before["bookings"]) || len(got["series"]) != 0 {
		t.Fatal("an invalid series wrote something")
	}
	// Consent is judged before the slots.
	needs := seriesOf("srs_c", "p", 0, 7*day)
	needs.ConsentPurpose = psyPurpose
	s.want(codeConsent, cmdAt(0, needs))

	good := seriesOf("srs_2", "p", 0, 7*day+time.Hour, 14*day, 21*day)
	r = s.want(codeOK, st.WithKey(cmdAt(time.Hour, good), "k-srs", "h"))
	if len(r.Bookings) != 4 || r.Series.CreatedAtMs != st.At(time.Hour) ||
		!slices.Equal(r.Series.BookingIds, []string{"srs_2-0", "srs_2-1", "srs_2-2", "srs_2-3"}) {
		t.Fatalf("series %v with %d bookings", r.Series, len(r.Bookings))
	}
	for _, b := range r.Bookings {
		if b.SeriesId != "srs_2" || b.Status != statusConfirmed || b.Version != 1 {
			t.Fatalf("occurrence %v", b)
		}
	}
	if len(s.dump()["provider_time"]) != 5 {
		t.Fatal("occurrences missing from the time index")
	}
	replay := s.want(codeOK, st.WithKey(cmdAt(2*time.Hour, good), "k-srs", "h"))
	if !proto.Equal(replay.Series, r.Series) || len(replay.Bookings) != 4 {
		t.Fatalf("replay %v", replay)
	}

	// Cancel from the third occurrence on.
	c := s.want(codeOK, cmdAt(2*time.Hour, &bookingv1.CancelSeries{SeriesId: "srs_2", FromMs: st.At(14 * day)}))
	var ids []string
	for _, b := range c.Bookings {
		ids = append(ids, b.Id)
		if b.Status != statusCancelled || b.CancelReason != storage.CancelReasonSeriesCancelled || b.UpdatedAtMs != st.At(2*time.Hour) {
			t.Fatalf("cancelled occurrence %v", b)
		}
	}
	if !slices.Equal(ids, []string{"srs_2-2", "srs_2-3"}) {
		t.Fatalf("cancelled %v", ids)
	}
	if b := s.booking("srs_2-1"); b.Status != statusConfirmed {
		t.Fatalf("earlier occurrence %v", b)
	}
	// from 0 = the entry time: the second occurrence (T0+7d+1h) is after T0+3h.
	c = s.want(codeOK, cmdAt(3*time.Hour, &bookingv1.CancelSeries{SeriesId: "srs_2"}))
	if len(c.Bookings) != 1 || c.Bookings[0].Id != "srs_2-1" {
		t.Fatalf("cancel from the entry time cancelled %v", c.Bookings)
	}
	s.want(codeNotFound, cmdAt(3*time.Hour, &bookingv1.CancelSeries{SeriesId: "srs_none"}))
	s.want(codeInvalid, cmdAt(3*time.Hour, &bookingv1.CancelSeries{SeriesId: "srs_2", FromMs: -1}))
	s.want(codeExists, cmdAt(3*time.Hour, seriesOf("srs_2", "p", 60*day, 67*day)))
}

// TestFSM_WithdrawConsent: withdrawing cancels only the client's confirmed
// future bookings of the listed verticals, with cancel_reason
// consent_withdrawn.
func TestFSM_WithdrawConsent(t *testing.T) {
	s, _ := newPsychSeq(t)
	s.ok(st.CreateProvider(psyProvider("psy")))
	s.ok(st.CreateProvider(st.Provider("bar")))
	s.ok(grant(-2*time.Hour, consent("k1", "c1", -day)))
	s.ok(grant(-2*time.Hour, consent("k2", "c2", -day)))
	s.ok(book(session("past", "psy", "c1", -50*time.Minute)))
	s.ok(book(session("soon", "psy", "c1", time.Hour)))
	s.ok(book(session("later", "psy", "c1", 48*time.Hour)))
	s.ok(book(session("gone", "psy", "c1", 5*time.Hour)))
	s.ok(st.CancelBooking("gone"))
	s.ok(book(session("other-client", "psy", "c2", 3*time.Hour)))
	cut := st.Booking("cut", "bar", 2*time.Hour, 3*time.Hour, 3*time.Hour)
	cut.ClientId = "c1"
	s.ok(st.CreateBooking(cut))

	s.want(codeNotFound, cmdAt(0, &bookingv1.WithdrawConsent{ClientId: "c2", ConsentId: "k1", Verticals: []string{psyVert}}))
	s.want(codeNotFound, cmdAt(0, &bookingv1.WithdrawConsent{ClientId: "c1", ConsentId: "k9", Verticals: []string{psyVert}}))
	s.want(codeInvalid, cmdAt(0, &bookingv1.WithdrawConsent{ClientId: "c1", ConsentId: "k1", Verticals: []string{""}}))

	r := s.want(codeOK, cmdAt(0, &bookingv1.WithdrawConsent{ClientId: "c1", ConsentId: "k1", Verticals: []string{psyVert}}))
	if r.Consent.WithdrawnAtMs != st.At(0) || storage.ConsentStatus(r.Consent, st.At(0)) != storage.ConsentWithdrawn {
		t.Fatalf("consent %v", r.Consent)
	}
	var ids []string
	for _, b := range r.Bookings {
		ids = append(ids, b.Id)
		if b.Status != statusCancelled || b.CancelReason != storage.CancelReasonConsentWithdrawn || b.SessionStatus != sessCancelled {
			t.Fatalf("cancelled %v", b)
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"later", "soon"}) {
		t.Fatalf("withdrawal cancelled %v, want [later soon]", ids)
	}
	for _, id := range []string{"past", "other-client", "cut"} {
		if b := s.booking(id); b.Status != statusConfirmed || b.CancelReason != "" {
			t.Fatalf("%s touched: %v", id, b)
		}
	}
	if b := s.booking("gone"); b.CancelReason != "" {
		t.Fatalf("an already cancelled booking got a reason: %v", b)
	}
	if b := s.booking("soon"); b.CancelReason != storage.CancelReasonConsentWithdrawn {
		t.Fatalf("stored soon: %v", b)
	}
	// Idempotent, and no more bookings without consent.
	again := s.want(codeOK, cmdAt(time.Minute, &bookingv1.WithdrawConsent{ClientId: "c1", ConsentId: "k1", Verticals: []string{psyVert}}))
	if len(again.Bookings) != 0 || again.Consent.WithdrawnAtMs != st.At(0) {
		t.Fatalf("second withdrawal %v", again)
	}
	s.want(codeConsent, cmdAt(time.Minute, &bookingv1.CreateBooking{Booking: session("new", "psy", "c1", 72*time.Hour), ConsentPurpose: psyPurpose}))

	// A second active consent for the purpose keeps the bookings consented.
	s.ok(grant(time.Minute, consent("k3", "c3", 0)))
	s.ok(grant(time.Minute, consent("k4", "c3", 0)))
	s.ok(cmdAt(time.Minute, &bookingv1.CreateBooking{Booking: session("c3-s", "psy", "c3", 96*time.Hour), ConsentPurpose: psyPurpose}))
	r = s.want(codeOK, cmdAt(2*time.Minute, &bookingv1.WithdrawConsent{ClientId: "c3", ConsentId: "k3", Verticals: []string{psyVert}}))
	if len(r.Bookings) != 0 || s.booking("c3-s").Status != statusConfirmed {
		t.Fatalf("withdrawing one of two consents cancelled %v", r.Bookings)
	}
	r = s.want(codeOK, cmdAt(3*time.Minute, &bookingv1.WithdrawConsent{ClientId: "c3", ConsentId: "k4", Verticals: []string{psyVert}}))
	if len(r.Bookings) != 1 {
		t.Fatalf("withdrawing the last consent cancelled %v", r.Bookings)
	}
}

// TestFSM_SessionStatus: every (from, to) pair; only scheduled →
// checked_in | no_show | cancelled and checked_in → completed are legal.
func TestFSM_SessionStatus(t *testing.T) {
	s, _ := newPsychSeq(t)
	s.ok(st.CreateProvider(psyProvider("psy")))
	// path reaches each state from scheduled by legal moves.
	path := map[bookingv1.SessionStatus][]bookingv1.SessionStatus{
		sessScheduled: nil,
		sessCheckedIn: {sessCheckedIn},
		sessCompleted: {sessCheckedIn, sessCompleted},
		sessNoShow:    {sessNoShow},
		sessCancelled: {sessCancelled},
	}
	legal := map[[2]bookingv1.SessionStatus]bool{
		{sessScheduled, sessCheckedIn}: true, {sessScheduled, sessNoShow}: true,
		{sessScheduled, sessCancelled}: true, {sessCheckedIn, sessCompleted}: true,
	}
	n := 0
	for _, from := range []bookingv1.SessionStatus{sessScheduled, sessCheckedIn, sessCompleted, sessNoShow, sessCancelled} {
		for _, to := range []bookingv1.SessionStatus{sessCheckedIn, sessCompleted, sessNoShow, sessCancelled} {
			t.Run(fmt.Sprintf("%v→%v", from, to), func(t *testing.T) {
				s.t = t
				n++
				id := fmt.Sprint("s", n)
				s.ok(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session(id, "psy", "c1", time.Duration(n)*2*time.Hour)}))
				for _, step := range path[from] {
					s.ok(cmdAt(0, &bookingv1.SetSessionStatus{BookingId: id, Status: step}))
				}
				at := time.Duration(n) * time.Minute
				want := codeTransition
				if legal[[2]bookingv1.SessionStatus{from, to}] {
					want = codeOK
				}
				r := s.want(want, cmdAt(at, &bookingv1.SetSessionStatus{BookingId: id, Status: to}))
				b := s.booking(id)
				if want == codeOK {
					if b.SessionStatus != to || r.Booking.UpdatedAtMs != st.At(at) {
						t.Fatalf("after the move: %v", b)
					}
					if (to == sessCancelled) != (b.Status == statusCancelled) {
						t.Fatalf("booking status %v after session %v", b.Status, to)
					}
				} else if b.SessionStatus != from {
					t.Fatalf("refused move changed the session to %v", b.SessionStatus)
				}
			})
		}
	}
	s.t = t
	s.ok(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("x", "psy", "c1", 100*time.Hour)}))
	s.want(codeInvalid, cmdAt(0, &bookingv1.SetSessionStatus{BookingId: "x", Status: sessScheduled}))
	s.want(codeInvalid, cmdAt(0, &bookingv1.SetSessionStatus{BookingId: "x", Status: bookingv1.SessionStatus(42)}))
	s.want(codeNotFound, cmdAt(0, &bookingv1.SetSessionStatus{BookingId: "nope", Status: sessCheckedIn}))
	s.ok(st.CreateBooking(st.Booking("plain", "psy", 200*time.Hour, 201*time.Hour, 201*time.Hour)))
	s.want(codeTransition, cmdAt(0, &bookingv1.SetSessionStatus{BookingId: "plain", Status: sessCheckedIn}))

	// A checked-in session can be neither cancelled nor rescheduled; a
	// scheduled one cancelled by CancelBooking is a cancelled session, and
	// its slot is free again.
	s.ok(cmdAt(0, &bookingv1.SetSessionStatus{BookingId: "x", Status: sessCheckedIn}))
	s.want(codeTransition, st.CancelBooking("x"))
	s.want(codeTransition, st.RescheduleBooking("x", 300*time.Hour, 301*time.Hour, 301*time.Hour))
	s.ok(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("y", "psy", "c1", 110*time.Hour)}))
	if r := s.ok(st.CancelBooking("y")); r.Booking.SessionStatus != sessCancelled || r.Booking.CancelReason != "" {
		t.Fatalf("cancelled session %v", r.Booking)
	}
	s.ok(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("y2", "psy", "c1", 110*time.Hour)}))
}

func clientKey(client, keyID string) *bookingv1.ClientKey {
	return &bookingv1.ClientKey{ClientId: client, KeyId: keyID, Wrapped: []byte("wrapped-" + keyID), KekId: "kek_1"}
}

func note(bookingID, client, keyID, text string) *bookingv1.SealedNote {
	return &bookingv1.SealedNote{BookingId: bookingID, ClientId: client, KeyId: keyID,
		Nonce: []byte("nonce-123456"), Ciphertext: []byte("sealed:" + text)}
}

func TestFSM_PutClientKeyFirstWins(t *testing.T) {
	s, _ := newPsychSeq(t)
	s.want(codeInvalid, cmdAt(0, &bookingv1.PutClientKey{}))
	s.want(codeInvalid, cmdAt(0, &bookingv1.PutClientKey{Key: &bookingv1.ClientKey{ClientId: "c1", KeyId: "key_a", KekId: "kek_1"}}))
	s.want(codeInvalid, cmdAt(0, &bookingv1.PutClientKey{Key: &bookingv1.ClientKey{ClientId: "c1", KeyId: "key_a", Wrapped: []byte("w")}}))
	first := s.want(codeOK, cmdAt(time.Minute, &bookingv1.PutClientKey{Key: clientKey("c1", "key_a")}))
	if first.Key.KeyId != "key_a" || first.Key.CreatedAtMs != st.At(time.Minute) {
		t.Fatalf("first key %v", first.Key)
	}
	second := s.want(codeOK, cmdAt(2*time.Minute, &bookingv1.PutClientKey{Key: clientKey("c1", "key_b")}))
	if !proto.Equal(second.Key, first.Key) {
		t.Fatalf("second PutClientKey answered %v, want the first key %v", second.Key, first.Key)
	}
	if n := len(s.dump()["client_keys"]); n != 1 {
		t.Fatalf("%d keys stored", n)
	}
}

// TestFSM_NotesAndErasure: notes need the client's current key; erasure
// deletes keys and notes, marks bookings erased, keeps the Erasure, and a
// note sealed before it is refused ERASED.
func TestFSM_NotesAndErasure(t *testing.T) {
	s, erased := newPsychSeq(t)
	s.ok(st.CreateProvider(psyProvider("psy")))
	s.ok(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("s1", "psy", "c1", time.Hour)}))
	s.ok(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("s2", "psy", "c1", 3*time.Hour)}))
	s.ok(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("o1", "psy", "c2", 5*time.Hour)}))
	s.ok(st.CancelBooking("s2"))

	s.want(codeInvalid, cmdAt(0, &bookingv1.PutNote{Note: note("s1", "c1", "key_a", "x")})) // no key yet
	s.ok(cmdAt(0, &bookingv1.PutClientKey{Key: clientKey("c1", "key_a")}))
	s.ok(cmdAt(0, &bookingv1.PutClientKey{Key: clientKey("c2", "key_z")}))
	s.want(codeInvalid, cmdAt(0, &bookingv1.PutNote{Note: note("s1", "c1", "key_other", "x")}))
	s.want(codeInvalid, cmdAt(0, &bookingv1.PutNote{Note: note("s1", "c2", "key_z", "x")})) // not the booking's client
	s.want(codeNotFound, cmdAt(0, &bookingv1.PutNote{Note: note("nope", "c1", "key_a", "x")}))
	big := note("s1", "c1", "key_a", "x")
	big.Ciphertext = make([]byte, storage.MaxNoteBytes+1)
	s.want(codeInvalid, cmdAt(0, &bookingv1.PutNote{Note: big}))
	r := s.want(codeOK, cmdAt(time.Minute, &bookingv1.PutNote{Note: note("s1", "c1", "key_a", "first")}))
	if r.Note.ProviderId != "psy" || r.Note.UpdatedAtMs != st.At(time.Minute) {
		t.Fatalf("note %v", r.Note)
	}
	// A write names the version it replaces: one that read the notes before
	// "first" was stored (a stale actor activation) is refused.
	s.want(codeStale, cmdAt(2*time.Minute, &bookingv1.PutNote{Note: note("s1", "c1", "key_a", "late")}))
	s.want(codeStale, cmdAt(2*time.Minute, &bookingv1.PutNote{Note: note("s1", "c1", "key_a", "ahead"), ExpectedVersion: 2}))
	if r := s.ok(cmdAt(2*time.Minute, &bookingv1.PutNote{Note: note("s1", "c1", "key_a", "second"), ExpectedVersion: 1})); r.Note.Version != 2 {
		t.Fatalf("second write of s1 has version %d, want 2", r.Note.Version)
	}
	s.ok(cmdAt(2*time.Minute, &bookingv1.PutNote{Note: note("s2", "c1", "key_a", "third")}))
	s.ok(cmdAt(2*time.Minute, &bookingv1.PutNote{Note: note("o1", "c2", "key_z", "other")}))
	d := s.dump()
	if len(d["notes"]) != 3 || len(d["client_notes"]) != 3 {
		t.Fatalf("%d notes, %d index entries", len(d["notes"]), len(d["client_notes"]))
	}

	s.want(codeInvalid, cmdAt(0, &bookingv1.EraseHealthData{}))
	e := s.want(codeOK, cmdAt(time.Hour, &bookingv1.EraseHealthData{ClientId: "c1"}))
	if len(e.Bookings) != 2 {
		t.Fatalf("erasure marked %d bookings", len(e.Bookings))
	}
	d = s.dump()
	if _, ok := d["client_keys"]["c1"]; ok {
		t.Fatal("c1's key survived the erasure")
	}
	for k, v := range d["notes"] {
		if bytes.Contains([]byte(v), []byte("first")) || bytes.Contains([]byte(v), []byte("second")) || bytes.Contains([]byte(v), []byte("third")) {
			t.Fatalf("c1's note %s survived", k)
		}
	}
	if len(d["notes"]) != 1 || len(d["client_notes"]) != 1 || len(d["client_keys"]) != 1 {
		t.Fatalf("other client's records: %d notes %d index %d keys", len(d["notes"]), len(d["client_notes"]), len(d["client_keys"]))
	}
	er := new(bookingv1.Erasure)
	if err := proto.Unmarshal([]byte(d["erasures"]["c1"]), er); err != nil || er.ErasedAtMs != st.At(time.Hour) || !slices.Equal(er.KeyIds, []string{"key_a"}) {
		t.Fatalf("erasure %v, %v", er, err)
	}
	for _, id := range []string{"s1", "s2"} {
		b := s.booking(id)
		if !b.Erased || b.StartMs == 0 || b.ProviderId != "psy" {
			t.Fatalf("%s after erasure: %v", id, b)
		}
	}
	if s.booking("s2").UpdatedAtMs == st.At(time.Hour) {
		t.Fatal("erasure moved a cancelled booking's cancellation time")
	}
	if s.booking("o1").Erased {
		t.Fatal("another client's booking marked erased")
	}
	if got := erased.list(); !slices.Equal(got, []string{"c1"}) || s.fsm.Erasures() != 1 {
		t.Fatalf("OnErase calls %v, counter %d", got, s.fsm.Erasures())
	}
	if got := erased.keyLists(); len(got) != 1 || !slices.Equal(got[0], []string{"key_a"}) {
		t.Fatalf("OnErase key ids %v", got)
	}
	// A note sealed before the erasure, with the stale key: ERASED; the erased
	// key never comes back.
	s.want(codeErased, cmdAt(2*time.Hour, &bookingv1.PutNote{Note: note("s1", "c1", "key_a", "late")}))
	s.want(codeErased, cmdAt(2*time.Hour, &bookingv1.PutClientKey{Key: clientKey("c1", "key_a")}))
	// An erasure covers the data that existed (R1 finding 8, integrator's
	// decision): the returning client gets a new key and notes of a session
	// booked since; a session erased stays erased.
	s.ok(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("s3", "psy", "c1", 7*time.Hour)}))
	s.ok(cmdAt(2*time.Hour, &bookingv1.PutClientKey{Key: clientKey("c1", "key_b")}))
	s.want(codeErased, cmdAt(2*time.Hour, &bookingv1.PutNote{Note: note("s1", "c1", "key_b", "old session")}))
	s.want(codeErased, cmdAt(2*time.Hour, &bookingv1.PutNote{Note: note("s3", "c1", "key_a", "old key")}))
	s.ok(cmdAt(2*time.Hour, &bookingv1.PutNote{Note: note("s3", "c1", "key_b", "new therapy")}))
	// Erasing again erases what exists then: the new key and note; its id is
	// appended to the record (erased_at_ms stays the first), notified.
	e = s.want(codeOK, cmdAt(3*time.Hour, &bookingv1.EraseHealthData{ClientId: "c1"}))
	if len(e.Bookings) != 1 || e.Bookings[0].Id != "s3" || !s.booking("s3").Erased {
		t.Fatalf("second erasure marked %v", e.Bookings)
	}
	d = s.dump()
	if _, ok := d["client_keys"]["c1"]; ok || d["notes"]["s3"] != "" {
		t.Fatal("the second erasure left c1's new key or note")
	}
	if got := erased.keyLists(); len(got) != 2 || !slices.Equal(got[1], []string{"key_a", "key_b"}) || s.fsm.Erasures() != 2 {
		t.Fatalf("second erasure notified: %v, counter %d", got, s.fsm.Erasures())
	}
	if err := proto.Unmarshal([]byte(d["erasures"]["c1"]), er); err != nil || er.ErasedAtMs != st.At(time.Hour) || !slices.Equal(er.KeyIds, []string{"key_a", "key_b"}) {
		t.Fatalf("erasure record after a second erasure: %v", er)
	}
	s.want(codeErased, cmdAt(4*time.Hour, &bookingv1.PutClientKey{Key: clientKey("c1", "key_b")}))
	// Erasing once more destroys nothing new: no notification.
	s.ok(cmdAt(4*time.Hour, &bookingv1.EraseHealthData{ClientId: "c1"}))
	if got := erased.list(); len(got) != 2 || s.fsm.Erasures() != 2 {
		t.Fatalf("third erasure notified: %v, counter %d", got, s.fsm.Erasures())
	}
	// A client with nothing stored: the erasure is recorded and notified.
	s.ok(cmdAt(3*time.Hour, &bookingv1.EraseHealthData{ClientId: "c7"}))
	if got := erased.list(); !slices.Equal(got, []string{"c1", "c1", "c7"}) {
		t.Fatalf("OnErase calls %v", got)
	}
}

// canonicalForTest builds the canonical bytes independently of storage.
func canonicalForTest(e *bookingv1.AuditEntry) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.AtMs))
	for _, f := range []string{e.Subject, e.Role, e.Action, e.Object, e.Node, e.Outcome} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

func TestAuditHash_Canonical(t *testing.T) {
	e := &bookingv1.AuditEntry{Seq: 7, AtMs: 1_772_442_000_000, Subject: "cli_1", Role: "client", Action: "notes.read",
		Object: "bkg_ar_1", Node: "ba1", Outcome: "forbidden"}
	if got, want := storage.AuditCanonical(e), canonicalForTest(e); !bytes.Equal(got, want) {
		t.Fatalf("canonical %x, want %x", got, want)
	}
	prev := bytes.Repeat([]byte{0xab}, 32)
	sum := sha256.Sum256(append(append([]byte{}, prev...), canonicalForTest(e)...))
	if got := storage.AuditHash(prev, e); !bytes.Equal(got, sum[:]) {
		t.Fatalf("hash %x, want %x", got, sum)
	}
	// The hashes themselves are not part of the canonical bytes; every field is.
	e2 := proto.Clone(e).(*bookingv1.AuditEntry)
	e2.Hash, e2.PrevHash = []byte("x"), []byte("y")
	if !bytes.Equal(storage.AuditCanonical(e2), storage.AuditCanonical(e)) {
		t.Fatal("hashes changed the canonical bytes")
	}
	// Length prefixes: moving a byte between fields changes the bytes.
	e3 := proto.Clone(e).(*bookingv1.AuditEntry)
	e3.Subject, e3.Role = "cli_1c", "lient"
	if bytes.Equal(storage.AuditCanonical(e3), storage.AuditCanonical(e)) {
		t.Fatal("fields are not delimited")
	}
	if storage.OutcomeOf(codeOK) != "ok" || storage.OutcomeOf(codeConsent) != "consent_required" ||
		storage.OutcomeOf(codeSlotTaken) != "slot_taken" || storage.OutcomeOf(codeErased) != "erased" {
		t.Fatal("outcome names")
	}
}

// TestFSM_AuditChain: records ride on allowed and refused commands alike,
// with the outcome filled from the result; malformed records refuse the
// command and append nothing; a replay appends nothing; the chain links.
func TestFSM_AuditChain(t *testing.T) {
	s, _ := newPsychSeq(t)
	rec := func(action, object, outcome string) *bookingv1.AuditRecord {
		return &bookingv1.AuditRecord{Subject: "sub-" + action, Role: "operator", Action: action, Object: object, Node: "ba1", Outcome: outcome}
	}
	type step struct {
		cmd      *bookingv1.Command
		code     bookingv1.ResultCode
		outcomes []string // appended entries' outcomes
	}
	steps := []step{
		{withAudit(st.CreateProvider(psyProvider("psy")), rec("provider.create", "psy", "")), codeOK, []string{"ok"}},
		{withAudit(book(session("b1", "psy", "c1", 0)), rec("booking.create", "b1", "")), codeConsent, []string{"consent_required"}},
		{withAudit(grant(0, consent("k1", "c1", 0)), rec("consent.grant", "k1", ""), rec("consent.read", "k1", "")), codeOK, []string{"ok", "ok"}},
		{withAudit(st.WithKey(book(session("b1", "psy", "c1", time.Hour)), "key-1", "h1"), rec("booking.create", "b1", "")), codeOK, []string{"ok"}},
		// Replay of the same key: nothing appended.
		{withAudit(st.WithKey(book(session("b1", "psy", "c1", time.Hour)), "key-1", "h1"), rec("booking.create", "b1", "")), codeOK, nil},
		{withAudit(st.WithKey(book(session("b1", "psy", "c1", time.Hour)), "key-1", "h2"), rec("booking.create", "b1", "")), codeMismatch, []string{"idempotency_mismatch"}},
		{withAudit(book(session("b2", "psy", "c1", time.Hour)), rec("booking.create", "b2", "")), codeSlotTaken, []string{"slot_taken"}},
		{withAudit(cmdAt(time.Minute, &bookingv1.AppendAudit{}), rec("notes.read", "b1", "forbidden")), codeOK, []string{"forbidden"}},
		{cmdAt(time.Minute, &bookingv1.AppendAudit{}), codeInvalid, nil},
		{withAudit(grant(time.Minute, consent("k2", "c1", 0)), &bookingv1.AuditRecord{Subject: "a\x00b", Action: "consent.grant"}), codeInvalid, nil},
		{withAudit(grant(time.Minute, consent("k3", "c1", 0)), &bookingv1.AuditRecord{Subject: "x"}), codeInvalid, nil},
		{withAudit(compactCmd(time.Hour, time.Hour, time.Hour, 10), rec("compact", "", "")), codeInvalid, nil},
		{withAudit(cmdAt(2*time.Minute, &bookingv1.SetSessionStatus{BookingId: "b1", Status: sessCompleted}), rec("session.move", "b1", "")), codeTransition, []string{"invalid_transition"}},
	}
	over := cmdAt(2*time.Minute, &bookingv1.AppendAudit{})
	for range storage.MaxAuditRecords + 1 {
		over.Audit = append(over.Audit, rec("audit.read", "", ""))
	}
	steps = append(steps, step{over, codeInvalid, nil})

	var want []*bookingv1.AuditEntry // seq, at, outcome, object expected
	var seq uint64
	entryClock := int64(0)
	for i, stp := range steps {
		entryClock = max(entryClock, stp.cmd.ProposedAtMs)
		r := s.apply(stp.cmd)
		if r.Code != stp.code {
			t.Fatalf("step %d: %v (%s), want %v", i, r.Code, r.Detail, stp.code)
		}
		for j, o := range stp.outcomes {
			seq++
			rc := stp.cmd.Audit[j]
			want = append(want, &bookingv1.AuditEntry{Seq: seq, AtMs: entryClock, Subject: rc.Subject, Role: rc.Role,
				Action: rc.Action, Object: rc.Object, Node: rc.Node, Outcome: o})
		}
		wantSeq := uint64(0)
		if len(stp.outcomes) > 0 {
			wantSeq = seq
		}
		if r.AuditSeq != wantSeq {
			t.Fatalf("step %d: audit_seq %d, want %d", i, r.AuditSeq, wantSeq)
		}
	}
	d := s.dump()
	if _, ok := d["consents"]["k2"]; ok {
		t.Fatal("a command with a malformed audit record was applied")
	}
	if len(d["audit"]) != len(want) {
		t.Fatalf("%d audit entries, want %d", len(d["audit"]), len(want))
	}
	prev := make([]byte, 32)
	for _, w := range want {
		v, ok := d["audit"][string(binary.BigEndian.AppendUint64(nil, w.Seq))]
		if !ok {
			t.Fatalf("entry %d missing", w.Seq)
		}
		e := new(bookingv1.AuditEntry)
		if err := proto.Unmarshal([]byte(v), e); err != nil {
			t.Fatal(err)
		}
		w.PrevHash = prev
		sum := sha256.Sum256(append(append([]byte{}, prev...), canonicalForTest(w)...))
		w.Hash = sum[:]
		if !proto.Equal(e, w) {
			t.Fatalf("entry %d:\n got %v\nwant %v", w.Seq, e, w)
		}
		prev = e.Hash
	}
	objs := 0
	for _, w := range want {
		if w.Object != "" {
			objs++
		}
	}
	if n := len(d["audit_object"]); n != objs || len(d["audit_subject"]) != len(want) {
		t.Fatalf("audit_object has %d entries (want %d), audit_subject %d (want %d)", n, objs, len(d["audit_subject"]), len(want))
	}
	rep, err := s.fsm.VerifyAudit()
	if err != nil || rep.Entries != uint64(len(want)) || !bytes.Equal(rep.Head, prev) || rep.BrokenSeq != 0 {
		t.Fatalf("VerifyAudit %+v, %v", rep, err)
	}
}

func TestAuditVerifier(t *testing.T) {
	var chain []*bookingv1.AuditEntry
	prev := make([]byte, 32)
	for i := range 5 {
		e := &bookingv1.AuditEntry{Seq: uint64(i + 1), AtMs: st.At(time.Duration(i) * time.Minute), Subject: "s", Action: "booking.read", Object: fmt.Sprint("b", i), Outcome: "ok", PrevHash: prev}
		e.Hash = storage.AuditHash(prev, e)
		prev = e.Hash
		chain = append(chain, e)
	}
	tamper := map[string]func(c []*bookingv1.AuditEntry) ([]*bookingv1.AuditEntry, uint64){
		"content": func(c []*bookingv1.AuditEntry) ([]*bookingv1.AuditEntry, uint64) {
			c[2].Outcome = "forbidden"
			return c, 3
		},
		"time":    func(c []*bookingv1.AuditEntry) ([]*bookingv1.AuditEntry, uint64) { c[3].AtMs++; return c, 4 },
		"deleted": func(c []*bookingv1.AuditEntry) ([]*bookingv1.AuditEntry, uint64) { return append(c[:1], c[2:]...), 2 },
		"reordered": func(c []*bookingv1.AuditEntry) ([]*bookingv1.AuditEntry, uint64) {
			c[1], c[2] = c[2], c[1]
			return c, 2
		},
		"rehashed": func(c []*bookingv1.AuditEntry) ([]*bookingv1.AuditEntry, uint64) {
			c[1].Subject = "mallory"
			c[1].Hash = storage.AuditHash(c[1].PrevHash, c[1]) // consistent itself, breaks the next link
			return c, 3
		},
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			c := make([]*bookingv1.AuditEntry, len(chain))
			for i, e := range chain {
				c[i] = proto.Clone(e).(*bookingv1.AuditEntry)
			}
			c, brokenAt := f(c)
			v := storage.NewAuditVerifier()
			var err error
			for _, e := range c {
				if err = v.Add(e); err != nil {
					break
				}
			}
			if !errors.Is(err, storage.ErrAuditBroken) || v.Report().BrokenSeq != brokenAt || v.Report().Entries != brokenAt-1 {
				t.Fatalf("err %v, report %+v, want broken at %d", err, v.Report(), brokenAt)
			}
		})
	}
	v := storage.NewAuditVerifier()
	for _, e := range chain {
		if err := v.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if v.Report().Entries != 5 || !bytes.Equal(v.Report().Head, prev) {
		t.Fatalf("clean chain %+v", v.Report())
	}
}

// copyDataDir copies the data dir src into a new temp dir.
func copyDataDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := copyDir(src, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestStore_PsychRecords drives the psychology commands through Propose on a
// store of jurisdiction "ar": sentinel errors, reads, erasure with OnErase
// (also replayed at Open), audit listing and verification, a snapshot that
// restores every bucket, and VerifyAuditDir on copies of the data dir, one
// with a byte of one entry changed.
func TestStore_PsychRecords(t *testing.T) {
	ctx := context.Background()
	erased := &erasedLog{}
	cfg := st.Config(t)
	cfg.Jurisdiction, cfg.OnErase = "ar", erased.record
	s := st.MustOpen(t, cfg)
	n := 0
	// audited gives cmd one record with a subject, object and node unique to it.
	audited := func(cmd *bookingv1.Command, object string) *bookingv1.Command {
		n++
		return withAudit(cmd, &bookingv1.AuditRecord{Subject: fmt.Sprintf("subj-%02d", n), Role: "operator",
			Action: "test.write", Object: object, Node: fmt.Sprintf("node-%02d", n)})
	}
	propose := func(cmd *bookingv1.Command, want error) *bookingv1.CommandResult {
		t.Helper()
		res, err := s.Propose(ctx, cmd)
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("%T: %v, want %v", cmd.Op, err, want)
		}
		return res
	}
	propose(audited(st.CreateProvider(psyProvider("psy")), "psy"), nil)
	propose(audited(st.CreateProvider(psyProvider("psy2")), "psy2"), nil)
	propose(audited(cmdAt(-day, &bookingv1.VerifyProvider{ProviderId: "psy", VerifiedBy: "op1"}), "psy"), nil)
	propose(audited(grant(-day, consent("cns_ar_1", "c1", -day)), "cns_ar_1"), nil)
	if r := propose(audited(book(session("nope", "psy", "c2", 0)), "nope"), storage.ErrConsentRequired); r.Code != codeConsent || r.AuditSeq == 0 {
		t.Fatalf("refused booking %v", r)
	}
	propose(audited(cmdAt(-time.Hour, &bookingv1.CreateBooking{Booking: session("nope", "psy2", "c1", 0), ConsentPurpose: psyPurpose, RequireVerified: true}), "nope"),
		storage.ErrProviderUnverified)
	propose(audited(book(session("s1", "psy", "c1", 0)), "s1"), nil)
	propose(audited(book(session("s2", "psy", "c1", 2*time.Hour)), "s2"), nil)
	sr := seriesOf("srs_ar_1", "psy", 7*day, 14*day)
	sr.Series.ClientId = "c1"
	for _, b := range sr.Bookings {
		b.ClientId = "c1"
	}
	sr.ConsentPurpose = psyPurpose
	propose(audited(cmdAt(-time.Hour, sr), "srs_ar_1"), nil)
	propose(audited(cmdAt(-time.Hour, &bookingv1.PutClientKey{Key: clientKey("c1", "key_1")}), "client:c1"), nil)
	propose(audited(cmdAt(-time.Hour, &bookingv1.PutNote{Note: note("s1", "c1", "key_1", "one")}), "s1"), nil)
	propose(audited(cmdAt(-time.Hour, &bookingv1.PutNote{Note: note("s2", "c1", "key_1", "two")}), "s2"), nil)

	if c, err := s.Consent(ctx, "cns_ar_1"); err != nil || c.ClientId != "c1" {
		t.Fatalf("Consent: %v, %v", c, err)
	}
	if cs, err := s.ClientConsents(ctx, "c1"); err != nil || len(cs) != 1 || cs[0].Id != "cns_ar_1" {
		t.Fatalf("ClientConsents: %v, %v", cs, err)
	}
	if cs, err := s.ClientConsents(ctx, "c2"); err != nil || len(cs) != 0 {
		t.Fatalf("ClientConsents(c2): %v, %v", cs, err)
	}
	if got, err := s.Series(ctx, "srs_ar_1"); err != nil || len(got.BookingIds) != 2 {
		t.Fatalf("Series: %v, %v", got, err)
	}
	if k, err := s.ClientKey(ctx, "c1"); err != nil || k.KeyId != "key_1" {
		t.Fatalf("ClientKey: %v, %v", k, err)
	}
	if nt, err := s.Note(ctx, "s1"); err != nil || !bytes.Equal(nt.Ciphertext, []byte("sealed:one")) {
		t.Fatalf("Note: %v, %v", nt, err)
	}
	if ns, err := s.ClientNotes(ctx, "c1"); err != nil || len(ns) != 2 || ns[0].BookingId != "s1" || ns[1].BookingId != "s2" {
		t.Fatalf("ClientNotes: %v, %v", ns, err)
	}
	for _, err := range []error{
		func() error { _, err := s.Consent(ctx, "x"); return err }(),
		func() error { _, err := s.Series(ctx, "x"); return err }(),
		func() error { _, err := s.ClientKey(ctx, "x"); return err }(),
		func() error { _, err := s.Note(ctx, "x"); return err }(),
		func() error { _, err := s.Erasure(ctx, "c1"); return err }(),
	} {
		if !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("missing record: %v", err)
		}
	}

	propose(audited(cmdAt(0, &bookingv1.EraseHealthData{ClientId: "c1"}), "client:c1"), nil)
	if s.ErasuresApplied() != 1 || !slices.Equal(erased.list(), []string{"c1"}) {
		t.Fatalf("ErasuresApplied %d, OnErase %v", s.ErasuresApplied(), erased.list())
	}
	if e, err := s.Erasure(ctx, "c1"); err != nil || !slices.Equal(e.KeyIds, []string{"key_1"}) {
		t.Fatalf("Erasure: %v, %v", e, err)
	}
	if _, err := s.ClientKey(ctx, "c1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("ClientKey after erasure: %v", err)
	}
	if ns, err := s.ClientNotes(ctx, "c1"); err != nil || len(ns) != 0 {
		t.Fatalf("ClientNotes after erasure: %v, %v", ns, err)
	}
	if b, err := s.Booking(ctx, "s1"); err != nil || !b.Erased {
		t.Fatalf("booking after erasure: %v, %v", b, err)
	}
	propose(audited(cmdAt(0, &bookingv1.PutNote{Note: note("s1", "c1", "key_1", "late")}), "s1"), storage.ErrErased)
	d1, _ := s.Digest()
	var tampered *bookingv1.CommandResult
	for i := range 4 {
		r := propose(audited(cmdAt(time.Minute, &bookingv1.AppendAudit{}), fmt.Sprint("s", i%2+1)), nil)
		if i == 2 {
			tampered = r
		}
	}
	if d2, _ := s.Digest(); bytes.Equal(d1, d2) {
		t.Fatal("the digest does not cover the audit chain")
	}
	total := uint64(n) // every command above appended one entry, refused or not

	all, next, err := s.AuditEntries(ctx, storage.AuditFilter{})
	if err != nil || uint64(len(all)) != total || next != 0 || all[0].Seq != 1 || all[len(all)-1].Seq != total {
		t.Fatalf("AuditEntries: %d entries, next %d, %v", len(all), next, err)
	}
	var pages [][]*bookingv1.AuditEntry
	for after := uint64(0); ; {
		page, nx, err := s.AuditEntries(ctx, storage.AuditFilter{Object: "s1", After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, page)
		if nx == 0 {
			break
		}
		after = nx
	}
	var s1 []uint64
	for _, p := range pages {
		for _, e := range p {
			if e.Object != "s1" {
				t.Fatalf("object filter returned %v", e)
			}
			s1 = append(s1, e.Seq)
		}
	}
	var wantS1 []uint64
	for _, e := range all {
		if e.Object == "s1" {
			wantS1 = append(wantS1, e.Seq)
		}
	}
	if !slices.Equal(s1, wantS1) || len(wantS1) < 4 {
		t.Fatalf("object s1 pages %v, want %v", s1, wantS1)
	}
	if es, _, err := s.AuditEntries(ctx, storage.AuditFilter{Subject: "subj-03"}); err != nil || len(es) != 1 || es[0].Seq != 3 || es[0].Node != "node-03" {
		t.Fatalf("subject filter: %v, %v", es, err)
	}
	if es, _, err := s.AuditEntries(ctx, storage.AuditFilter{Subject: "subj-03", Object: "s1"}); err != nil || len(es) != 0 {
		t.Fatalf("subject and object filter: %v, %v", es, err)
	}
	rep, err := s.VerifyAudit(ctx)
	if err != nil || rep.Entries != total {
		t.Fatalf("VerifyAudit %+v, %v", rep, err)
	}

	// A snapshot restores every bucket into a fresh FSM, erasures notified.
	snap := s.Raft().Snapshot()
	if err := snap.Error(); err != nil {
		t.Fatal(err)
	}
	_, rc, err := snap.Open()
	if err != nil {
		t.Fatal(err)
	}
	erased2 := &erasedLog{}
	f, err := storage.OpenTestFSMWith(filepath.Join(t.TempDir(), "fresh.db"), "ar", erased2.record)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = f.Restore(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := storage.DumpStore(s)
	got, _ := f.Dump()
	for _, b := range []string{"consents", "client_consents", "series", "erasures", "audit", "audit_object", "audit_subject", "bookings"} {
		if len(want[b]) == 0 {
			t.Fatalf("bucket %s empty in the store", b)
		}
	}
	for bucket, wm := range want {
		if len(got[bucket]) != len(wm) {
			t.Fatalf("bucket %s: %d records after restore, want %d", bucket, len(got[bucket]), len(wm))
		}
		for k, v := range wm {
			if got[bucket][k] != v {
				t.Fatalf("bucket %s key %q differs after restore", bucket, k)
			}
		}
	}
	if wd, _ := s.Digest(); !bytes.Equal(wd, func() []byte { d, _ := f.Digest(); return d }()) {
		t.Fatal("digest differs after restore")
	}
	if !slices.Equal(erased2.list(), []string{"c1"}) || f.Erasures() != 1 {
		t.Fatalf("restore notified %v, counter %d", erased2.list(), f.Erasures())
	}
	if rep, err := f.VerifyAudit(); err != nil || rep.Entries != total {
		t.Fatalf("restored chain %+v, %v", rep, err)
	}

	// Offline: a copy verifies; a copy with one byte of one entry changed
	// names that entry.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clean, bad := copyDataDir(t, cfg.DataDir), copyDataDir(t, cfg.DataDir)
	marker := []byte(fmt.Sprintf("node-%02d", tampered.AuditSeq))
	path := filepath.Join(bad, storage.FSMFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(raw, marker) == 0 {
		t.Fatalf("marker %s not in fsm.db", marker)
	}
	for i := bytes.Index(raw, marker); i >= 0; {
		raw[i+len(marker)-1] ^= 0x01 // "node-NN" → a digit off by one
		j := bytes.Index(raw[i+1:], marker)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = storage.VerifyAuditDir(clean)
	if err != nil || rep.Entries != total || rep.BrokenSeq != 0 {
		t.Fatalf("clean copy: %+v, %v", rep, err)
	}
	rep, err = storage.VerifyAuditDir(bad)
	if !errors.Is(err, storage.ErrAuditBroken) || rep.BrokenSeq != tampered.AuditSeq || rep.Entries != tampered.AuditSeq-1 ||
		!strings.Contains(err.Error(), fmt.Sprintf("seq %d", tampered.AuditSeq)) {
		t.Fatalf("tampered copy: %+v, %v (want broken at seq %d)", rep, err, tampered.AuditSeq)
	}
	if _, err := storage.VerifyAuditDir(t.TempDir()); !errors.Is(err, storage.ErrNoFSM) {
		t.Fatalf("empty dir: %v", err)
	}

	// At Open every recorded erasure is notified again.
	again := &erasedLog{}
	cfg.OnErase = again.record
	s2 := st.MustOpen(t, cfg)
	if !slices.Equal(again.list(), []string{"c1"}) {
		t.Fatalf("Open notified %v", again.list())
	}
	if rep, err := s2.VerifyAudit(ctx); err != nil || rep.Entries != total {
		t.Fatalf("after reopen %+v, %v", rep, err)
	}
}

// TestStore_PsychReplicas: the psychology commands apply identically on
// every replica (equal digests) and every replica notifies the erasure.
func TestStore_PsychReplicas(t *testing.T) {
	erased := &erasedLog{}
	base := storage.LocalConfig()
	base.Jurisdiction, base.OnErase = "ar", erased.record
	stores, _ := st.MustOpenInmemClusterWith(t, 3, base)
	leader := stores[0]
	for _, cmd := range []*bookingv1.Command{
		st.CreateProvider(psyProvider("psy")),
		cmdAt(-day, &bookingv1.VerifyProvider{ProviderId: "psy", VerifiedBy: "op1"}),
		grant(-day, consent("cns_ar_1", "c1", -day)),
		book(session("s1", "psy", "c1", 0)),
		cmdAt(-time.Hour, &bookingv1.PutClientKey{Key: clientKey("c1", "key_1")}),
		cmdAt(-time.Hour, &bookingv1.PutNote{Note: note("s1", "c1", "key_1", "one")}),
		withAudit(cmdAt(0, &bookingv1.SetSessionStatus{BookingId: "s1", Status: sessCheckedIn}),
			&bookingv1.AuditRecord{Subject: "psy", Role: "provider", Action: "session.move", Object: "s1"}),
		withAudit(cmdAt(0, &bookingv1.EraseHealthData{ClientId: "c1"}),
			&bookingv1.AuditRecord{Subject: "c1", Role: "client", Action: "erasure", Object: "client:c1"}),
	} {
		mustPropose(t, leader, cmd)
	}
	waitSameDigest(t, stores)
	waitFor(t, "every replica notified the erasure", 5*time.Second, func() bool { return len(erased.list()) == 3 })
	for _, s := range stores {
		if s.ErasuresApplied() != 1 {
			t.Fatalf("%s applied %d erasures", s.ID(), s.ErasuresApplied())
		}
		if rep, err := s.VerifyAudit(context.Background()); err != nil || rep.Entries != 2 {
			t.Fatalf("%s audit %+v, %v", s.ID(), rep, err)
		}
	}
}
