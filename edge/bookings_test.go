package edge

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/barberpro/edge/storage"
)

// TestServer_CutOffReplicaDoesNotSayNotFound: a cancel or reschedule of a
// booking this replica has not received, while it cannot reach its leader (a
// partition), is 503, never 404 — found by the long-partition-heal simulation,
// where a cut-off node answered 404 for bookings made on the other side.
func TestServer_CutOffReplicaDoesNotSayNotFound(t *testing.T) {
	h := newHarness(t)
	h.store.Fail = func(op string) error {
		if op == "LinearizableRead" {
			return fmt.Errorf("%w: no leader known", storage.ErrNotLeader)
		}
		return nil
	}
	id := "bkg_buenos-aires_sndutg5aowlsdjd426zd"
	for _, c := range []call{
		{method: "POST", path: "/v1/bookings/" + id + "/cancel", valid: true},
		{method: "POST", path: "/v1/bookings/" + id + "/reschedule", body: `{"start":"2026-12-01T10:00:00-03:00"}`, valid: true},
	} {
		rec := h.do(c)
		wantStatus(t, rec, http.StatusServiceUnavailable)
	}
}

// TestServer_CutOffReplicaDoesNotSayProviderNotFound (review2): readProvider
// still drops LinearizableRead's error and answers 404 from a replica that
// cannot reach its leader, for a provider created on the other side.
func TestServer_CutOffReplicaDoesNotSayProviderNotFound(t *testing.T) {
	h := newHarness(t)
	h.store.Fail = func(op string) error {
		if op == "LinearizableRead" {
			return fmt.Errorf("%w: no leader known", storage.ErrNotLeader)
		}
		return nil
	}
	rec := h.do(call{method: "GET", path: "/v1/providers/prv_buenos-aires_sndutg5aowlsdjd426zd", valid: true})
	wantStatus(t, rec, http.StatusServiceUnavailable)
}
