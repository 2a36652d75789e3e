package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/edge/edgetest"
	"github.com/barberpro/edge/edge/ids"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/topology"
)

// TestServer_RoutesMatchSpec checks that the routes the mux serves are exactly the
// paths and methods of openapi.yaml.
func TestServer_RoutesMatchSpec(t *testing.T) {
	h := newHarness(t)
	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var served, spec []string
	for _, rt := range h.srv.routes {
		served = append(served, rt.pattern())
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			spec = append(spec, method+" "+path)
		}
	}
	slices.Sort(served)
	slices.Sort(spec)
	if !slices.Equal(served, spec) {
		t.Errorf("routes served and routes in openapi.yaml differ:\nserved: %v\nspec:   %v", served, spec)
	}
}

// TestServer_OpenAPIServedAsJSON checks /openapi.json is the embedded document.
func TestServer_OpenAPIServedAsJSON(t *testing.T) {
	h := newHarness(t)
	rec := h.do(call{method: "GET", path: "/openapi.json", valid: true})
	wantStatus(t, rec, http.StatusOK)
	doc := decode[map[string]any](t, rec)
	if doc["openapi"] != "3.0.3" {
		t.Errorf("openapi = %v, want 3.0.3", doc["openapi"])
	}
}

// TestServer_Scenario drives every route with good requests, in the order a client
// would, and validates each exchange against the spec.
func TestServer_Scenario(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	if p.Jurisdiction != "ar" || p.Timezone != "America/Argentina/Buenos_Aires" || p.SlotStepMinutes != 15 ||
		p.MinNoticeMinutes != 60 || p.HorizonDays != 90 || len(p.Services) != 2 || p.Services[0].ID == "" {
		t.Fatalf("created provider: %+v", p)
	}
	if got := p.Services[1].Price; got != (moneyJSON{"800.50", "ARS"}) {
		t.Errorf("price %+v, want 800.50 ARS", got)
	}
	if got := p.WeeklyHours["saturday"]; got == nil || len(got) != 0 {
		t.Errorf("saturday = %#v, want []", got)
	}
	if p.CreatedAt != "2026-11-30T12:00:00-03:00" {
		t.Errorf("created_at %q", p.CreatedAt)
	}

	rec := h.do(call{method: "GET", path: "/v1/providers/" + p.ID, valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[providerOut](t, rec); got.ID != p.ID || got.Name != p.Name {
		t.Errorf("get provider: %+v", got)
	}

	h.mustCreateProvider()
	rec = h.do(call{method: "GET", path: "/v1/providers?city=buenos-aires&vertical=barber&limit=1", valid: true})
	wantStatus(t, rec, http.StatusOK)
	page := decode[listOut[providerOut]](t, rec)
	if len(page.Items) != 1 || page.NextCursor == "" {
		t.Fatalf("page 1: %+v", page)
	}
	rec = h.do(call{method: "GET", path: "/v1/providers?limit=1&cursor=" + page.NextCursor, valid: true})
	wantStatus(t, rec, http.StatusOK)
	if page2 := decode[listOut[providerOut]](t, rec); len(page2.Items) != 1 || page2.Items[0].ID == page.Items[0].ID {
		t.Fatalf("page 2: %+v", page2)
	}
	rec = h.do(call{method: "GET", path: "/v1/providers?city=cordoba", valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := rec.Body.String(); got != "{\"items\":[]}\n" {
		t.Errorf("empty list = %q", got)
	}

	rec = h.do(call{method: "PATCH", path: "/v1/providers/" + p.ID, valid: true, body: `{
		"weekly_hours": {"saturday": [{"start": "10:00", "end": "14:00"}]},
		"min_notice_minutes": 30,
		"add_services": [{"name": "Color", "duration_minutes": 90, "price": {"amount": "9000", "currency": "ARS"}}]}`})
	wantStatus(t, rec, http.StatusOK)
	patched := decode[providerOut](t, rec)
	if len(patched.Services) != 3 || patched.Services[2].Price.Amount != "9000.00" || patched.MinNoticeMinutes != 30 ||
		len(patched.WeeklyHours["saturday"]) != 1 || len(patched.WeeklyHours["monday"]) != 2 || len(patched.DateOverrides) != 1 {
		t.Errorf("patched: %+v", patched)
	}

	rec = h.do(call{method: "GET", path: "/v1/providers/" + p.ID + "/availability?service_id=" + p.Services[0].ID + "&from=2026-12-01&days=1", valid: true})
	wantStatus(t, rec, http.StatusOK)
	av := decode[availabilityOut](t, rec)
	// Tuesday 09:00-12:00 and 17:00-20:00, 30 min service on a 15 min step: 11 + 11 starts.
	if av.Timezone != "America/Argentina/Buenos_Aires" || len(av.Slots) != 22 ||
		av.Slots[0] != (slotJSON{"2026-12-01T09:00:00-03:00", "2026-12-01T09:30:00-03:00"}) {
		t.Fatalf("availability: %+v", av)
	}

	rec = h.do(call{method: "GET", path: "/v1/providers/" + p.ID + "/placement", valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[placementOut](t, rec); got != (placementOut{"ba-1", "buenos-aires", "ar"}) {
		t.Errorf("placement: %+v", got)
	}

	// The start given in UTC is answered in the provider's zone.
	b := h.mustBook(p, "cli_1", "2026-12-01T12:00:00Z")
	want := bookingOut{ID: b.ID, Status: "confirmed", ProviderID: p.ID, ServiceID: p.Services[0].ID, ClientID: "cli_1",
		Start: "2026-12-01T09:00:00-03:00", End: "2026-12-01T09:30:00-03:00", Price: moneyJSON{"1500.00", "ARS"}}
	if b != want {
		t.Errorf("booking %+v, want %+v", b, want)
	}
	// The buffer (10 min) blocks 09:30 but not 09:45.
	rec = h.do(call{method: "POST", path: "/v1/bookings", valid: true, body: bookingBody(p.ID, p.Services[0].ID, "cli_2", "2026-12-01T09:30:00-03:00")})
	wantStatus(t, rec, http.StatusConflict)
	h.mustBook(p, "cli_1", "2026-12-01T09:45:00-03:00")

	rec = h.do(call{method: "GET", path: "/v1/bookings/" + b.ID, valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[bookingOut](t, rec); got != want {
		t.Errorf("get booking %+v", got)
	}

	rec = h.do(call{method: "GET", path: "/v1/clients/cli_1/bookings?limit=1", valid: true})
	wantStatus(t, rec, http.StatusOK)
	cb := decode[listOut[bookingOut]](t, rec)
	if len(cb.Items) != 1 || cb.NextCursor == "" {
		t.Fatalf("client bookings page 1: %+v", cb)
	}
	rec = h.do(call{method: "GET", path: "/v1/clients/cli_1/bookings?cursor=" + cb.NextCursor, valid: true})
	wantStatus(t, rec, http.StatusOK)
	if cb2 := decode[listOut[bookingOut]](t, rec); len(cb2.Items) != 1 || cb2.NextCursor != "" {
		t.Fatalf("client bookings page 2: %+v", cb2)
	}

	rec = h.do(call{method: "POST", path: "/v1/bookings/" + b.ID + "/reschedule", valid: true, body: `{"start": "2026-12-01T17:00:00-03:00"}`})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[bookingOut](t, rec); got.Start != "2026-12-01T17:00:00-03:00" || got.End != "2026-12-01T17:30:00-03:00" {
		t.Errorf("rescheduled: %+v", got)
	}
	// Rescheduling onto the other booking is 409 and changes nothing.
	rec = h.do(call{method: "POST", path: "/v1/bookings/" + b.ID + "/reschedule", valid: true, body: `{"start": "2026-12-01T09:45:00-03:00"}`})
	wantStatus(t, rec, http.StatusConflict)

	for i := 0; i < 2; i++ { // cancelling again is 200 with the same body
		rec = h.do(call{method: "POST", path: "/v1/bookings/" + b.ID + "/cancel", valid: true, body: "{}"})
		wantStatus(t, rec, http.StatusOK)
		if got := decode[bookingOut](t, rec); got.Status != "cancelled" || got.Start != "2026-12-01T17:00:00-03:00" {
			t.Errorf("cancel %d: %+v", i, got)
		}
	}
	rec = h.do(call{method: "POST", path: "/v1/bookings/" + b.ID + "/cancel", valid: true}) // no body
	wantStatus(t, rec, http.StatusOK)
	// The slot is free again at once.
	h.mustBook(p, "cli_3", "2026-12-01T17:00:00-03:00")
	// A cancelled booking cannot be rescheduled.
	rec = h.do(call{method: "POST", path: "/v1/bookings/" + b.ID + "/reschedule", valid: true, body: `{"start": "2026-12-02T09:00:00-03:00"}`})
	wantStatus(t, rec, http.StatusUnprocessableEntity)

	rec = h.do(call{method: "GET", path: "/v1/cluster/members", valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[listOut[Member]](t, rec); len(got.Items) != 1 || got.Items[0].Raft.Role != "leader" {
		t.Errorf("members: %+v", got)
	}
	wantStatus(t, h.do(call{method: "GET", path: "/healthz", valid: true}), http.StatusOK)
	wantStatus(t, h.do(call{method: "GET", path: "/readyz", valid: true}), http.StatusOK)
	rec = h.do(call{method: "GET", path: "/metrics", valid: true})
	wantStatus(t, rec, http.StatusOK)
	for _, m := range []string{
		`barberpro_http_requests_total{route="POST /v1/bookings",status="201"}`,
		`barberpro_http_requests_total{route="POST /v1/bookings",status="409"}`,
		`barberpro_http_request_duration_seconds_bucket{route="GET /v1/bookings/{id}"`,
		`barberpro_http_panics_total 0`,
	} {
		if !strings.Contains(rec.Body.String(), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// TestServer_Readyz checks the 503 problem carries the reason.
func TestServer_Readyz(t *testing.T) {
	h := newHarness(t)
	notReady := errors.New("store catching up: applied 10 of 42")
	h.ready.Store(&notReady)
	rec := h.do(call{method: "GET", path: "/readyz", valid: true})
	wantStatus(t, rec, http.StatusServiceUnavailable)
	if p := checkProblem(t, rec); p.Code != CodeJurisdictionUnavailable || !strings.Contains(p.Detail, "applied 10 of 42") {
		t.Errorf("problem %+v", p)
	}
	full := fmt.Errorf("storage: not ready: %w: raft log write failing: no space left on device", storage.ErrStorageUnavailable)
	h.ready.Store(&full)
	rec = h.do(call{method: "GET", path: "/readyz", valid: true})
	wantStatus(t, rec, http.StatusServiceUnavailable)
	if p := checkProblem(t, rec); p.Code != CodeStorageUnavailable || !strings.Contains(p.Detail, "no space left") {
		t.Errorf("problem %+v", p)
	}
	wantStatus(t, h.do(call{method: "GET", path: "/healthz"}), http.StatusOK)
}

// TestServer_UnknownRoutes checks 404 and 405 are problems.
func TestServer_UnknownRoutes(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/nope", 404, ""},
		{"GET", "/v1/providers/", 404, ""},
		{"GET", "/v1/bookings/x/y/z", 404, ""},
		{"DELETE", "/v1/bookings/bkg_1", 405, "GET, HEAD"},
		{"GET", "/v1/bookings", 405, "POST"},
		{"PUT", "/v1/providers/prv_1", 405, "GET, PATCH, HEAD"},
		{"POST", "/healthz", 405, "GET, HEAD"},
	} {
		rec := h.do(call{method: c.method, path: c.path})
		if rec.Code != c.status || rec.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want %d %q", c.method, c.path, rec.Code, rec.Header().Get("Allow"), c.status, c.allow)
		}
		if p := checkProblem(t, rec); p.Code != CodeNotFound {
			t.Errorf("%s %s: code %s", c.method, c.path, p.Code)
		}
	}
}

// TestServer_ErrorTable checks every sentinel of the packages below the edge maps
// to its documented status and code.
func TestServer_ErrorTable(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{actors.ErrSlotTaken, 409, CodeSlotUnavailable},
		{storage.ErrSlotTaken, 409, CodeSlotUnavailable},
		{actors.ErrInvalid, 422, CodeValidationFailed},
		{storage.ErrInvalid, 422, CodeValidationFailed},
		{actors.ErrNotFound, 404, CodeNotFound},
		{storage.ErrNotFound, 404, CodeNotFound},
		{actors.ErrIdempotencyKeyReused, 422, CodeIdempotencyKeyReused},
		{storage.ErrIdempotencyKeyReused, 422, CodeIdempotencyKeyReused},
		{actors.ErrInvalidTransition, 422, CodeValidationFailed},
		{storage.ErrInvalidTransition, 422, CodeValidationFailed},
		{storage.ErrAlreadyExists, 409, CodeValidationFailed},
		{actors.ErrUnavailable, 503, CodeJurisdictionUnavailable},
		{storage.ErrNotLeader, 503, CodeJurisdictionUnavailable},
		{storage.ErrTimeout, 503, CodeJurisdictionUnavailable},
		{storage.ErrClosed, 503, CodeJurisdictionUnavailable},
		{context.DeadlineExceeded, 503, CodeJurisdictionUnavailable},
		{fmt.Errorf("actors: forwarding: %w", fmt.Errorf("%w: leader is ba-2", storage.ErrNotLeader)), 503, CodeJurisdictionUnavailable},
		{storage.ErrStorageUnavailable, 503, CodeStorageUnavailable},
		// As a calendar actor in this process passes the store's error on.
		{fmt.Errorf("%w: %w", actors.ErrUnavailable, storage.ErrStorageUnavailable), 503, CodeStorageUnavailable},
	} {
		t.Run(c.err.Error(), func(t *testing.T) {
			h := newHarness(t)
			p := h.mustCreateProvider()
			h.cals.Fail = func(string) error { return fmt.Errorf("wrapped: %w", c.err) }
			rec := h.do(call{method: "POST", path: "/v1/bookings", valid: true, body: bookingBody(p.ID, p.Services[0].ID, "c", "2026-12-01T09:00:00-03:00")})
			wantStatus(t, rec, c.status)
			if pb := checkProblem(t, rec); pb.Code != c.code {
				t.Errorf("code %s, want %s", pb.Code, c.code)
			}
			if ra := rec.Header().Get("Retry-After"); (c.status == 503) != (ra == "1") {
				t.Errorf("Retry-After %q on %d", ra, c.status)
			}
		})
	}
	// Every sentinel of both packages is in the table.
	for _, e := range []error{actors.ErrSlotTaken, actors.ErrInvalid, actors.ErrNotFound, actors.ErrIdempotencyKeyReused,
		actors.ErrInvalidTransition, actors.ErrUnavailable, storage.ErrNotFound, storage.ErrSlotTaken,
		storage.ErrIdempotencyKeyReused, storage.ErrInvalidTransition, storage.ErrAlreadyExists, storage.ErrInvalid,
		storage.ErrNotLeader, storage.ErrClosed, storage.ErrTimeout, storage.ErrStorageUnavailable, ErrNoPeer, ErrUnknownMember, ErrMemberAlive} {
		if status, _, _, _ := classify(e); status == http.StatusInternalServerError {
			t.Errorf("%v is not in errorTable", e)
		}
	}
}

// TestServer_StoreErrors checks store failures on reads, lists and provider
// creation answer 503, and a failed linearizable read is not answered stale.
func TestServer_StoreErrors(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	b := h.mustBook(p, "c", "2026-12-01T09:00:00-03:00")
	h.store.Fail = func(op string) error {
		if op == "LinearizableRead" || op == "Propose" || op == "ListProviders" {
			return fmt.Errorf("%w: leader is ba-2", storage.ErrNotLeader)
		}
		return nil
	}
	for _, c := range []call{
		{method: "GET", path: "/v1/bookings/" + b.ID, valid: true},
		{method: "GET", path: "/v1/clients/c/bookings", valid: true},
		{method: "GET", path: "/v1/providers", valid: true},
		{method: "POST", path: "/v1/providers", body: validProviderBody, valid: true},
	} {
		rec := h.do(c)
		wantStatus(t, rec, http.StatusServiceUnavailable)
		if rec.Header().Get("Retry-After") != "1" {
			t.Errorf("%s %s: no Retry-After", c.method, c.path)
		}
	}
}

// TestServer_StorageUnavailable checks a node whose store cannot write answers
// writes with 503 storage_unavailable (Retry-After) and still serves reads.
func TestServer_StorageUnavailable(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	b := h.mustBook(p, "c", "2026-12-01T09:00:00-03:00")
	full := fmt.Errorf("%w: fsm cannot apply entries 7..9: write: no space left on device", storage.ErrStorageUnavailable)
	h.store.Fail = func(op string) error {
		if op == "Propose" {
			return full
		}
		return nil
	}
	h.cals.Fail = func(op string) error {
		if op == "Book" || op == "Cancel" || op == "Reschedule" {
			return fmt.Errorf("%w: store: %w", actors.ErrUnavailable, full)
		}
		return nil
	}
	for _, c := range []call{
		{method: "POST", path: "/v1/providers", body: validProviderBody, valid: true},
		{method: "POST", path: "/v1/bookings", valid: true, body: bookingBody(p.ID, p.Services[0].ID, "c", "2026-12-01T11:00:00-03:00")},
		{method: "POST", path: "/v1/bookings/" + b.ID + "/cancel", valid: true},
	} {
		rec := h.do(c)
		wantStatus(t, rec, http.StatusServiceUnavailable)
		if pb := checkProblem(t, rec); pb.Code != CodeStorageUnavailable || !strings.Contains(pb.Detail, "no space left") {
			t.Errorf("%s %s: problem %+v", c.method, c.path, pb)
		}
		if rec.Header().Get("Retry-After") != "1" {
			t.Errorf("%s %s: no Retry-After", c.method, c.path)
		}
	}
	for _, path := range []string{"/v1/bookings/" + b.ID, "/v1/providers/" + p.ID, "/v1/clients/c/bookings"} {
		wantStatus(t, h.do(call{method: "GET", path: path, valid: true}), http.StatusOK)
	}
}

// TestServer_AvailabilityReplyError checks an error carried in Reply.Error.
func TestServer_AvailabilityErrors(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/v1/providers/prv_nope/availability?service_id=" + p.Services[0].ID + "&from=2026-12-01", 404},
		{"/v1/providers/" + p.ID + "/availability?service_id=svc_nope&from=2026-12-01", 422},
	} {
		wantStatus(t, h.do(call{method: "GET", path: c.path, valid: true}), c.status)
	}
}

// panickyCalendars panics on Book.
type panickyCalendars struct{ *edgetest.Calendars }

func (panickyCalendars) Book(context.Context, *calendarv1.BookRequest) (*bookingv1.Booking, error) {
	panic("boom")
}

// TestServer_RecoversPanics checks a panicking dependency gets a 500 problem, is
// logged and counted, and the server goes on serving.
func TestServer_RecoversPanics(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) { c.Calendars = panickyCalendars{edgetest.NewCalendars(edgetest.NewStore(), nil)} })
	h.noSpec = true
	h.store.PutProvider(&bookingv1.Provider{Id: "prv_1", Timezone: "UTC", Services: []*bookingv1.Service{{Id: "svc_1"}}})
	rec := h.do(call{method: "POST", path: "/v1/bookings", body: bookingBody("prv_1", "svc_1", "c", "2026-12-01T09:00:00Z")})
	wantStatus(t, rec, http.StatusInternalServerError)
	if p := checkProblem(t, rec); p.Code != CodeInternalError {
		t.Errorf("code %s", p.Code)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "recovered panic") || !strings.Contains(logs, "boom") {
		t.Errorf("panic not logged: %s", logs)
	}
	// The route pattern is logged, never the path (it holds ids).
	if !strings.Contains(logs, "POST /v1/bookings") || strings.Contains(logs, "prv_1") {
		t.Errorf("panic log: want the route pattern and no id: %s", logs)
	}
	h.logs = &syncBuffer{} // the panic was expected: do not fail the test at cleanup
	wantStatus(t, serve(h.srv, "GET", "/healthz", ""), http.StatusOK)
	if m := serve(h.srv, "GET", "/metrics", ""); !strings.Contains(m.Body.String(), "barberpro_http_panics_total 1") {
		t.Errorf("panic not counted")
	}
}

// TestConfig_Validate checks required fields.
func TestConfig_Validate(t *testing.T) {
	good := DefaultConfig()
	good.NodeID, good.City, good.Topology = "n", "buenos-aires", topology.Default()
	good.Store = edgetest.NewStore()
	good.Calendars = edgetest.NewCalendars(edgetest.NewStore(), nil)
	good.Placement = func(context.Context, string) (Placement, error) { return Placement{}, nil }
	good.Auth = edgetest.NewTokens(t).Verifier
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, mut := range map[string]func(*Config){
		"no node":      func(c *Config) { c.NodeID = "" },
		"unknown city": func(c *Config) { c.City = "atlantis" },
		"no store":     func(c *Config) { c.Store = nil },
		"no calendars": func(c *Config) { c.Calendars = nil },
		"no topology":  func(c *Config) { c.Topology = nil },
		"no placement": func(c *Config) { c.Placement = nil },
		"no auth":      func(c *Config) { c.Auth = nil },
		"neg limit":    func(c *Config) { c.Limits.PerSubject = -1 },
		"neg burst":    func(c *Config) { c.Limits.IPBurst = -1 },
		"neg body":     func(c *Config) { c.MaxBodyBytes = -1 },
		"neg timeout":  func(c *Config) { c.RequestTimeout = -1 },
	} {
		c := good
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	// Two servers may share a registry.
	good.Registry = nil
	s1, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	good.Registry = s1.cfg.Registry
	if _, err := New(good); err != nil {
		t.Errorf("second server on one registry: %v", err)
	}
	if id := ids.New("bkg"); len(id) != 30 || !strings.HasPrefix(id, "bkg_") || id == ids.New("bkg") {
		t.Errorf("ids.New = %q", id)
	}
}
