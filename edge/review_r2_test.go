package edge

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/barberpro/edge/edge/auth"
)

// TestReview_ProviderCacheKeepsNoMiss (review s15-r2, a soundness check):
// bookings and availability reads of provider ids that do not exist answer
// 404 and leave nothing in the provider cache (a client asking for random ids
// cannot grow it).
func TestReview_ProviderCacheKeepsNoMiss(t *testing.T) {
	h := newHarness(t)
	for i := range 50 {
		id := fmt.Sprintf("prv_buenos-aires_nope%d", i)
		rec := h.do(call{method: "POST", path: "/v1/bookings", valid: true,
			body: bookingBody(id, "svc_x", "cli-ana", "2026-12-01T09:00:00-03:00")})
		if rec.Code < 400 || rec.Code >= 500 {
			t.Fatalf("booking of unknown provider %s: %d, want a 4xx", id, rec.Code)
		}
		rec = h.do(call{method: "GET", path: "/v1/providers/" + id + "/availability?service_id=svc_x&from=2026-12-01", valid: true})
		if rec.Code < 400 || rec.Code >= 500 {
			t.Fatalf("availability of unknown provider %s: %d, want a 4xx", id, rec.Code)
		}
	}
	h.srv.providers.mu.RLock()
	n := len(h.srv.providers.m)
	h.srv.providers.mu.RUnlock()
	if n != 0 {
		t.Fatalf("the provider cache holds %d entries after only misses, want 0", n)
	}
}

// TestReview_VerifiedProviderReadOnce (review s15-r2, low: cost, not
// correctness): a licensed provider first seen unverified (its public
// availability read before an operator verified it) stays in the cache as
// unverified, so every booking after the verification reads it from the store
// again — for the life of the process — although 6a2e831 says a booking reads
// its provider once. The cache could keep the verified provider it re-read.
func TestReview_VerifiedProviderReadOnce(t *testing.T) {
	h := newHarness(t)
	p := h.create(providerBody("buenos-aires", "psychology"))
	// A public availability read caches the provider while unverified.
	h.do(call{method: "GET", path: "/v1/providers/" + p.ID + "/availability?service_id=" + p.Services[0].ID + "&from=2026-12-01", valid: true})
	wantStatus(t, h.do(call{method: "POST", path: "/v1/providers/" + p.ID + "/verify", valid: true}), http.StatusOK)
	h.grantConsent("cli-ana", p.Jurisdiction)
	ana := h.as(auth.RoleClient, "cli-ana")
	wantStatus(t, h.bookAs(ana, p, "cli-ana", "2026-12-01T09:00:00-03:00"), http.StatusCreated)
	reads := countProviderReads(h)
	wantStatus(t, h.bookAs(ana, p, "cli-ana", "2026-12-01T10:00:00-03:00"), http.StatusCreated)
	wantStatus(t, h.bookAs(ana, p, "cli-ana", "2026-12-01T11:00:00-03:00"), http.StatusCreated)
	if n := reads.Load(); n != 0 {
		t.Fatalf("2 bookings of a verified provider read it %d times from the store, want 0 (it was read when verified)", n)
	}
}
