package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/edge/auth"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
)

// psychFixture is a harness with a verified psychology provider in Buenos Aires,
// a barber, and client cli-ana holding a psychology-care consent.
type psychFixture struct {
	*harness
	psy, barber providerOut
}

func newPsychFixture(t *testing.T) *psychFixture {
	t.Helper()
	h := newHarness(t)
	f := &psychFixture{harness: h, psy: h.create(providerBody("buenos-aires", "psychology")), barber: h.mustCreateProvider()}
	h.readyPsych(f.psy, "cli-ana")
	return f
}

// bookAs books provider p's first service at start for client, as who.
func (h *harness) bookAs(who map[string]string, p providerOut, client, start string) *httptest.ResponseRecorder {
	h.t.Helper()
	return h.do(call{method: "POST", path: "/v1/bookings", body: bookingBody(p.ID, p.Services[0].ID, client, start), header: who, valid: true})
}

// seriesBody is the body of POST /v1/bookings/series.
func seriesBody(p providerOut, client, start, every string, count int) string {
	b, _ := json.Marshal(createSeriesIn{ProviderID: p.ID, ServiceID: p.Services[0].ID, ClientID: client, Start: start, Every: every, Count: count})
	return string(b)
}

// auditSince returns the audit entries appended after the first n.
func (h *harness) auditSince(n int) []*bookingv1.AuditEntry {
	return h.store.Audit()[n:]
}

