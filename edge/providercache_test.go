package edge

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/barberpro/edge/edge/auth"
)

// countProviderReads makes h's store count its Provider reads.
func countProviderReads(h *harness) *atomic.Int64 {
	var n atomic.Int64
	h.store.Fail = func(op string) error {
		if op == "Provider" {
			n.Add(1)
		}
		return nil
	}
	return &n
}

// TestCreateBooking_ReadsItsProviderOnce: bookings of a provider read it from
// the store once (its zone, vertical, jurisdiction and services are kept), not
// once per booking.
func TestCreateBooking_ReadsItsProviderOnce(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	reads := countProviderReads(h)
	h.mustBook(p, "cli-ana", "2026-12-01T09:00:00-03:00")
	h.mustBook(p, "cli-ana", "2026-12-01T10:00:00-03:00")
	h.mustBook(p, "cli-ana", "2026-12-01T11:00:00-03:00")
	if n := reads.Load(); n != 1 {
		t.Fatalf("3 bookings read the provider %d times, want 1", n)
	}
}

// TestCreateBooking_ServiceAddedAfterCachingIsBookable: a service added to a
// provider after its bookings cached it is bookable at once (a service the
// kept provider lacks is read again), and an unknown one is still 422.
func TestCreateBooking_ServiceAddedAfterCachingIsBookable(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	h.mustBook(p, "cli-ana", "2026-12-01T09:00:00-03:00")
	rec := h.do(call{method: "PATCH", path: "/v1/providers/" + p.ID, valid: true,
		body: `{"add_services": [{"name": "Color", "duration_minutes": 30, "price": {"amount": "5000.00", "currency": "ARS"}}]}`})
	wantStatus(t, rec, http.StatusOK)
	patched := decode[providerOut](t, rec)
	added := patched.Services[len(patched.Services)-1].ID
	rec = h.do(call{method: "POST", path: "/v1/bookings", valid: true,
		body: bookingBody(p.ID, added, "cli-ana", "2026-12-01T10:00:00-03:00")})
	wantStatus(t, rec, http.StatusCreated)
	rec = h.do(call{method: "POST", path: "/v1/bookings", valid: true,
		body: bookingBody(p.ID, "svc_nope", "cli-ana", "2026-12-01T11:00:00-03:00")})
	wantStatus(t, rec, http.StatusUnprocessableEntity)
}

// TestCreateBooking_VerificationAfterCachingCounts: a psychology provider
// refused as unverified is bookable once an operator verifies it (the
// verification is read from the store, never from the kept provider).
func TestCreateBooking_VerificationAfterCachingCounts(t *testing.T) {
	h := newHarness(t)
	p := h.create(providerBody("buenos-aires", "psychology"))
	h.grantConsent("cli-ana", p.Jurisdiction)
	ana := h.as(auth.RoleClient, "cli-ana")
	rec := h.bookAs(ana, p, "cli-ana", "2026-12-01T09:00:00-03:00")
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	wantStatus(t, h.do(call{method: "POST", path: "/v1/providers/" + p.ID + "/verify", valid: true}), http.StatusOK)
	wantStatus(t, h.bookAs(ana, p, "cli-ana", "2026-12-01T09:00:00-03:00"), http.StatusCreated)
}
