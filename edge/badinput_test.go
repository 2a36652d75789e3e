package edge

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// providerWith returns validProviderBody with old replaced by new (once).
func providerWith(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(validProviderBody, old) {
		t.Fatalf("validProviderBody lacks %q", old)
	}
	return strings.Replace(validProviderBody, old, new, 1)
}

// TestServer_BadInput sends malformed, ill-typed and impossible requests to every
// route: each is a 4xx problem with its code (never a 500), and the node still
// serves afterwards.
func TestServer_BadInput(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	taken := h.mustBook(p, "c0", "2026-12-02T09:00:00-03:00")
	svc := p.Services[0].ID
	book := func(start string) string { return bookingBody(p.ID, svc, "c1", start) }
	const corte = `{"name": "Corte", "duration_minutes": 30, "buffer_minutes": 10, "price": {"amount": "1500.00", "currency": "ARS"}}`
	svcWith := func(old, new string) string { return strings.Replace(corte, old, new, 1) }
	manyServices := strings.TrimSuffix(strings.Repeat(corte+",", 51), ",")
	huge := `{"provider_id": "` + strings.Repeat("x", 2<<20) + `"}`

	cases := []struct {
		name   string
		c      call
		status int
		code   string
		detail string // a substring of the problem's detail
	}{
		// Decoding: 400, 413, 415.
		{"malformed query escape", call{method: "GET", path: "/v1/providers?city=%zz"}, 400, CodeValidationFailed, "query string"},
		{"malformed query on a provider route", call{method: "GET", path: "/v1/providers/" + p.ID + "/availability?service_id=" + svc + "&from=%2"}, 400, CodeValidationFailed, "query string"},
		{"malformed JSON", call{method: "POST", path: "/v1/bookings", body: `{"provider_id": `}, 400, CodeValidationFailed, "malformed JSON"},
		{"syntax error", call{method: "POST", path: "/v1/bookings", body: `{"provider_id" "x"}`}, 400, CodeValidationFailed, "malformed JSON"},
		{"not an object", call{method: "POST", path: "/v1/bookings", body: `[1, 2]`}, 400, CodeValidationFailed, "JSON object"},
		{"null body", call{method: "POST", path: "/v1/bookings", body: `null`}, 400, CodeValidationFailed, "JSON object"},
		{"two values", call{method: "POST", path: "/v1/bookings", body: book("2026-12-01T09:00:00-03:00") + `{}`}, 400, CodeValidationFailed, "exactly one"},
		{"empty body", call{method: "POST", path: "/v1/bookings", body: " ", header: map[string]string{"Content-Type": "application/json"}}, 400, CodeValidationFailed, "required"},
		{"unknown field", call{method: "POST", path: "/v1/bookings", body: `{"provider_id": "a", "prize": 1}`}, 400, CodeValidationFailed, `"prize"`},
		{"unknown nested field", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"friday"`, `"funday"`)}, 400, CodeValidationFailed, `"funday"`},
		{"wrong type start", call{method: "POST", path: "/v1/bookings", body: `{"start": 1733043600}`}, 400, CodeValidationFailed, "start"},
		{"wrong type duration", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"duration_minutes": 30`, `"duration_minutes": "30"`)}, 400, CodeValidationFailed, "duration_minutes"},
		{"fractional duration", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"duration_minutes": 30`, `"duration_minutes": 30.5`)}, 400, CodeValidationFailed, "duration_minutes"},
		{"overflowing duration", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"duration_minutes": 30`, `"duration_minutes": 1e30`)}, 400, CodeValidationFailed, "duration_minutes"},
		{"amount as a number", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"amount": "1500.00"`, `"amount": 1500`)}, 400, CodeValidationFailed, "amount"},
		{"2 MiB body", call{method: "POST", path: "/v1/bookings", body: huge}, 413, CodePayloadTooLarge, "larger than"},
		{"2 MiB provider", call{method: "POST", path: "/v1/providers", body: huge}, 413, CodePayloadTooLarge, "larger than"},
		{"text/plain", call{method: "POST", path: "/v1/bookings", body: book("2026-12-01T09:00:00-03:00"), header: map[string]string{"Content-Type": "text/plain"}}, 415, CodeUnsupportedMediaType, "text/plain"},
		{"no content type", call{method: "POST", path: "/v1/providers", body: validProviderBody, header: map[string]string{"Content-Type": ""}}, 415, CodeUnsupportedMediaType, "none"},
		{"form", call{method: "POST", path: "/v1/bookings/" + taken.ID + "/reschedule", body: "start=x", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, CodeUnsupportedMediaType, "application/json"},

		// Instants and dates: 422.
		{"impossible date", call{method: "POST", path: "/v1/bookings", body: book("2026-02-30T09:00:00-03:00")}, 422, CodeValidationFailed, "start"},
		{"hour 25", call{method: "POST", path: "/v1/bookings", body: book("2026-12-01T25:00:00-03:00")}, 422, CodeValidationFailed, "start"},
		{"no offset", call{method: "POST", path: "/v1/bookings", body: book("2026-12-01T09:00:00")}, 422, CodeValidationFailed, "offset"},
		{"date only", call{method: "POST", path: "/v1/bookings", body: book("2026-12-01")}, 422, CodeValidationFailed, "start"},
		{"empty start", call{method: "POST", path: "/v1/bookings", body: book("")}, 422, CodeValidationFailed, "start"},
		{"hours 25:00", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"end": "12:00"`, `"end": "25:00"`)}, 422, CodeValidationFailed, "weekly_hours.monday[0].end"},
		{"hours 24:30", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"end": "12:00"`, `"end": "24:30"`)}, 422, CodeValidationFailed, "weekly_hours.monday[0].end"},
		{"hours 9:00", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"start": "09:00"`, `"start": "9:00"`)}, 422, CodeValidationFailed, "weekly_hours.monday[0].start"},
		{"hours reversed", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"start": "09:00"`, `"start": "12:00"`)}, 422, CodeValidationFailed, "before end"},
		{"hours overlapping", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"start": "17:00"`, `"start": "11:00"`)}, 422, CodeValidationFailed, "overlap"},
		{"override date", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"2026-12-24"`, `"2026-02-30"`)}, 422, CodeValidationFailed, "date_overrides[0].date"},
		{"override twice", call{method: "POST", path: "/v1/providers", body: providerWith(t, `{"date": "2026-12-24", "hours": []}`, `{"date": "2026-12-24", "hours": []}, {"date": "2026-12-24", "hours": []}`)}, 422, CodeValidationFailed, "twice"},

		// Provider values: 422.
		{"zero duration", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"duration_minutes": 30`, `"duration_minutes": 0`)}, 422, CodeValidationFailed, "duration_minutes"},
		{"negative duration", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"duration_minutes": 30`, `"duration_minutes": -30`)}, 422, CodeValidationFailed, "duration_minutes"},
		{"huge duration", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"duration_minutes": 30`, `"duration_minutes": 9000000000`)}, 422, CodeValidationFailed, "duration_minutes"},
		{"duration 481", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"duration_minutes": 30`, `"duration_minutes": 481`)}, 422, CodeValidationFailed, "between 5 and 480"},
		{"buffer 121", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"buffer_minutes": 10`, `"buffer_minutes": 121`)}, 422, CodeValidationFailed, "buffer_minutes"},
		{"amount 3 places", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"1500.00"`, `"15.005"`)}, 422, CodeValidationFailed, "two decimal places"},
		{"amount negative", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"1500.00"`, `"-1.00"`)}, 422, CodeValidationFailed, "amount"},
		{"amount zero", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"1500.00"`, `"0.00"`)}, 422, CodeValidationFailed, "greater than zero"},
		{"amount exponent", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"1500.00"`, `"1e3"`)}, 422, CodeValidationFailed, "amount"},
		{"wrong currency", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"currency": "ARS"`, `"currency": "USD"`)}, 422, CodeValidationFailed, "city's currency"},
		{"no price", call{method: "POST", path: "/v1/providers", body: providerWith(t, `, "price": {"amount": "800.5", "currency": "ARS"}`, ``)}, 422, CodeValidationFailed, "services[1].price is required"},
		{"unknown city", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"buenos-aires"`, `"atlantis"`)}, 422, CodeValidationFailed, "city"},
		{"unknown vertical", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"barber"`, `"dentist"`)}, 422, CodeValidationFailed, "vertical"},
		{"unknown timezone", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"city": "buenos-aires",`, `"city": "buenos-aires", "timezone": "Mars/Olympus",`)}, 422, CodeValidationFailed, "timezone"},
		{"Local timezone", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"city": "buenos-aires",`, `"city": "buenos-aires", "timezone": "Local",`)}, 422, CodeValidationFailed, "timezone"},
		{"empty name", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"Barbería Don Julio"`, `"   "`)}, 422, CodeValidationFailed, "name"},
		{"long name", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"Barbería Don Julio"`, `"`+strings.Repeat("ñ", 201)+`"`)}, 422, CodeValidationFailed, "name"},
		{"control char name", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"Barbería Don Julio"`, `"a\u0007b"`)}, 422, CodeValidationFailed, "control"},
		{"no services", call{method: "POST", path: "/v1/providers", body: `{"name": "x", "vertical": "barber", "city": "buenos-aires", "services": []}`}, 422, CodeValidationFailed, "at least one"},
		{"51 services", call{method: "POST", path: "/v1/providers", body: `{"name": "x", "vertical": "barber", "city": "buenos-aires", "services": [` + manyServices + `]}`}, 422, CodeValidationFailed, "at most 50"},
		{"bad service name", call{method: "POST", path: "/v1/providers", body: `{"name": "x", "vertical": "barber", "city": "buenos-aires", "services": [` + svcWith(`"Corte"`, `""`) + `]}`}, 422, CodeValidationFailed, "services[0].name"},
		{"negative notice", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"city": "buenos-aires",`, `"city": "buenos-aires", "min_notice_minutes": -1,`)}, 422, CodeValidationFailed, "min_notice_minutes"},
		{"zero horizon", call{method: "POST", path: "/v1/providers", body: providerWith(t, `"city": "buenos-aires",`, `"city": "buenos-aires", "horizon_days": 0,`)}, 422, CodeValidationFailed, "horizon_days"},
		{"long idempotency key", call{method: "POST", path: "/v1/providers", body: validProviderBody, header: map[string]string{IdempotencyHeader: strings.Repeat("k", 201)}}, 422, CodeValidationFailed, IdempotencyHeader},

		// Bookings against the calendar.
		{"unknown provider", call{method: "POST", path: "/v1/bookings", body: bookingBody("prv_nope", svc, "c1", "2026-12-01T09:00:00-03:00")}, 404, CodeNotFound, "prv_nope"},
		{"unknown service", call{method: "POST", path: "/v1/bookings", body: bookingBody(p.ID, "svc_nope", "c1", "2026-12-01T09:00:00-03:00")}, 422, CodeValidationFailed, "svc_nope"},
		{"misaligned start", call{method: "POST", path: "/v1/bookings", body: book("2026-12-01T09:05:00-03:00")}, 422, CodeValidationFailed, "aligned"},
		{"outside hours", call{method: "POST", path: "/v1/bookings", body: book("2026-12-01T13:00:00-03:00")}, 422, CodeValidationFailed, "outside"},
		{"ends after hours", call{method: "POST", path: "/v1/bookings", body: book("2026-12-01T11:45:00-03:00")}, 422, CodeValidationFailed, "outside"},
		{"closed override", call{method: "POST", path: "/v1/bookings", body: book("2026-12-24T09:00:00-03:00")}, 422, CodeValidationFailed, "outside"},
		{"in the past", call{method: "POST", path: "/v1/bookings", body: book("2026-11-30T09:00:00-03:00")}, 422, CodeValidationFailed, "past"},
		{"beyond horizon", call{method: "POST", path: "/v1/bookings", body: book("2027-12-01T09:00:00-03:00")}, 422, CodeValidationFailed, "horizon"},
		{"taken slot", call{method: "POST", path: "/v1/bookings", body: book("2026-12-02T09:15:00-03:00")}, 409, CodeSlotUnavailable, "overlaps another booking"},
		{"missing client", call{method: "POST", path: "/v1/bookings", body: bookingBody(p.ID, svc, "", "2026-12-01T09:00:00-03:00")}, 422, CodeValidationFailed, "client_id"},
		{"client with slash", call{method: "POST", path: "/v1/bookings", body: bookingBody(p.ID, svc, "a/b", "2026-12-01T09:00:00-03:00")}, 422, CodeValidationFailed, "client_id"},

		// Other routes.
		{"get unknown booking", call{method: "GET", path: "/v1/bookings/bkg_nope"}, 404, CodeNotFound, "bkg_nope"},
		{"get unknown provider", call{method: "GET", path: "/v1/providers/prv_nope"}, 404, CodeNotFound, "prv_nope"},
		{"placement unknown provider", call{method: "GET", path: "/v1/providers/prv_nope/placement"}, 404, CodeNotFound, "prv_nope"},
		{"cancel unknown", call{method: "POST", path: "/v1/bookings/bkg_nope/cancel"}, 404, CodeNotFound, "bkg_nope"},
		{"cancel with fields", call{method: "POST", path: "/v1/bookings/" + taken.ID + "/cancel", body: `{"reason": "x"}`}, 400, CodeValidationFailed, `"reason"`},
		{"reschedule unknown", call{method: "POST", path: "/v1/bookings/bkg_nope/reschedule", body: `{"start": "2026-12-01T09:00:00-03:00"}`}, 404, CodeNotFound, "bkg_nope"},
		{"reschedule no start", call{method: "POST", path: "/v1/bookings/" + taken.ID + "/reschedule", body: `{}`}, 422, CodeValidationFailed, "start"},
		{"reschedule outside hours", call{method: "POST", path: "/v1/bookings/" + taken.ID + "/reschedule", body: `{"start": "2026-12-05T09:00:00-03:00"}`}, 422, CodeValidationFailed, "outside"},
		{"patch nothing", call{method: "PATCH", path: "/v1/providers/" + p.ID, body: `{}`}, 422, CodeValidationFailed, "nothing to change"},
		{"patch unknown provider", call{method: "PATCH", path: "/v1/providers/prv_nope", body: `{"horizon_days": 10}`}, 404, CodeNotFound, "prv_nope"},
		{"patch unknown field", call{method: "PATCH", path: "/v1/providers/" + p.ID, body: `{"name": "new"}`}, 400, CodeValidationFailed, `"name"`},
		{"patch too many services", call{method: "PATCH", path: "/v1/providers/" + p.ID, body: `{"add_services": [` + strings.TrimSuffix(strings.Repeat(corte+",", 49), ",") + `]}`}, 422, CodeValidationFailed, "at most 50"},
		{"patch bad hours", call{method: "PATCH", path: "/v1/providers/" + p.ID, body: `{"weekly_hours": {"sunday": [{"start": "10:00", "end": "10:00"}]}}`}, 422, CodeValidationFailed, "weekly_hours.sunday[0]"},
		{"patch text/plain", call{method: "PATCH", path: "/v1/providers/" + p.ID, body: `{"horizon_days": 10}`, header: map[string]string{"Content-Type": "text/plain"}}, 415, CodeUnsupportedMediaType, "text/plain"},
		{"list limit 0", call{method: "GET", path: "/v1/providers?limit=0"}, 422, CodeValidationFailed, "limit"},
		{"list limit 501", call{method: "GET", path: "/v1/providers?limit=501"}, 422, CodeValidationFailed, "limit"},
		{"list limit abc", call{method: "GET", path: "/v1/providers?limit=abc"}, 400, CodeValidationFailed, "limit"},
		{"list unknown city", call{method: "GET", path: "/v1/providers?city=atlantis"}, 422, CodeValidationFailed, "atlantis"},
		{"list unknown vertical", call{method: "GET", path: "/v1/providers?vertical=dentist"}, 422, CodeValidationFailed, "dentist"},
		{"client list limit", call{method: "GET", path: "/v1/clients/c1/bookings?limit=9999"}, 422, CodeValidationFailed, "limit"},
		{"client list bad cursor", call{method: "GET", path: "/v1/clients/c1/bookings?cursor=zzz"}, 422, CodeValidationFailed, "cursor"},
		{"availability no service", call{method: "GET", path: "/v1/providers/" + p.ID + "/availability?from=2026-12-01"}, 422, CodeValidationFailed, "service_id"},
		{"availability no from", call{method: "GET", path: "/v1/providers/" + p.ID + "/availability?service_id=" + svc}, 422, CodeValidationFailed, "from"},
		{"availability bad from", call{method: "GET", path: "/v1/providers/" + p.ID + "/availability?service_id=" + svc + "&from=2026-02-30"}, 422, CodeValidationFailed, "from"},
		{"availability days 0", call{method: "GET", path: "/v1/providers/" + p.ID + "/availability?service_id=" + svc + "&from=2026-12-01&days=0"}, 422, CodeValidationFailed, "days"},
		{"availability days 32", call{method: "GET", path: "/v1/providers/" + p.ID + "/availability?service_id=" + svc + "&from=2026-12-01&days=32"}, 422, CodeValidationFailed, "days"},
		{"availability days x", call{method: "GET", path: "/v1/providers/" + p.ID + "/availability?service_id=" + svc + "&from=2026-12-01&days=x"}, 400, CodeValidationFailed, "days"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := h.do(c.c)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, c.status, rec.Body)
			}
			pb := checkProblem(t, rec)
			if pb.Code != c.code || !strings.Contains(pb.Detail, c.detail) {
				t.Errorf("problem %s %q, want %s containing %q", pb.Code, pb.Detail, c.code, c.detail)
			}
		})
	}
	wantStatus(t, h.do(call{method: "GET", path: "/healthz"}), http.StatusOK)
	// Nothing bad got in: one provider, the one booking.
	rec := h.do(call{method: "GET", path: "/v1/providers"})
	if got := decode[listOut[providerOut]](t, rec); len(got.Items) != 1 {
		t.Errorf("%d providers after bad input, want 1", len(got.Items))
	}
	rec = h.do(call{method: "GET", path: fmt.Sprintf("/v1/providers/%s/availability?service_id=%s&from=2026-12-02&days=1", p.ID, svc)})
	wantStatus(t, rec, http.StatusOK)
}
