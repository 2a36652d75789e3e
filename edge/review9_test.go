package edge

import (
	"net/http"
	"strings"
	"testing"

	"github.com/barberpro/edge/edge/auth"
)

// TestPsych_Review9_AuditReadOnUSNodeKeepsArgentineIDs: an operator asking the
// US node for the audit trail of an Argentine psychology booking (no
// jurisdiction= parameter: the US chain is the default) makes the US node
// append an "audit.read" entry whose object IS the Argentine booking id (or
// consent id, or "client:<id>") to the US store's Raft log: invariant 3 says
// nothing of a psychology booking is written to a disk outside ar, and
// `residency check` flags any booking id of a city with psychology providers.
func TestPsych_Review9_AuditReadOnUSNodeKeepsArgentineIDs(t *testing.T) {
	ar, us, _ := newTestCluster(t, nil)
	p := us.create(providerBody("cordoba", "psychology"))
	us.readyPsych(p, "cli-ana")
	b := decode[bookingOut](t, us.bookAs(nil, p, "cli-ana", "2026-12-01T09:00:00-03:00"))
	cns := decode[listOut[consentOut]](t, us.do(call{method: "GET", path: "/v1/clients/cli-ana/consents",
		header: us.as(auth.RoleClient, "cli-ana"), valid: true})).Items[0]
	for _, q := range []string{"object=" + b.ID, "object=" + cns.ID, "object=client:cli-ana", "subject=cli-ana"} {
		wantStatus(t, us.do(call{method: "GET", path: "/v1/audit?" + q, valid: true}), http.StatusOK)
	}
	_ = ar
	for _, e := range us.store.Audit() {
		for _, secret := range []string{b.ID, cns.ID, "cli-ana"} {
			if strings.Contains(e.Object, secret) || strings.Contains(e.Subject, secret) {
				t.Errorf("the US store's audit chain names Argentine psychology data %q: %+v", secret, e)
			}
		}
	}
}
