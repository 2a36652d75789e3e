package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/edge/auth"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/topology"
	"github.com/getkin/kin-openapi/openapi3"
)

// TestFirstHour_LastVoter: a removal or leave of a group's only voter is a 409
// last_voter with a detail in the operator's terms, not a 500.
func TestFirstHour_LastVoter(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) {
		c.Leave = func(context.Context) error { return fmt.Errorf("cluster: ba-1: %w", storage.ErrLastVoter) }
		c.Remove = func(_ context.Context, id string, _ bool) error {
			return fmt.Errorf("cluster: %s: %w", id, storage.ErrLastVoter)
		}
	})
	for _, path := range []string{"/v1/cluster/members/ba-1/remove?force=true", "/v1/cluster/leave"} {
		rec := h.do(call{method: "POST", path: path, valid: true})
		wantStatus(t, rec, http.StatusConflict)
		if p := checkProblem(t, rec); p.Code != CodeLastVoter || p.Detail != lastVoterDetail {
			t.Errorf("%s: %+v", path, p)
		}
	}
}

// TestFirstHour_IdempotencyKeyBounds: an empty Idempotency-Key is a 400 (it was
// taken as none), the server's bound is the spec's, and a key within it works.
func TestFirstHour_IdempotencyKeyBounds(t *testing.T) {
	h := newHarness(t)
	post := func(key string, valid bool) *httptest.ResponseRecorder {
		return h.do(call{method: "POST", path: "/v1/providers", body: validProviderBody,
			header: map[string]string{IdempotencyHeader: key}, valid: valid})
	}
	rec := post("", false)
	wantStatus(t, rec, http.StatusBadRequest)
	if p := checkProblem(t, rec); p.Code != CodeValidationFailed || !strings.Contains(p.Detail, IdempotencyHeader) {
		t.Errorf("empty key: %+v", p)
	}
	wantStatus(t, post(strings.Repeat("k", maxIdempotencyKeyBytes), true), http.StatusCreated)
	wantStatus(t, post(strings.Repeat("k", maxIdempotencyKeyBytes+1), false), http.StatusUnprocessableEntity)
	wantStatus(t, post("clé", false), http.StatusUnprocessableEntity)

	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	s := doc.Components.Parameters["IdempotencyKey"].Value.Schema.Value
	if s.MinLength != 1 || s.MaxLength == nil || *s.MaxLength != maxIdempotencyKeyBytes {
		t.Errorf("spec Idempotency-Key length %d..%v, server 1..%d", s.MinLength, s.MaxLength, maxIdempotencyKeyBytes)
	}
}

// TestFirstHour_SpecAsStrictAsServer: values the server refuses, the spec
// refuses too (a generated client or fuzzer is told before it sends them).
func TestFirstHour_SpecAsStrictAsServer(t *testing.T) {
	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	schema := func(name string) *openapi3.Schema { return doc.Components.Schemas[name].Value }
	refuses := func(s *openapi3.Schema, v any) bool { return s.VisitJSON(v) != nil }
	money := schema("MoneyInput")
	for _, a := range []string{"0", "0.00", "-1.00", "1.001", "01.00"} {
		if !refuses(money, map[string]any{"amount": a, "currency": "ARS"}) {
			t.Errorf("spec accepts amount %q", a)
		}
	}
	for _, a := range []string{"0.01", "0.5", "1500", "1500.00"} {
		if refuses(money, map[string]any{"amount": a, "currency": "ARS"}) {
			t.Errorf("spec refuses amount %q", a)
		}
	}
	if !refuses(money, map[string]any{"amount": "1.00", "currency": "XXX"}) {
		t.Errorf("spec accepts currency XXX")
	}
	for _, d := range []string{"2026-02-30", "2026-13-01", "2026-1-1"} {
		if !refuses(schema("Date"), d) {
			t.Errorf("spec accepts date %q", d)
		}
	}
	if refuses(schema("Date"), "2026-02-28") {
		t.Errorf("spec refuses a real date")
	}
	topo := topology.Default()
	for name, s := range doc.Components.Schemas {
		if p, ok := s.Value.Properties["city"]; ok && len(p.Value.Enum) != len(topo.CityNames()) {
			t.Errorf("%s.city enum %v, topology %v", name, p.Value.Enum, topo.CityNames())
		}
	}
	for _, id := range []string{"", "a b", "a/b", strings.Repeat("x", 201)} {
		if !refuses(doc.Components.Parameters["ProviderID"].Value.Schema.Value, id) {
			t.Errorf("spec accepts provider id %q", id)
		}
	}
}

