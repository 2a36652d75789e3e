package edge

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/barberpro/edge/edge/auth"
)

// TestPsych_Review9_AuditReadOnUSNodeKeepsArgentineIDs: an operator asking the
// US node for the audit trail of an Argentine psychology booking (no
// jurisdiction= parameter: the US chain is the default) makes the US node
// append an "audit.read" entry whose object IS the Argentine booking id (or
// consent id, or "client:<id>") to the US store's Raft log: invariant 3 says
// nothing of a psychology booking is written to a disk outside ar, and
// `residency check` flags any booking id of a city with psychology providers.
func TestPsych_Review9_AuditReadOnUSNodeKeepsArgentineIDs(t *testing.T) {
	ar, us, _ := newTestCluster(t, nil)
	p := us.create(providerBody("cordoba", "psychology"))
	us.readyPsych(p, "cli-ana")
	b := decode[bookingOut](t, us.bookAs(nil, p, "cli-ana", "2026-12-01T09:00:00-03:00"))
	cns := decode[listOut[consentOut]](t, us.do(call{method: "GET", path: "/v1/clients/cli-ana/consents",
		header: us.as(auth.RoleClient, "cli-ana"), valid: true})).Items[0]
	for _, q := range []string{"object=" + b.ID, "object=" + cns.ID, "object=client:cli-ana", "subject=cli-ana"} {
		wantStatus(t, us.do(call{method: "GET", path: "/v1/audit?" + q, valid: true}), http.StatusOK)
	}
	_ = ar
	for _, e := range us.store.Audit() {
		for _, secret := range []string{b.ID, cns.ID, "cli-ana"} {
			if strings.Contains(e.Object, secret) || strings.Contains(e.Subject, secret) {
				t.Errorf("the US store's audit chain names Argentine psychology data %q: %+v", secret, e)
			}
		}
	}
}

// TestPsych_Review9_RescheduleAfterWithdrawalBypassesConsent: withdrawal
// cancels only future psychology bookings. A session that has started (start
// before the withdrawal) but was never checked in stays confirmed; after the
// withdrawal its client reschedules it into next week and gets 200: a future
// psychology booking with no active consent (psychology.md: "A psychology
// booking ... without an active consent ...: 422 consent_required"). Neither
// rescheduleBooking (edge) nor the FSM's rescheduleBooking checks consent.
func TestPsych_Review9_RescheduleAfterWithdrawalBypassesConsent(t *testing.T) {
	var now atomic.Int64
	now.Store(testNow.UnixMilli())
	h := newHarnessWith(t, func(c *Config) { c.Clock = func() time.Time { return time.UnixMilli(now.Load()) } })
	psy := h.create(providerBody("buenos-aires", "psychology"))
	h.readyPsych(psy, "cli-ana")
	ana := h.as(auth.RoleClient, "cli-ana")
	b := decode[bookingOut](t, h.bookAs(ana, psy, "cli-ana", "2026-12-01T09:00:00-03:00"))
	// Ten minutes into the session (nobody checked in), the client withdraws.
	now.Store(time.Date(2026, 12, 1, 9, 10, 0, 0, time.FixedZone("-03", -3*3600)).UnixMilli())
	cns := decode[listOut[consentOut]](t, h.do(call{method: "GET", path: "/v1/clients/cli-ana/consents", header: ana})).Items[0]
	wantStatus(t, h.do(call{method: "POST", path: "/v1/clients/cli-ana/consents/" + cns.ID + "/withdraw", header: ana}), http.StatusOK)
	// A new booking is refused, as it must be...
	wantStatus(t, h.bookAs(ana, psy, "cli-ana", "2026-12-08T10:00:00-03:00"), http.StatusUnprocessableEntity)
	// ...but the surviving one moves into the future without any consent.
	rec := h.do(call{method: "POST", path: "/v1/bookings/" + b.ID + "/reschedule", header: ana,
		body: `{"start": "2026-12-08T09:00:00-03:00"}`})
	if rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("reschedule of a psychology booking into the future after the consent was withdrawn: %d, want 422 consent_required: %s", rec.Code, rec.Body)
	}
}

// TestPsych_Review9_ForeignConsentWithdrawalNotAudited: client bob tries to
// withdraw ana's consent (ana's consent id under his own client path): 404, as
// it must, but no audit entry records the refused access to a psychology
// consent (psychology.md: every read and write of psychology data, consents
// included, "allowed or refused, appends an entry"; withdrawConsent answers
// notFound without s.refuse, unlike getBooking/cancelSeries).
func TestPsych_Review9_ForeignConsentWithdrawalNotAudited(t *testing.T) {
	f := newPsychFixture(t)
	ana := f.as(auth.RoleClient, "cli-ana")
	cns := decode[listOut[consentOut]](t, f.do(call{method: "GET", path: "/v1/clients/cli-ana/consents", header: ana})).Items[0]
	n := len(f.store.Audit())
	rec := f.do(call{method: "POST", path: "/v1/clients/cli-bob/consents/" + cns.ID + "/withdraw", header: f.as(auth.RoleClient, "cli-bob")})
	wantStatus(t, rec, http.StatusNotFound)
	es := f.auditSince(n)
	if len(es) != 1 || es[0].Action != "consent.withdraw" || es[0].Object != cns.ID || es[0].Subject != "cli-bob" || es[0].Outcome != CodeForbidden {
		t.Errorf("a refused withdrawal of another client's consent left audit entries %v, want one consent.withdraw forbidden by cli-bob", es)
	}
}