// TestPsych_RouteRoleMatrix calls every route of issue 9 with each role: the
// record's own client, another client, the record's provider, another
// provider, an operator (security.md's table). Rows that change state come
// after the rows that read it.
func TestPsych_RouteRoleMatrix(t *testing.T) {
	f := newPsychFixture(t)
	b := decode[bookingOut](t, f.bookAs(nil, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00"))
	cns := decode[listOut[consentOut]](t, f.do(call{method: "GET", path: "/v1/clients/cli-ana/consents", header: f.as(auth.RoleClient, "cli-ana")})).Items[0]
	const (
		ana, bob, prov, otherProv, ops = "ana", "bob", "prov", "other-prov", "ops"
	)
	who := map[string]map[string]string{
		ana: f.as(auth.RoleClient, "cli-ana"), bob: f.as(auth.RoleClient, "cli-bob"),
		prov: f.as(auth.RoleProvider, f.psy.ID), otherProv: f.as(auth.RoleProvider, "prv_buenos-aires_other"),
		ops: f.as(auth.RoleOperator, "ops"),
	}
	order := []string{bob, otherProv, ops, prov, ana}
	series := 0
	seriesFor := func(client string) string {
		series++ // each call its own two weeks: a success never collides with another
		start := testNow.AddDate(0, 0, 1+14*series).Format("2006-01-02") + "T10:00:00-03:00"
		return seriesBody(f.psy, client, start, "1w", 2)
	}
	var srsID string
	rows := []struct {
		method, path string
		body         func(role string) string
		want         map[string]int
	}{
		{"POST", "/v1/providers/" + f.psy.ID + "/verify", nil,
			map[string]int{ana: 403, bob: 403, prov: 403, otherProv: 403, ops: 200}},
		{"GET", "/v1/clients/cli-ana/consents", nil,
			map[string]int{ana: 200, bob: 403, prov: 403, otherProv: 403, ops: 403}},
		{"POST", "/v1/clients/cli-ana/consents", func(string) string {
			return `{"purpose": "psychology-care", "jurisdiction": "ar", "text_version": "2026-02"}`
		}, map[string]int{ana: 201, bob: 403, prov: 403, otherProv: 403, ops: 403}},
		{"POST", "/v1/bookings/series", func(role string) string { return seriesFor("cli-ana") },
			map[string]int{ana: 201, bob: 403, prov: 201, otherProv: 403, ops: 201}},
		{"GET", "/v1/sessions/" + b.ID, nil,
			map[string]int{ana: 200, bob: 404, prov: 200, otherProv: 404, ops: 200}},
		{"PUT", "/v1/sessions/" + b.ID + "/notes", func(string) string { return `{"text": "first session"}` },
			map[string]int{ana: 403, bob: 403, prov: 200, otherProv: 403, ops: 403}},
		{"GET", "/v1/sessions/" + b.ID + "/notes", nil,
			map[string]int{ana: 403, bob: 403, prov: 200, otherProv: 403, ops: 403}},
		{"POST", "/v1/sessions/" + b.ID + "/check-in", nil,
			map[string]int{ana: 403, bob: 403, prov: 200, otherProv: 403, ops: 403}},
		{"POST", "/v1/sessions/" + b.ID + "/complete", nil,
			map[string]int{ana: 403, bob: 403, prov: 200, otherProv: 403, ops: 403}},
		{"GET", "/v1/clients/cli-ana/export", nil,
			map[string]int{ana: 200, bob: 403, prov: 403, otherProv: 403, ops: 403}},
		{"GET", "/v1/audit", nil,
			map[string]int{ana: 403, bob: 403, prov: 403, otherProv: 403, ops: 200}},
		{"POST", "/v1/bookings/series/{srs}/cancel", nil,
			map[string]int{bob: 404, otherProv: 404, ana: 200}},
		{"POST", "/v1/clients/cli-ana/consents/" + cns.ID + "/withdraw", nil,
			map[string]int{ana: 200, bob: 403, prov: 403, otherProv: 403, ops: 403}},
		{"DELETE", "/v1/clients/cli-ana/health-data", nil,
			map[string]int{ana: 202, bob: 403, prov: 403, otherProv: 403, ops: 202}},
	}
	for _, row := range rows {
		for _, role := range order {
			want, ok := row.want[role]
			if !ok {
				continue
			}
			path := strings.Replace(row.path, "{srs}", srsID, 1)
			c := call{method: row.method, path: path, header: who[role], valid: true}
			if row.body != nil {
				c.body = row.body(role)
			}
			rec := f.do(c)
			if rec.Code != want {
				t.Errorf("%s %s as %s: %d, want %d: %s", row.method, row.path, role, rec.Code, want, rec.Body)
			}
			if row.path == "/v1/bookings/series" && rec.Code == http.StatusCreated && srsID == "" {
				srsID = decode[seriesOut](t, rec).ID
			}
		}
	}
}

// TestPsych_ConsentGate checks a psychology booking (and series) needs an active
// consent of its client in the provider's jurisdiction, judged before the slot.
func TestPsych_ConsentGate(t *testing.T) {
	now := testNow.UnixMilli()
	month := int64(30 * 24 * time.Hour / time.Millisecond)
	cases := []struct {
		name    string
		consent *bookingv1.Consent
		want    int
	}{
		{"none", nil, http.StatusUnprocessableEntity},
		{"expired", &bookingv1.Consent{GrantedAtMs: now - 25*month, ExpiresAtMs: now - month}, http.StatusUnprocessableEntity},
		{"withdrawn", &bookingv1.Consent{GrantedAtMs: now - month, ExpiresAtMs: now + 23*month, WithdrawnAtMs: now - 1}, http.StatusUnprocessableEntity},
		{"other jurisdiction", &bookingv1.Consent{Jurisdiction: "us", GrantedAtMs: now - month, ExpiresAtMs: now + 23*month}, http.StatusUnprocessableEntity},
		{"other purpose", &bookingv1.Consent{Purpose: "fitness-care", GrantedAtMs: now - month, ExpiresAtMs: now + 23*month}, http.StatusUnprocessableEntity},
		{"active", &bookingv1.Consent{GrantedAtMs: now - month, ExpiresAtMs: now + 23*month}, http.StatusCreated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			p := h.create(providerBody("buenos-aires", "psychology"))
			h.readyPsych(p)
			if c.consent != nil {
				cn := c.consent
				cn.Id, cn.ClientId, cn.TextVersion = "cns_buenos-aires_t", "cli-ana", "2026-01"
				cn.Purpose = cmpOr(cn.Purpose, "psychology-care")
				cn.Jurisdiction = cmpOr(cn.Jurisdiction, "ar")
				h.store.PutConsent(cn)
			}
			start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.FixedZone("-03", -3*3600))
			if c.want != http.StatusCreated {
				// The slot is taken too: the consent is judged first (422, not 409).
				h.store.PutBooking(&bookingv1.Booking{Id: "bkg_buenos-aires_taken", ProviderId: p.ID, ClientId: "cli-x",
					ServiceId: p.Services[0].ID, StartMs: start.UnixMilli(), EndMs: start.Add(30 * time.Minute).UnixMilli(),
					BlockedUntilMs: start.Add(40 * time.Minute).UnixMilli(), Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED,
					Vertical: "psychology"})
			}
			rec := h.bookAs(nil, p, "cli-ana", start.Format(time.RFC3339))
			wantStatus(t, rec, c.want)
			if c.want != http.StatusCreated {
				if pb := checkProblem(t, rec); pb.Code != CodeConsentRequired {
					t.Errorf("code %s, want consent_required", pb.Code)
				}
				rec = h.do(call{method: "POST", path: "/v1/bookings/series", body: seriesBody(p, "cli-ana", "2026-12-02T10:00:00-03:00", "1w", 2), valid: true})
				wantStatus(t, rec, http.StatusUnprocessableEntity)
				if pb := checkProblem(t, rec); pb.Code != CodeConsentRequired {
					t.Errorf("series: code %s, want consent_required", pb.Code)
				}
				return
			}
			if got := decode[bookingOut](t, rec); got.SessionStatus != "scheduled" {
				t.Errorf("psychology booking session_status %q, want scheduled", got.SessionStatus)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestPsych_ConsentGateBeforeSlot checks a booking without consent on a taken
// slot is 422 consent_required, not 409.
func TestPsych_ConsentGateBeforeSlot(t *testing.T) {
	f := newPsychFixture(t)
	wantStatus(t, f.bookAs(nil, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00"), http.StatusCreated)
	rec := f.bookAs(nil, f.psy, "cli-bob", "2026-12-01T09:00:00-03:00")
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	if pb := checkProblem(t, rec); pb.Code != CodeConsentRequired {
		t.Errorf("code %s", pb.Code)
	}
	// The refusal is audited (psychology audits all).
	es := f.store.Audit()
	last := es[len(es)-1]
	if last.Action != "booking.create" || last.Outcome != CodeConsentRequired || last.Subject != "ops" {
		t.Errorf("last audit entry %+v", last)
	}
}

// TestPsych_ConsentLifecycle grants, lists and withdraws a consent: the
// withdrawal cancels the client's future psychology bookings only and makes
// their providers' calendars reload.
func TestPsych_ConsentLifecycle(t *testing.T) {
	f := newPsychFixture(t)
	ana := f.as(auth.RoleClient, "cli-ana")
	list := decode[listOut[consentOut]](t, f.do(call{method: "GET", path: "/v1/clients/cli-ana/consents", header: ana, valid: true}))
	if len(list.Items) != 1 {
		t.Fatalf("consents %+v", list)
	}
	c := list.Items[0]
	if !strings.HasPrefix(c.ID, "cns_buenos-aires_") || c.Status != "active" || c.Purpose != "psychology-care" ||
		c.GrantedAt != "2026-11-30T12:00:00-03:00" || c.ExpiresAt != "2028-11-29T12:00:00-03:00" {
		t.Errorf("consent %+v", c)
	}
	psy := decode[bookingOut](t, f.bookAs(nil, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00"))
	barber := decode[bookingOut](t, f.bookAs(nil, f.barber, "cli-ana", "2026-12-01T09:00:00-03:00"))
	refreshed := len(f.cals.Refreshed()) // the verification refreshed the provider's actor
	rec := f.do(call{method: "POST", path: "/v1/clients/cli-ana/consents/" + c.ID + "/withdraw", header: ana, valid: true})
	wantStatus(t, rec, http.StatusOK)
	w := decode[consentOut](t, rec)
	if w.Status != "withdrawn" || w.WithdrawnAt == "" || !slices.Equal(w.CancelledBookings, []string{psy.ID}) {
		t.Errorf("withdrawn %+v", w)
	}
	if got := f.cals.Refreshed()[refreshed:]; !slices.Equal(got, []string{f.psy.ID}) {
		t.Errorf("Refresh called for %v, want [%s]", got, f.psy.ID)
	}
	got := decode[bookingOut](t, f.do(call{method: "GET", path: "/v1/bookings/" + psy.ID, valid: true}))
	if got.Status != "cancelled" || got.CancelReason != "consent_withdrawn" || got.SessionStatus != "cancelled" {
		t.Errorf("psychology booking after withdrawal %+v", got)
	}
	if got := decode[bookingOut](t, f.do(call{method: "GET", path: "/v1/bookings/" + barber.ID})); got.Status != "confirmed" {
		t.Errorf("barber booking after withdrawal %+v", got)
	}
	// Again: the same answer, nothing more cancelled or refreshed.
	wantStatus(t, f.do(call{method: "POST", path: "/v1/clients/cli-ana/consents/" + c.ID + "/withdraw", header: ana, valid: true}), http.StatusOK)
	if got := f.cals.Refreshed()[refreshed:]; len(got) != 1 {
		t.Errorf("Refresh called again: %v", got)
	}
	// And the next booking needs a new consent.
	wantStatus(t, f.bookAs(nil, f.psy, "cli-ana", "2026-12-02T09:00:00-03:00"), http.StatusUnprocessableEntity)
	// Another client's consent id is not found under ana's path.
	bob := f.grantConsent("cli-bob", "ar")
	wantStatus(t, f.do(call{method: "POST", path: "/v1/clients/cli-ana/consents/" + bob.ID + "/withdraw", header: ana, valid: true}), http.StatusNotFound)
}

// TestPsych_Series books a series whole or not at all, and cancels its rest.
func TestPsych_Series(t *testing.T) {
	f := newPsychFixture(t)
	// Occurrence 3 (Dec 15) collides with bob's booking; the others are free.
	f.readyPsych(f.psy, "cli-bob")
	taken := decode[bookingOut](t, f.bookAs(nil, f.psy, "cli-bob", "2026-12-15T09:00:00-03:00"))
	rec := f.do(call{method: "POST", path: "/v1/bookings/series", body: seriesBody(f.psy, "cli-ana", "2026-12-01T09:00:00-03:00", "1w", 4), valid: true})
	wantStatus(t, rec, http.StatusConflict)
	pb := checkProblem(t, rec)
	if pb.Code != CodeSlotUnavailable || !slices.Equal(pb.Conflicts, []string{"2026-12-15T09:00:00-03:00"}) {
		t.Errorf("409 %+v", pb)
	}
	if strings.Contains(rec.Body.String(), taken.ID) || strings.Contains(rec.Body.String(), "cli-bob") {
		t.Errorf("the 409 names the other booking: %s", rec.Body)
	}
	ana := decode[listOut[bookingOut]](t, f.do(call{method: "GET", path: "/v1/clients/cli-ana/bookings"}))
	if len(ana.Items) != 0 {
		t.Fatalf("a refused series booked %d occurrences", len(ana.Items))
	}

	rec = f.do(call{method: "POST", path: "/v1/bookings/series", body: seriesBody(f.psy, "cli-ana", "2026-12-01T10:00:00-03:00", "1w", 4), valid: true})
	wantStatus(t, rec, http.StatusCreated)
	sr := decode[seriesOut](t, rec)
	if !strings.HasPrefix(sr.ID, "srs_buenos-aires_") || len(sr.Items) != 4 || sr.Every != "1w" ||
		rec.Header().Get("Location") != "/v1/bookings/series/"+sr.ID {
		t.Fatalf("series %+v", sr)
	}
	for i, b := range sr.Items {
		want := fmt.Sprintf("2026-12-%02dT10:00:00-03:00", 1+7*i)
		if b.Start != want || b.SeriesID != sr.ID || b.Status != "confirmed" || b.SessionStatus != "scheduled" {
			t.Errorf("occurrence %d: %+v, want start %s", i, b, want)
		}
	}
	rec = f.do(call{method: "POST", path: "/v1/bookings/series/" + sr.ID + "/cancel", body: `{"from": "2026-12-08T00:00:00-03:00"}`, valid: true})
	wantStatus(t, rec, http.StatusOK)
	after := decode[seriesOut](t, rec)
	for i, b := range after.Items {
		if wantCancelled := i > 0; (b.Status == "cancelled") != wantCancelled || (wantCancelled && b.CancelReason != "series_cancelled") {
			t.Errorf("after cancel, occurrence %d: %+v", i, b)
		}
	}
}

// TestPsych_SeriesBadInput checks a series' rules are 422 (400 for JSON errors).
func TestPsych_SeriesBadInput(t *testing.T) {
	f := newPsychFixture(t)
	for name, c := range map[string]struct {
		body string
		want int
	}{
		"every 3w":      {seriesBody(f.barber, "cli-ana", "2026-12-01T09:00:00-03:00", "3w", 2), 422},
		"count 1":       {seriesBody(f.barber, "cli-ana", "2026-12-01T09:00:00-03:00", "1w", 1), 422},
		"count 53":      {seriesBody(f.barber, "cli-ana", "2026-12-01T09:00:00-03:00", "1w", 53), 422},
		"bad start":     {seriesBody(f.barber, "cli-ana", "tomorrow", "1w", 2), 422},
		"misaligned":    {seriesBody(f.barber, "cli-ana", "2026-12-01T09:07:00-03:00", "1w", 2), 422},
		"count string":  {`{"provider_id":"` + f.barber.ID + `","service_id":"x","client_id":"c","start":"2026-12-01T09:00:00-03:00","every":"1w","count":"2"}`, 400},
		"unknown field": {`{"provider_id":"x","color":"red"}`, 400},
		"no provider":   {seriesBody(providerOut{ID: "prv_buenos-aires_none", Services: []serviceOut{{ID: "svc_x"}}}, "c", "2026-12-01T09:00:00-03:00", "1w", 2), 404},
	} {
		t.Run(name, func(t *testing.T) {
			rec := f.do(call{method: "POST", path: "/v1/bookings/series", body: c.body})
			wantStatus(t, rec, c.want)
		})
	}
}

// TestPsych_CacheControl checks Cache-Control follows the vertical's cache_ttl:
// psychology answers (errors included) are no-store, barber reads max-age.
func TestPsych_CacheControl(t *testing.T) {
	f := newPsychFixture(t)
	pb := decode[bookingOut](t, f.bookAs(nil, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00"))
	bb := decode[bookingOut](t, f.bookAs(nil, f.barber, "cli-ana", "2026-12-01T09:00:00-03:00"))
	prov := f.as(auth.RoleProvider, f.psy.ID)
	other := f.as(auth.RoleProvider, "prv_buenos-aires_other")
	for _, c := range []struct {
		name string
		c    call
		code int
		want string
	}{
		{"barber provider", call{method: "GET", path: "/v1/providers/" + f.barber.ID, anon: true}, 200, "max-age=30"},
		{"barber list", call{method: "GET", path: "/v1/providers?vertical=barber", anon: true}, 200, "max-age=30"},
		{"fitness list", call{method: "GET", path: "/v1/providers?vertical=fitness", anon: true}, 200, "max-age=60"},
		{"barber availability", call{method: "GET", path: "/v1/providers/" + f.barber.ID + "/availability?service_id=" + f.barber.Services[0].ID + "&from=2026-12-01", anon: true}, 200, "max-age=30"},
		{"barber booking", call{method: "GET", path: "/v1/bookings/" + bb.ID}, 200, "max-age=30"},
		{"psychology provider", call{method: "GET", path: "/v1/providers/" + f.psy.ID, anon: true}, 200, "no-store"},
		{"psychology list", call{method: "GET", path: "/v1/providers?vertical=psychology", anon: true}, 200, "no-store"},
		{"mixed list", call{method: "GET", path: "/v1/providers", anon: true}, 200, "no-store"},
		{"psychology availability", call{method: "GET", path: "/v1/providers/" + f.psy.ID + "/availability?service_id=" + f.psy.Services[0].ID + "&from=2026-12-01", anon: true}, 200, "no-store"},
		{"psychology booking", call{method: "GET", path: "/v1/bookings/" + pb.ID}, 200, "no-store"},
		{"client's mixed bookings", call{method: "GET", path: "/v1/clients/cli-ana/bookings"}, 200, "no-store"},
		{"session", call{method: "GET", path: "/v1/sessions/" + pb.ID, header: prov}, 200, "no-store"},
		{"notes", call{method: "GET", path: "/v1/sessions/" + pb.ID + "/notes", header: prov}, 200, "no-store"},
		{"notes refused", call{method: "GET", path: "/v1/sessions/" + pb.ID + "/notes", header: other}, 403, "no-store"},
		{"session not found", call{method: "GET", path: "/v1/sessions/bkg_buenos-aires_none", header: prov}, 404, "no-store"},
		{"consents", call{method: "GET", path: "/v1/clients/cli-ana/consents", header: f.as(auth.RoleClient, "cli-ana")}, 200, "no-store"},
		{"export", call{method: "GET", path: "/v1/clients/cli-ana/export", header: f.as(auth.RoleClient, "cli-ana")}, 200, "no-store"},
		{"create", call{method: "POST", path: "/v1/bookings", body: bookingBody(f.psy.ID, f.psy.Services[0].ID, "cli-ana", "2026-12-01T10:00:00-03:00")}, 201, "no-store"},
	} {
		c.c.valid = c.c.body != ""
		rec := f.do(c.c)
		if rec.Code != c.code || rec.Header().Get("Cache-Control") != c.want {
			t.Errorf("%s: %d Cache-Control %q, want %d %q", c.name, rec.Code, rec.Header().Get("Cache-Control"), c.code, c.want)
		}
	}
}

// TestPsych_NotesOnlyTreatingProvider checks notes are the treating provider's
// alone: everyone else is 403, operators included, and each refusal appended
// an audit record naming the caller; the provider writes and reads them.
func TestPsych_NotesOnlyTreatingProvider(t *testing.T) {
	f := newPsychFixture(t)
	b := decode[bookingOut](t, f.bookAs(nil, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00"))
	refused := []struct {
		role auth.Role
		sub  string
	}{
		{auth.RoleProvider, "prv_buenos-aires_other"}, {auth.RoleClient, "cli-ana"}, {auth.RoleClient, "cli-bob"},
		{auth.RoleOperator, "ops-2"},
	}
	for _, r := range refused {
		for _, c := range []struct{ method, body, action string }{
			{"GET", "", "notes.read"}, {"PUT", `{"text": "x"}`, "notes.write"},
		} {
			n := len(f.store.Audit())
			rec := f.do(call{method: c.method, path: "/v1/sessions/" + b.ID + "/notes", body: c.body, header: f.as(r.role, r.sub), valid: true})
			wantStatus(t, rec, http.StatusForbidden)
			if strings.Contains(rec.Body.String(), "x\"") {
				t.Errorf("the refusal echoes the notes: %s", rec.Body)
			}
			es := f.auditSince(n)
			if len(es) != 1 || es[0].Action != c.action || es[0].Object != b.ID || es[0].Subject != r.sub ||
				es[0].Role != string(r.role) || es[0].Outcome != CodeForbidden || es[0].Node != "ba-1" {
				t.Errorf("%s %s as %s %s: audit %v", c.method, c.action, r.role, r.sub, es)
			}
		}
	}
	prov := f.as(auth.RoleProvider, f.psy.ID)
	rec := f.do(call{method: "PUT", path: "/v1/sessions/" + b.ID + "/notes", body: `{"text": "ansiedad; seguimiento en 2 semanas"}`, header: prov, valid: true})
	wantStatus(t, rec, http.StatusOK)
	rec = f.do(call{method: "GET", path: "/v1/sessions/" + b.ID + "/notes", header: prov, valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[notesOut](t, rec); got.Text != "ansiedad; seguimiento en 2 semanas" || got.BookingID != b.ID || got.UpdatedAt == "" {
		t.Errorf("notes %+v", got)
	}
	// Notes of a barber booking: not a session.
	bb := decode[bookingOut](t, f.bookAs(nil, f.barber, "cli-ana", "2026-12-01T09:00:00-03:00"))
	wantStatus(t, f.do(call{method: "GET", path: "/v1/sessions/" + bb.ID + "/notes", header: f.as(auth.RoleProvider, f.barber.ID)}), http.StatusNotFound)
}

// TestPsych_SessionMoves checks the treating provider moves a session through
// its legal states and an illegal move is 422.
func TestPsych_SessionMoves(t *testing.T) {
	f := newPsychFixture(t)
	b := decode[bookingOut](t, f.bookAs(nil, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00"))
	prov := f.as(auth.RoleProvider, f.psy.ID)
	for _, s := range []struct {
		move string
		code int
		want string
	}{
		{"complete", 422, ""}, {"check-in", 200, "checked_in"}, {"no-show", 422, ""}, {"complete", 200, "completed"}, {"check-in", 422, ""},
	} {
		rec := f.do(call{method: "POST", path: "/v1/sessions/" + b.ID + "/" + s.move, header: prov, valid: true})
		wantStatus(t, rec, s.code)
		if s.code == 200 {
			if got := decode[sessionOut](t, rec); got.Status != s.want {
				t.Errorf("%s: status %q, want %q", s.move, got.Status, s.want)
			}
		}
	}
	got := decode[sessionOut](t, f.do(call{method: "GET", path: "/v1/sessions/" + b.ID, header: f.as(auth.RoleClient, "cli-ana"), valid: true}))
	if got.Status != "completed" || got.BookingID != b.ID {
		t.Errorf("session %+v", got)
	}
}

// TestPsych_Licence checks a psychology provider needs a licence (422 without),
// a barber may not carry one, and a new psychology provider is unverified.
func TestPsych_Licence(t *testing.T) {
	h := newHarness(t)
	noLicence := strings.Replace(validProviderBody, `"vertical": "barber"`, `"vertical": "psychology"`, 1)
	rec := h.do(call{method: "POST", path: "/v1/providers", body: noLicence, valid: true})
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	if pb := checkProblem(t, rec); pb.Code != CodeValidationFailed || !strings.Contains(pb.Detail, "license") {
		t.Errorf("problem %+v", pb)
	}
	barberLicence := strings.Replace(validProviderBody, `"name": "Barbería Don Julio",`, `"name": "B", "license": {"number": "1", "issuer": "x"},`, 1)
	wantStatus(t, h.do(call{method: "POST", path: "/v1/providers", body: barberLicence, valid: true}), http.StatusUnprocessableEntity)
	blank := strings.Replace(providerBody("buenos-aires", "psychology"), `"MN 12345"`, `" "`, 1)
	wantStatus(t, h.do(call{method: "POST", path: "/v1/providers", body: blank, valid: true}), http.StatusUnprocessableEntity)
	p := h.create(providerBody("buenos-aires", "psychology"))
	if p.License == nil || p.License.Number != "MN 12345" || p.Verified == nil || *p.Verified || p.VerifiedAt != "" {
		t.Errorf("new psychology provider %+v", p)
	}
	// Verify is for licensed verticals only.
	b := h.mustCreateProvider()
	wantStatus(t, h.do(call{method: "POST", path: "/v1/providers/" + b.ID + "/verify", valid: true}), http.StatusUnprocessableEntity)
	wantStatus(t, h.do(call{method: "POST", path: "/v1/providers/prv_buenos-aires_none/verify", valid: true}), http.StatusNotFound)
}

// TestPsych_Unverified checks a booking with an unverified psychology provider
// is 422 provider_unverified until an operator verifies it.
func TestPsych_Unverified(t *testing.T) {
	h := newHarness(t)
	p := h.create(providerBody("buenos-aires", "psychology"))
	h.grantConsent("cli-ana", "ar")
	rec := h.bookAs(nil, p, "cli-ana", "2026-12-01T09:00:00-03:00")
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	if pb := checkProblem(t, rec); pb.Code != CodeProviderUnverified {
		t.Errorf("code %s", pb.Code)
	}
	rec = h.do(call{method: "POST", path: "/v1/providers/" + p.ID + "/verify", valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[providerOut](t, rec); got.Verified == nil || !*got.Verified || got.VerifiedAt != "2026-11-30T12:00:00-03:00" {
		t.Errorf("verified %+v", got)
	}
	wantStatus(t, h.bookAs(nil, p, "cli-ana", "2026-12-01T09:00:00-03:00"), http.StatusCreated)
	// Verifying again answers the provider as it is.
	wantStatus(t, h.do(call{method: "POST", path: "/v1/providers/" + p.ID + "/verify", valid: true}), http.StatusOK)
}

// TestPsych_Erasure checks DELETE health-data erases in the store that holds
// the client's data: notes read 410 erased, bookings say erased, the export
// holds no notes and the erasure; a client with nothing here erases nothing.
func TestPsych_Erasure(t *testing.T) {
	f := newPsychFixture(t)
	b := decode[bookingOut](t, f.bookAs(nil, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00"))
	prov := f.as(auth.RoleProvider, f.psy.ID)
	wantStatus(t, f.do(call{method: "PUT", path: "/v1/sessions/" + b.ID + "/notes", body: `{"text": "n"}`, header: prov, valid: true}), http.StatusOK)
	ana := f.as(auth.RoleClient, "cli-ana")
	ex := decode[exportOut](t, f.do(call{method: "GET", path: "/v1/clients/cli-ana/export", header: ana, valid: true}))
	if len(ex.Notes) != 1 || ex.Notes[0].Text != "n" || len(ex.Bookings) != 1 || len(ex.Consents) != 1 || len(ex.Erasures) != 0 {
		t.Errorf("export before erasure %+v", ex)
	}

	n := len(f.store.Audit())
	rec := f.do(call{method: "DELETE", path: "/v1/clients/cli-nobody/health-data", valid: true})
	wantStatus(t, rec, http.StatusAccepted)
	if got := decode[erasureOut](t, rec); len(got.Jurisdictions) != 0 {
		t.Errorf("a client with nothing here: %+v", got)
	}
	if es := f.auditSince(n); len(es) != 0 {
		t.Errorf("erasing a client with nothing here left audit entries %v", es)
	}

	rec = f.do(call{method: "DELETE", path: "/v1/clients/cli-ana/health-data", header: ana, valid: true})
	wantStatus(t, rec, http.StatusAccepted)
	if got := decode[erasureOut](t, rec); !slices.Equal(got.Jurisdictions, []string{"ar"}) || got.Status != "erased" {
		t.Errorf("erasure %+v", got)
	}
	if _, err := f.store.Erasure(context.Background(), "cli-ana"); err != nil {
		t.Errorf("no erasure record: %v", err)
	}
	rec = f.do(call{method: "GET", path: "/v1/sessions/" + b.ID + "/notes", header: prov, valid: true})
	wantStatus(t, rec, http.StatusGone)
	if pb := checkProblem(t, rec); pb.Code != CodeErased {
		t.Errorf("code %s", pb.Code)
	}
	wantStatus(t, f.do(call{method: "PUT", path: "/v1/sessions/" + b.ID + "/notes", body: `{"text": "again"}`, header: prov, valid: true}), http.StatusGone)
	if got := decode[bookingOut](t, f.do(call{method: "GET", path: "/v1/bookings/" + b.ID})); !got.Erased || got.Start != b.Start || got.ProviderID != b.ProviderID {
		t.Errorf("booking after erasure %+v", got)
	}
	ex = decode[exportOut](t, f.do(call{method: "GET", path: "/v1/clients/cli-ana/export", header: ana, valid: true}))
	if len(ex.Notes) != 0 || len(ex.Erasures) != 1 || ex.Erasures[0].Jurisdiction != "ar" {
		t.Errorf("export after erasure %+v", ex)
	}
	// Erasing again: 202, nothing new to destroy.
	wantStatus(t, f.do(call{method: "DELETE", path: "/v1/clients/cli-ana/health-data", header: ana, valid: true}), http.StatusAccepted)
}

// TestPsych_AuditList checks GET /v1/audit filters and pages a jurisdiction's
// entries, and records its own read.
func TestPsych_AuditList(t *testing.T) {
	f := newPsychFixture(t)
	b := decode[bookingOut](t, f.bookAs(nil, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00"))
	for range 3 {
		wantStatus(t, f.do(call{method: "GET", path: "/v1/bookings/" + b.ID}), http.StatusOK)
	}
	rec := f.do(call{method: "GET", path: "/v1/audit?object=" + b.ID + "&limit=2", valid: true})
	wantStatus(t, rec, http.StatusOK)
	page := decode[listOut[auditEntryOut]](t, rec)
	if len(page.Items) != 2 || page.NextCursor == "" || page.Items[0].Action != "booking.create" || page.Items[1].Action != "booking.read" {
		t.Fatalf("page 1 %+v", page)
	}
	if page.Items[1].PrevHash != page.Items[0].Hash && page.Items[1].Seq == page.Items[0].Seq+1 {
		t.Errorf("the chain is broken: %+v", page.Items)
	}
	rec = f.do(call{method: "GET", path: "/v1/audit?object=" + b.ID + "&after=" + page.NextCursor, valid: true})
	page2 := decode[listOut[auditEntryOut]](t, rec)
	// The two reads left, then the record of reading page 1.
	if len(page2.Items) != 3 || page2.NextCursor != "" || page2.Items[0].Seq <= page.Items[1].Seq || page2.Items[2].Action != "audit.read" {
		t.Errorf("page 2 %+v", page2)
	}
	es := f.store.Audit()
	if last := es[len(es)-1]; last.Action != "audit.read" || last.Object != b.ID || last.Role != "operator" {
		t.Errorf("the audit read was not recorded: %+v", last)
	}
	for _, q := range []string{"after=x", "after=-1", "limit=0", "jurisdiction=mars"} {
		rec := f.do(call{method: "GET", path: "/v1/audit?" + q})
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("?%s: %d", q, rec.Code)
		}
	}
}

// TestPsych_BadBodies checks the new bodies: JSON errors 400, rule breaks 422.
func TestPsych_BadBodies(t *testing.T) {
	f := newPsychFixture(t)
	b := decode[bookingOut](t, f.bookAs(nil, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00"))
	ana := f.as(auth.RoleClient, "cli-ana")
	prov := f.as(auth.RoleProvider, f.psy.ID)
	consents := "/v1/clients/cli-ana/consents"
	for _, c := range []struct {
		name, method, path, body string
		who                      map[string]string
		want                     int
	}{
		{"consent not json", "POST", consents, `{"purpose":`, ana, 400},
		{"consent unknown field", "POST", consents, `{"purpose":"psychology-care","jurisdiction":"ar","text_version":"1","x":1}`, ana, 400},
		{"consent wrong type", "POST", consents, `{"purpose":1}`, ana, 400},
		{"consent bad purpose", "POST", consents, `{"purpose":"astrology-care","jurisdiction":"ar","text_version":"1"}`, ana, 422},
		{"consent bad jurisdiction", "POST", consents, `{"purpose":"psychology-care","jurisdiction":"mars","text_version":"1"}`, ana, 422},
		{"consent no text version", "POST", consents, `{"purpose":"psychology-care","jurisdiction":"ar"}`, ana, 422},
		{"consent abroad, no router", "POST", consents, `{"purpose":"psychology-care","jurisdiction":"us","text_version":"1"}`, ana, 409},
		{"notes no text", "PUT", "/v1/sessions/" + b.ID + "/notes", `{}`, prov, 422},
		{"notes wrong type", "PUT", "/v1/sessions/" + b.ID + "/notes", `{"text": 5}`, prov, 400},
		{"notes too long", "PUT", "/v1/sessions/" + b.ID + "/notes", `{"text": "` + strings.Repeat("a", maxNoteBytes+1) + `"}`, prov, 422},
		{"move with body", "POST", "/v1/sessions/" + b.ID + "/check-in", `{"status":"x"}`, prov, 400},
		{"verify with body", "POST", "/v1/providers/" + f.psy.ID + "/verify", `{"ok":true}`, nil, 400},
		{"withdraw unknown", "POST", consents + "/cns_buenos-aires_none/withdraw", ``, ana, 404},
		{"cancel series unknown", "POST", "/v1/bookings/series/srs_buenos-aires_none/cancel", ``, nil, 404},
		{"cancel series bad from", "POST", "/v1/bookings/series/srs_buenos-aires_none/cancel", `{"from":"soon"}`, nil, 422},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantStatus(t, f.do(call{method: c.method, path: c.path, body: c.body, header: c.who}), c.want)
		})
	}
}

// TestPsych_ResidencyAcrossJurisdictions checks a consent granted through the
// US node lives in Argentina alone, and an erasure through the US node erases
// there while the US node keeps nothing of the client.
func TestPsych_ResidencyAcrossJurisdictions(t *testing.T) {
	ar, us, _ := newTestCluster(t, nil)
	p := us.create(providerBody("cordoba", "psychology"))
	us.readyPsych(p, "cli-ana")
	cs, _ := ar.store.ClientConsents(context.Background(), "cli-ana")
	if len(cs) != 1 || !strings.HasPrefix(cs[0].Id, "cns_buenos-aires_") {
		t.Fatalf("ar consents %v", cs)
	}
	if cs, _ := us.store.ClientConsents(context.Background(), "cli-ana"); len(cs) != 0 {
		t.Fatalf("the US store holds %d consents", len(cs))
	}
	b := decode[bookingOut](t, us.bookAs(nil, p, "cli-ana", "2026-12-01T09:00:00-03:00"))
	ana := us.as(auth.RoleClient, "cli-ana")
	list := decode[listOut[consentOut]](t, us.do(call{method: "GET", path: "/v1/clients/cli-ana/consents", header: ana, valid: true}))
	if len(list.Items) != 1 {
		t.Errorf("consents through us: %+v", list)
	}
	ex := decode[exportOut](t, us.do(call{method: "GET", path: "/v1/clients/cli-ana/export", header: ana, valid: true}))
	if len(ex.Bookings) != 1 || ex.Bookings[0].ID != b.ID || len(ex.Consents) != 1 {
		t.Errorf("export through us: %+v", ex)
	}
	// A refused notes read through the US node is audited at home, naming the
	// node it entered by; the notes through US reach the treating provider.
	n := len(ar.store.Audit())
	rec := us.do(call{method: "GET", path: "/v1/sessions/" + b.ID + "/notes", header: ana, valid: true})
	wantStatus(t, rec, http.StatusForbidden)
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("relayed refusal Cache-Control %q", rec.Header().Get("Cache-Control"))
	}
	if es := ar.auditSince(n); len(es) != 1 || es[0].Node != "us-1" || es[0].Action != "notes.read" || es[0].Outcome != CodeForbidden {
		t.Errorf("audit of a refusal relayed from us: %v", es)
	}
	prov := us.as(auth.RoleProvider, p.ID)
	wantStatus(t, us.do(call{method: "PUT", path: "/v1/sessions/" + b.ID + "/notes", body: `{"text": "t"}`, header: prov, valid: true}), http.StatusOK)
	rec = us.do(call{method: "DELETE", path: "/v1/clients/cli-ana/health-data", header: ana, valid: true})
	wantStatus(t, rec, http.StatusAccepted)
	if got := decode[erasureOut](t, rec); !slices.Equal(got.Jurisdictions, []string{"ar"}) {
		t.Errorf("erasure through us: %+v", got)
	}
	if _, err := ar.store.Erasure(context.Background(), "cli-ana"); err != nil {
		t.Errorf("ar did not erase: %v", err)
	}
	if _, err := us.store.Erasure(context.Background(), "cli-ana"); err == nil {
		t.Error("the US store keeps an erasure record of an Argentine client")
	}
	for _, e := range us.store.Audit() {
		if strings.Contains(e.Object, "cli-ana") || strings.Contains(e.Object, b.ID) {
			t.Errorf("the US audit log names the client's data: %+v", e)
		}
	}
	if logs := us.logs.String(); strings.Contains(logs, "cli-ana") || strings.Contains(logs, b.ID) {
		t.Errorf("the US logs name the client:\n%s", logs)
	}
}

// TestPsych_ResidencyViolation checks a single-jurisdiction node refuses to
// keep a home-resident record of another jurisdiction.
func TestPsych_ResidencyViolation(t *testing.T) {
	h := newHarness(t) // ar, no Router
	rec := h.do(call{method: "POST", path: "/v1/providers", body: providerBody("us-east", "psychology"), valid: true})
	wantStatus(t, rec, http.StatusConflict)
	if pb := checkProblem(t, rec); pb.Code != CodeResidencyViolation {
		t.Errorf("code %s", pb.Code)
	}
	// A barber (residency none) of another jurisdiction may be kept.
	wantStatus(t, h.do(call{method: "POST", path: "/v1/providers", body: providerBody("us-east", "barber"), valid: true}), http.StatusCreated)
	// A psychology provider of another jurisdiction found in this store is not served.
	h.store.PutProvider(&bookingv1.Provider{Id: "prv_us-east_x", Vertical: "psychology", City: "us-east", Jurisdiction: "us", Timezone: "America/New_York"})
	wantStatus(t, h.do(call{method: "GET", path: "/v1/providers/prv_us-east_x", anon: true, valid: true}), http.StatusConflict)
}

// TestPsych_ErrorMapping checks the FSM's and the actors' new verdicts map to
// their problems.
func TestPsych_ErrorMapping(t *testing.T) {
	for _, c := range []struct {
		err  error
		code string
		st   int
	}{
		{resultError(&bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_CONSENT_REQUIRED}, storage.ErrInvalid), CodeConsentRequired, 422},
		{resultError(&bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_PROVIDER_UNVERIFIED}, storage.ErrInvalid), CodeProviderUnverified, 422},
		{resultError(&bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_ERASED}, storage.ErrInvalid), CodeErased, 410},
		{resultError(&bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_NOT_FOUND}, storage.ErrNotFound), CodeNotFound, 404},
		{replyError(11, "x"), CodeForbidden, 403},
		{replyError(10, "x"), CodeErased, 410},
		{replyError(8, "x"), CodeConsentRequired, 422},
		{replyError(9, "x"), CodeProviderUnverified, 422},
		{replyError(6, "x"), CodeValidationFailed, 422},
		{replyError(5, "x"), CodeJurisdictionUnavailable, 503},
		{&seriesConflict{starts: []string{"a"}}, CodeSlotUnavailable, 409},
	} {
		st, code, _, _ := classify(c.err)
		if st != c.st || code != c.code {
			t.Errorf("%v: %d %s, want %d %s", c.err, st, code, c.st, c.code)
		}
	}
	if resultError(nil, nil) != nil || replyError(0, "") != nil {
		t.Error("success mapped to an error")
	}
}
