package edge

import (
	"net/http"
	"strings"
	"testing"
)

// TestServer_IdempotentBooking checks the same key with the same body replays the
// first answer, and with another body is 422.
func TestServer_IdempotentBooking(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	key := map[string]string{IdempotencyHeader: "k-1"}
	body := bookingBody(p.ID, p.Services[0].ID, "cli", "2026-12-01T09:00:00-03:00")
	first := h.do(call{method: "POST", path: "/v1/bookings", body: body, header: key, valid: true})
	wantStatus(t, first, http.StatusCreated)
	if first.Header().Get(ReplayedHeader) != "" {
		t.Errorf("first answer marked replayed")
	}
	// Same request, other spacing and field order: the same answer.
	again := `{"start": "2026-12-01T09:00:00-03:00", "client_id": "cli",
	           "service_id": "` + p.Services[0].ID + `", "provider_id": "` + p.ID + `"}`
	second := h.do(call{method: "POST", path: "/v1/bookings", body: again, header: key, valid: true})
	wantStatus(t, second, http.StatusCreated)
	if second.Body.String() != first.Body.String() || second.Header().Get(ReplayedHeader) != "true" {
		t.Errorf("replay: %s %q, want %s and the replay header", second.Body, second.Header().Get(ReplayedHeader), first.Body)
	}
	other := bookingBody(p.ID, p.Services[0].ID, "cli", "2026-12-01T10:00:00-03:00")
	rec := h.do(call{method: "POST", path: "/v1/bookings", body: other, header: key, valid: true})
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	if pb := checkProblem(t, rec); pb.Code != CodeIdempotencyKeyReused {
		t.Errorf("code %s", pb.Code)
	}
	// The key is scoped by route: the same key on another route is another key.
	rec = h.do(call{method: "POST", path: "/v1/providers", body: validProviderBody, header: key, valid: true})
	wantStatus(t, rec, http.StatusCreated)
	// Exactly one booking exists for the client.
	rec = h.do(call{method: "GET", path: "/v1/clients/cli/bookings"})
	if got := decode[listOut[bookingOut]](t, rec); len(got.Items) != 1 {
		t.Errorf("%d bookings, want 1", len(got.Items))
	}
	// A replay answers the first answer (status, body, Location), not the
	// booking as it is now: a booking cancelled since replays as created.
	b := decode[bookingOut](t, first)
	wantStatus(t, h.do(call{method: "POST", path: "/v1/bookings/" + b.ID + "/cancel"}), http.StatusOK)
	rec = h.do(call{method: "POST", path: "/v1/bookings", body: body, header: key, valid: true})
	wantStatus(t, rec, http.StatusCreated)
	if rec.Body.String() != first.Body.String() || rec.Header().Get("Location") != first.Header().Get("Location") ||
		first.Header().Get("Location") == "" {
		t.Errorf("replay after cancel: %s Location %q, want %s Location %q", rec.Body, rec.Header().Get("Location"),
			first.Body, first.Header().Get("Location"))
	}
}

// TestServer_IdempotencyJudgedBelow checks that when the edge's lookup misses
// (say, a stale replica), the key still travels down and the calendar replays.
func TestServer_IdempotencyJudgedBelow(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	key := map[string]string{IdempotencyHeader: "k-2"}
	body := bookingBody(p.ID, p.Services[0].ID, "cli", "2026-12-01T09:00:00-03:00")
	first := h.do(call{method: "POST", path: "/v1/bookings", body: body, header: key, valid: true})
	wantStatus(t, first, http.StatusCreated)
	h.store.Fail = func(op string) error {
		if op == "Idempotency" {
			return errNotFoundForTest
		}
		return nil
	}
	second := h.do(call{method: "POST", path: "/v1/bookings", body: body, header: key, valid: true})
	wantStatus(t, second, http.StatusCreated)
	if decode[bookingOut](t, second).ID != decode[bookingOut](t, first).ID {
		t.Errorf("the calendar did not replay: %s vs %s", second.Body, first.Body)
	}
	other := bookingBody(p.ID, p.Services[0].ID, "cli", "2026-12-01T10:00:00-03:00")
	wantStatus(t, h.do(call{method: "POST", path: "/v1/bookings", body: other, header: key, valid: true}), http.StatusUnprocessableEntity)
}

