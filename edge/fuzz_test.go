package edge

import (
	"net/http"
	"strings"
	"testing"

	"github.com/barberpro/edge/edge/auth"
)

// fuzzCheck asserts the answer to arbitrary bytes: a 2xx, or a 4xx problem; never
// a 5xx (the harness also fails on any recovered panic).
func fuzzCheck(t *testing.T, h *harness, path string, body []byte, ct string) {
	h.t = t
	rec := h.do(call{method: "POST", path: path, body: string(body), header: map[string]string{"Content-Type": ct}})
	if rec.Code >= 500 || rec.Code < 200 || (rec.Code >= 300 && rec.Code < 400) {
		t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
	}
}

// FuzzCreateProvider feeds arbitrary bodies to POST /v1/providers.
func FuzzCreateProvider(f *testing.F) {
	h := newHarness(f)
	h.noSpec = true
	for _, s := range []string{
		validProviderBody,
		`{}`, `[]`, `null`, `"x"`, `{"name": 1}`, `{"services": [{}]}`,
		strings.Replace(validProviderBody, `"1500.00"`, `"15.005"`, 1),
		strings.Replace(validProviderBody, `"09:00"`, `"24:00"`, 1),
		strings.Replace(validProviderBody, `"2026-12-24"`, `"2026-02-30"`, 1),
		`{"name":"a","vertical":"psychology","city":"us-east","timezone":"Asia/Tokyo","services":[{"name":"s","duration_minutes":480,"buffer_minutes":120,"price":{"amount":"0.01","currency":"USD"}}],"weekly_hours":{"sunday":[{"start":"00:00","end":"24:00"}]},"min_notice_minutes":0,"horizon_days":730}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheck(t, h, "/v1/providers", body, "application/json")
	})
}

// FuzzCreateBooking feeds arbitrary bodies to POST /v1/bookings against a real
// provider.
func FuzzCreateBooking(f *testing.F) {
	h := newHarness(f)
	h.noSpec = true
	p := h.mustCreateProvider()
	for _, s := range []string{
		bookingBody(p.ID, p.Services[0].ID, "c", "2026-12-01T09:00:00-03:00"),
		bookingBody(p.ID, p.Services[1].ID, "c", "2026-12-01T12:00:00Z"),
		bookingBody(p.ID, p.Services[0].ID, "c", "2026-12-01T09:07:00-03:00"),
		bookingBody(p.ID, "svc_x", "c", "2026-12-01T09:00:00-03:00"),
		bookingBody("prv_x", p.Services[0].ID, "c", "2026-12-01T09:00:00-03:00"),
		bookingBody(p.ID, p.Services[0].ID, "c", "2026-02-30T09:00:00-03:00"),
		`{}`, `{"start": 1}`, `{"provider_id": null}`, `{"a":1}`, "\x00", `{"start":"9999-12-31T23:59:59+23:59"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheck(t, h, "/v1/bookings", body, "application/json")
	})
}

// TestServer_FuzzHarness keeps the fuzz check itself honest: a 2xx passes.
func TestServer_FuzzHarness(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	rec := h.do(call{method: "POST", path: "/v1/bookings", body: bookingBody(p.ID, p.Services[0].ID, "c", "2026-12-01T09:00:00-03:00"), valid: true})
	wantStatus(t, rec, http.StatusCreated)
}

// FuzzAuthorizationHeader feeds arbitrary Authorization headers to an operator
// route and a public one: the operator route answers 200 only to a header whose
// token verifies as an operator's, else 401 or 403 (never a 5xx), and the public
// route always answers 200.
func FuzzAuthorizationHeader(f *testing.F) {
	h := newHarness(f)
	h.noSpec = true
	op := h.tokens.Token(f, auth.RoleOperator, "ops")
	cl := h.tokens.Token(f, auth.RoleClient, "cli-ana")
	for _, s := range []string{
		"Bearer " + op, "bearer " + op, "Bearer  " + op, "Bearer " + op + " x", "Bearer " + cl,
		"Bearer " + op[:len(op)-2], "Basic " + op, "Bearer", "", "Bearer \x00", "Bearer a.b.c",
		"Bearer eyJhbGciOiJub25lIiwia2lkIjoieCJ9.eyJzdWIiOiJvcHMiLCJyb2xlIjoib3BlcmF0b3IifQ.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		h.t = t
		hd := map[string]string{"Authorization": header}
		rec := h.do(call{method: "GET", path: "/v1/cluster/status", header: hd})
		switch rec.Code {
		case http.StatusOK:
			p, err := h.srv.cfg.Auth.Authenticate(http.Header{"Authorization": {header}})
			if err != nil || p.Role != auth.RoleOperator {
				t.Fatalf("200 for %q (%+v, %v)", header, p, err)
			}
		case http.StatusUnauthorized, http.StatusForbidden:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, header, rec.Body)
		}
		if rec := h.do(call{method: "GET", path: "/healthz", header: hd}); rec.Code != http.StatusOK {
			t.Fatalf("public route: status %d for %q", rec.Code, header)
		}
	})
}