// TestPsych_Review9_IdempotentReplayReadNotAudited: a retried psychology
// booking (same Idempotency-Key) is answered from the store, a read of the
// psychology booking, with no audit entry (replayBooking reads and writes the
// booking without appendAudit). Same for the series and consent replays.
func TestPsych_Review9_IdempotentReplayReadNotAudited(t *testing.T) {
	f := newPsychFixture(t)
	who := f.as(auth.RoleClient, "cli-ana")
	who["Idempotency-Key"] = "k-review9"
	wantStatus(t, f.bookAs(who, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00"), http.StatusCreated)
	n := len(f.store.Audit())
	rec := f.bookAs(who, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00")
	wantStatus(t, rec, http.StatusCreated)
	if es := f.auditSince(n); len(es) != 1 || es[0].Action != "booking.read" && es[0].Action != "booking.create" {
		t.Errorf("the replayed psychology booking (a read of it) left audit entries %v, want exactly one", es)
	}
}

// TestPsych_Review9_NotesExistenceOracle: another client (or a provider who
// does not treat) learns whether a session id exists: 403 for an existing
// session, 404 for a missing one (security.md: a refused read answers as a
// missing record does; GET /v1/sessions/{id} does answer 404 to them).
func TestPsych_Review9_NotesExistenceOracle(t *testing.T) {
	f := newPsychFixture(t)
	b := decode[bookingOut](t, f.bookAs(nil, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00"))
	for _, who := range []map[string]string{f.as(auth.RoleClient, "cli-bob"), f.as(auth.RoleProvider, "prv_buenos-aires_other")} {
		exists := f.do(call{method: "GET", path: "/v1/sessions/" + b.ID + "/notes", header: who})
		missing := f.do(call{method: "GET", path: "/v1/sessions/bkg_buenos-aires_nope/notes", header: who})
		if exists.Code != missing.Code {
			t.Errorf("a stranger tells an existing session (%d) from a missing one (%d)", exists.Code, missing.Code)
		}
	}
}

// TestPsych_Review9_UnverifiedProviderProbesConsent: a psychology provider not
// yet verified (it can book nothing) books "for" arbitrary client ids in its
// own calendar and learns from the refusal which of them hold an active
// psychology-care consent, i.e. who is in therapy: consent_required for one
// without, provider_unverified for one with (precheckBooking checks the
// client's consent before the provider's own verification). Special-category
// data of a third party must not decide the answer.
func TestPsych_Review9_UnverifiedProviderProbesConsent(t *testing.T) {
	h := newHarness(t)
	psy := h.create(providerBody("buenos-aires", "psychology")) // never verified
	h.grantConsent("cli-in-therapy", "ar")
	prov := h.as(auth.RoleProvider, psy.ID)
	with := checkProblem(t, h.bookAs(prov, psy, "cli-in-therapy", "2026-12-01T09:00:00-03:00"))
	without := checkProblem(t, h.bookAs(prov, psy, "cli-nobody", "2026-12-01T09:00:00-03:00"))
	if with.Code != without.Code {
		t.Errorf("an unverified provider tells a client with a psychology consent (%s) from one without (%s)", with.Code, without.Code)
	}
}

// TestPsych_Review9_SessionRouteRevealsOtherBookings: any client asking GET
// /v1/sessions/{id} for another client's barber booking is told "booking ... is
// not a session" (before any ownership check), for a missing id "does not
// exist": the detail reveals that the booking exists.
func TestPsych_Review9_SessionRouteRevealsOtherBookings(t *testing.T) {
	f := newPsychFixture(t)
	b := f.mustBook(f.barber, "cli-ana", "2026-12-01T10:00:00-03:00")
	bob := f.as(auth.RoleClient, "cli-bob")
	exists := checkProblem(t, f.do(call{method: "GET", path: "/v1/sessions/" + b.ID, header: bob}))
	missing := checkProblem(t, f.do(call{method: "GET", path: "/v1/sessions/" + b.ID + "x", header: bob}))
	if strings.Replace(exists.Detail, b.ID, "", 1) != strings.Replace(missing.Detail, b.ID+"x", "", 1) {
		t.Errorf("a stranger tells another client's booking (%q) from a missing one (%q)", exists.Detail, missing.Detail)
	}
}

// TestPsych_Review9_RouteLevelRefusalsNotAudited: an operator (or a provider,
// or another client) asking for a client's consents or export is refused 403
// by the route wrapper before anything is recorded: no audit entry for a
// refused read of psychology data (psychology.md: consents and export,
// "allowed or refused, appends an entry"). Only refusals decided by handlers
// (s.refuse) are audited.
func TestPsych_Review9_RouteLevelRefusalsNotAudited(t *testing.T) {
	f := newPsychFixture(t)
	for _, c := range []struct {
		who  map[string]string
		path string
	}{
		{f.as(auth.RoleOperator, "ops"), "/v1/clients/cli-ana/consents"},
		{f.as(auth.RoleOperator, "ops"), "/v1/clients/cli-ana/export"},
		{f.as(auth.RoleProvider, f.psy.ID), "/v1/clients/cli-ana/export"},
		{f.as(auth.RoleClient, "cli-bob"), "/v1/clients/cli-ana/consents"},
	} {
		n := len(f.store.Audit())
		wantStatus(t, f.do(call{method: "GET", path: c.path, header: c.who}), http.StatusForbidden)
		if es := f.auditSince(n); len(es) != 1 {
			t.Errorf("GET %s refused 403: %d audit entries, want 1", c.path, len(es))
		}
	}
}