// TestServer_IdempotentProvider checks provider creation replays and rejects reuse.
func TestServer_IdempotentProvider(t *testing.T) {
	h := newHarness(t)
	key := map[string]string{IdempotencyHeader: "prov-1"}
	first := h.do(call{method: "POST", path: "/v1/providers", body: validProviderBody, header: key, valid: true})
	wantStatus(t, first, http.StatusCreated)
	second := h.do(call{method: "POST", path: "/v1/providers", body: validProviderBody, header: key, valid: true})
	wantStatus(t, second, http.StatusCreated)
	if second.Body.String() != first.Body.String() || second.Header().Get(ReplayedHeader) != "true" {
		t.Errorf("replay differs:\n%s\n%s", first.Body, second.Body)
	}
	rec := h.do(call{method: "POST", path: "/v1/providers", body: strings.Replace(validProviderBody, "Don Julio", "Don Pedro", 1), header: key, valid: true})
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	if pb := checkProblem(t, rec); pb.Code != CodeIdempotencyKeyReused {
		t.Errorf("code %s", pb.Code)
	}
	rec = h.do(call{method: "GET", path: "/v1/providers"})
	if got := decode[listOut[providerOut]](t, rec); len(got.Items) != 1 {
		t.Errorf("%d providers, want 1", len(got.Items))
	}
}

// TestServer_IdempotentReschedule checks reschedule replays (200) and that the
// same key on another booking is a reuse.
func TestServer_IdempotentReschedule(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	b1 := h.mustBook(p, "c", "2026-12-01T09:00:00-03:00")
	b2 := h.mustBook(p, "c", "2026-12-01T10:00:00-03:00")
	key := map[string]string{IdempotencyHeader: "move-1"}
	body := `{"start": "2026-12-01T17:00:00-03:00"}`
	first := h.do(call{method: "POST", path: "/v1/bookings/" + b1.ID + "/reschedule", body: body, header: key, valid: true})
	wantStatus(t, first, http.StatusOK)
	second := h.do(call{method: "POST", path: "/v1/bookings/" + b1.ID + "/reschedule", body: body, header: key, valid: true})
	wantStatus(t, second, http.StatusOK)
	if second.Body.String() != first.Body.String() || second.Header().Get(ReplayedHeader) != "true" {
		t.Errorf("replay differs:\n%s\n%s", first.Body, second.Body)
	}
	rec := h.do(call{method: "POST", path: "/v1/bookings/" + b2.ID + "/reschedule", body: body, header: key, valid: true})
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	if pb := checkProblem(t, rec); pb.Code != CodeIdempotencyKeyReused {
		t.Errorf("code %s", pb.Code)
	}
}

// TestServer_IdempotentPatch checks adding a service twice with one key adds it once.
func TestServer_IdempotentPatch(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	key := map[string]string{IdempotencyHeader: "add-color"}
	body := `{"add_services": [{"name": "Color", "duration_minutes": 60, "price": {"amount": "5000.00", "currency": "ARS"}}]}`
	for i := 0; i < 2; i++ {
		rec := h.do(call{method: "PATCH", path: "/v1/providers/" + p.ID, body: body, header: key, valid: true})
		wantStatus(t, rec, http.StatusOK)
		if got := decode[providerOut](t, rec); len(got.Services) != 3 {
			t.Errorf("try %d: %d services, want 3", i, len(got.Services))
		}
	}
}

// TestIdempotencyOf checks the key scoping and that the hash covers the path and
// the canonical body.
func TestIdempotencyOf(t *testing.T) {
	mk := func(path, key string, body any) idempotency {
		t.Helper()
		r, _ := http.NewRequest("POST", path, nil)
		r.Pattern = "POST /v1/bookings/{id}/reschedule"
		if key != "" {
			r.Header.Set(IdempotencyHeader, key)
		}
		id, err := idempotencyOf(r, body, "rsc_1")
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a := mk("/v1/bookings/b1/reschedule", "k", rescheduleIn{Start: "x"})
	if a.key != "s:anonymous POST /v1/bookings/{id}/reschedule k" || !a.fromClient {
		t.Errorf("key %q", a.key)
	}
	if b := mk("/v1/bookings/b2/reschedule", "k", rescheduleIn{Start: "x"}); string(b.hash) == string(a.hash) {
		t.Errorf("the hash ignores the path")
	}
	if c := mk("/v1/bookings/b1/reschedule", "k", rescheduleIn{Start: "y"}); string(c.hash) == string(a.hash) {
		t.Errorf("the hash ignores the body")
	}
	if d := mk("/v1/bookings/b1/reschedule", "", rescheduleIn{Start: "x"}); d.key != "auto:rsc_1" || d.fromClient || string(d.hash) != string(a.hash) {
		t.Errorf("auto key %+v", d)
	}
}