// fuzzCheckAs is fuzzCheck with the request's method and Authorization header.
func fuzzCheckAs(t *testing.T, h *harness, method, path string, body []byte, authz string) {
	h.t = t
	rec := h.do(call{method: method, path: path, body: string(body), header: map[string]string{"Authorization": authz}})
	if rec.Code >= 500 || rec.Code < 200 || (rec.Code >= 300 && rec.Code < 400) {
		t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
	}
}

// FuzzGrantConsent feeds arbitrary bodies to POST /v1/clients/{id}/consents as
// the client.
func FuzzGrantConsent(f *testing.F) {
	h := newHarness(f)
	h.noSpec = true
	ana := h.tokens.Bearer(f, auth.RoleClient, "cli-ana")
	for _, s := range []string{
		`{"purpose": "psychology-care", "jurisdiction": "ar", "text_version": "2026-01"}`,
		`{"purpose": "psychology-care", "jurisdiction": "us", "text_version": "2026-01"}`,
		`{"purpose": "barber-care", "jurisdiction": "ar", "text_version": "2026-01"}`,
		`{"purpose": "psychology-care", "jurisdiction": "ar", "text_version": "\u0000"}`,
		`{"purpose": ["x"]}`, `[]`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheckAs(t, h, "POST", "/v1/clients/cli-ana/consents", body, ana)
	})
}

// FuzzCreateSeries feeds arbitrary bodies to POST /v1/bookings/series against a
// real provider.
func FuzzCreateSeries(f *testing.F) {
	h := newHarness(f)
	h.noSpec = true
	p := h.mustCreateProvider()
	for _, s := range []string{
		seriesBody(p, "c", "2026-12-01T09:00:00-03:00", "1w", 4),
		seriesBody(p, "c", "2026-12-01T09:00:00-03:00", "2w", 52),
		seriesBody(p, "c", "2026-12-01T09:07:00-03:00", "1w", 2),
		seriesBody(p, "c", "2026-12-01T09:00:00-03:00", "3w", 2),
		seriesBody(p, "c", "2026-12-01T09:00:00-03:00", "1w", -1),
		`{"count": 1e9}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheckAs(t, h, "POST", "/v1/bookings/series", body, h.operator)
	})
}

// FuzzSessionNotes feeds arbitrary bodies to PUT /v1/sessions/{id}/notes as the
// treating provider.
func FuzzSessionNotes(f *testing.F) {
	h := newHarness(f)
	h.noSpec = true
	p := h.create(providerBody("buenos-aires", "psychology"))
	h.readyPsych(p, "cli-ana")
	b := h.mustBook(p, "cli-ana", "2026-12-01T09:00:00-03:00")
	prov := h.tokens.Bearer(f, auth.RoleProvider, p.ID)
	for _, s := range []string{`{"text": "ok"}`, `{"text": ""}`, `{"text": "\ud800"}`, `{"text": null}`, `{"text": 1}`, `{"notes": "x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheckAs(t, h, "PUT", "/v1/sessions/"+b.ID+"/notes", body, prov)
	})
}

// FuzzCancelSeries feeds arbitrary bodies to POST /v1/bookings/series/{id}/cancel.
func FuzzCancelSeries(f *testing.F) {
	h := newHarness(f)
	h.noSpec = true
	p := h.mustCreateProvider()
	rec := h.do(call{method: "POST", path: "/v1/bookings/series", body: seriesBody(p, "c", "2026-12-01T09:00:00-03:00", "1w", 3)})
	if rec.Code != http.StatusCreated {
		f.Fatalf("series: %d %s", rec.Code, rec.Body)
	}
	id := decode[seriesOut](f, rec).ID
	for _, s := range []string{``, `{}`, `{"from": "2026-12-08T00:00:00-03:00"}`, `{"from": "later"}`, `{"from": 1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzCheckAs(t, h, "POST", "/v1/bookings/series/"+id+"/cancel", body, h.operator)
	})
}