// TestFirstHour_DetailsInClientTerms: a detail from the layers below says what
// is wrong without their package prefixes and wrapped sentinels.
func TestFirstHour_DetailsInClientTerms(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: calendar: %w", actors.ErrInvalid, fmt.Errorf("%w: start is in the past", storage.ErrInvalid)), "start is in the past"},
		{fmt.Errorf("%w: start 2026-12-01T09:00:00-03:00 is outside the working hours", actors.ErrInvalid), "start 2026-12-01T09:00:00-03:00 is outside the working hours"},
		{fmt.Errorf("storage: %w", storage.ErrNotFound), "not found"},
		{fmt.Errorf("%w: %q", ErrUnknownMember, "ghost"), `unknown cluster member: "ghost"`},
		{fmt.Errorf("%w: booking %q is cancelled", actors.ErrInvalidTransition, "b1"), `booking "b1" is cancelled`},
		{fmt.Errorf("%w: no leader known", storage.ErrNotLeader), "no leader known"},
	} {
		_, _, detail, _ := classify(tc.err)
		if errors.Is(tc.err, actors.ErrInvalid) {
			// The same text in an actor's reply (a remote calendar's).
			_, _, d, _ := classify(replyError(calendarv1.ErrorCode_ERROR_CODE_INVALID, tc.err.Error()))
			if d != tc.want {
				t.Errorf("reply %q: detail %q, want %q", tc.err, d, tc.want)
			}
		}
		if detail != tc.want {
			t.Errorf("%q: detail %q, want %q", tc.err, detail, tc.want)
		}
		for _, bad := range []string{"actors:", "storage:", "calendar:", "edge:", "invalid request", "invalid command"} {
			if strings.Contains(detail, bad) {
				t.Errorf("%q: detail %q names %q", tc.err, detail, bad)
			}
		}
	}
}

// TestFirstHour_EveryFieldReported: a request with several missing or wrong
// fields names them all (errors, and detail joins them); a negative price
// "must be positive".
func TestFirstHour_EveryFieldReported(t *testing.T) {
	h := newHarness(t)
	rec := h.do(call{method: "POST", path: "/v1/bookings", body: `{}`})
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	p := decode[problemBody](t, rec)
	var fields []string
	for _, e := range p.Errors {
		fields = append(fields, e.Field)
	}
	if fmt.Sprint(fields) != "[provider_id service_id client_id start]" || !strings.Contains(p.Detail, "start is required") {
		t.Errorf("empty booking: %+v", p)
	}
	rec = h.do(call{method: "POST", path: "/v1/bookings/series", body: `{"every": "3w", "count": 0}`})
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	p = decode[problemBody](t, rec)
	fields = nil
	for _, e := range p.Errors {
		fields = append(fields, e.Field)
	}
	if fmt.Sprint(fields) != "[provider_id service_id client_id start every count]" {
		t.Errorf("empty series: %+v", p)
	}
	body := `{"name": "", "vertical": "barber", "city": "buenos-aires", "services": [
		{"name": "Corte", "duration_minutes": 0, "price": {"amount": "-1500.00", "currency": "ARS"}}]}`
	rec = h.do(call{method: "POST", path: "/v1/providers", body: body})
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	p = decode[problemBody](t, rec)
	fields = nil
	for _, e := range p.Errors {
		fields = append(fields, e.Field)
	}
	if fmt.Sprint(fields) != "[name services[0].duration_minutes services[0].price.amount]" ||
		!strings.Contains(p.Detail, "must be positive") || strings.Contains(p.Detail, "decimal string") {
		t.Errorf("bad provider: %+v", p)
	}
}

// TestFirstHour_ConsentReplayIsTheFirstAnswer: a consent granted, then
// withdrawn, replays as granted (status, body and Location of the first answer).
func TestFirstHour_ConsentReplayIsTheFirstAnswer(t *testing.T) {
	h := newHarness(t)
	hdr := h.as(auth.RoleClient, "cli-ana")
	hdr[IdempotencyHeader] = "grant-1"
	body := `{"purpose": "psychology-care", "jurisdiction": "ar", "text_version": "2026-01"}`
	first := h.do(call{method: "POST", path: "/v1/clients/cli-ana/consents", header: hdr, body: body, valid: true})
	wantStatus(t, first, http.StatusCreated)
	c := decode[consentOut](t, first)
	wantStatus(t, h.do(call{method: "POST", path: "/v1/clients/cli-ana/consents/" + c.ID + "/withdraw",
		header: h.as(auth.RoleClient, "cli-ana")}), http.StatusOK)
	again := h.do(call{method: "POST", path: "/v1/clients/cli-ana/consents", header: hdr, body: body, valid: true})
	wantStatus(t, again, http.StatusCreated)
	if again.Body.String() != first.Body.String() || again.Header().Get("Location") != first.Header().Get("Location") {
		t.Errorf("replay after withdrawal: %s (Location %q), want %s (Location %q)", again.Body,
			again.Header().Get("Location"), first.Body, first.Header().Get("Location"))
	}
}
