package edge

import (
	"strings"
	"testing"

	"github.com/barberpro/edge/edge/auth"
)

// TestPsych_Review9Probe_BadInput: malformed, huge and out-of-range input on the
// new routes is a 4xx problem with no-store, and appends no "ok" entry (passes).
func TestPsych_Review9Probe_BadInput(t *testing.T) {
	f := newPsychFixture(t)
	b := decode[bookingOut](t, f.bookAs(nil, f.psy, "cli-ana", "2026-12-01T09:00:00-03:00"))
	ana := f.as(auth.RoleClient, "cli-ana")
	prov := f.as(auth.RoleProvider, f.psy.ID)
	big := `{"text":"` + strings.Repeat("a", 2<<20) + `"}`
	n := len(f.store.Audit())
	for _, c := range []struct {
		method, path, body string
		who                map[string]string
	}{
		{"PUT", "/v1/sessions/" + b.ID + "/notes", big, prov},
		{"PUT", "/v1/sessions/" + b.ID + "/notes", `{"text":null}`, prov},
		{"PUT", "/v1/sessions/" + b.ID + "/notes", `[]`, prov},
		{"POST", "/v1/bookings/series", `{"provider_id":"` + f.psy.ID + `","service_id":"x","client_id":"cli-ana","start":"2026-12-01T09:00:00-03:00","every":"1w","count":1e30}`, nil},
		{"POST", "/v1/bookings/series", `{"provider_id":"` + f.psy.ID + `","service_id":"` + f.psy.Services[0].ID + `","client_id":"cli-ana","start":"9999-12-01T09:00:00-03:00","every":"2w","count":52}`, nil},
		{"POST", "/v1/bookings/series", `{"provider_id":"` + f.psy.ID + `","service_id":"` + f.psy.Services[0].ID + `","client_id":"cli-ana","start":"0001-01-01T00:00:00Z","every":"1w","count":52}`, nil},
		{"POST", "/v1/bookings/series/" + strings.Repeat("x", 5000) + "/cancel", `{}`, nil},
		{"POST", "/v1/bookings/series/srs_buenos-aires_x/cancel", `{"from":"9999-99-99"}`, nil},
		{"POST", "/v1/clients/cli-ana/consents", `{"purpose":"psychology-care","jurisdiction":"ar","text_version":"` + strings.Repeat("é", 65) + `"}`, ana},
		{"POST", "/v1/clients/cli-ana/consents", `{"purpose":"psychology-care","jurisdiction":"ar","text_version":"a\u0000b"}`, ana},
		{"GET", "/v1/audit?object=" + strings.Repeat("x", 10000), "", nil},
		{"GET", "/v1/audit?after=18446744073709551616", "", nil},
		{"GET", "/v1/audit?limit=100000000000000000000", "", nil},
		{"DELETE", "/v1/clients/" + strings.Repeat("c", 5000) + "/health-data", "", nil},
		{"GET", "/v1/sessions/" + strings.Repeat("b", 5000), "", nil},
		{"POST", "/v1/sessions/" + b.ID + "/check-in", `{"a":` + strings.Repeat("[", 100000) + `}`, prov},
	} {
		rec := f.do(call{method: c.method, path: c.path, body: c.body, header: c.who})
		if rec.Code < 400 || rec.Code >= 500 {
			t.Errorf("%s %.80s %.80s: %d %.300s", c.method, c.path, c.body, rec.Code, rec.Body)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s %.80s: Cache-Control %q", c.method, c.path, cc)
		}
	}
	if es := f.auditSince(n); len(es) > 0 {
		for _, e := range es {
			if e.Outcome == "ok" {
				t.Errorf("bad input changed something: %v", e)
			}
		}
	}
}
