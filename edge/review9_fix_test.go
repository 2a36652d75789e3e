package edge

import (
	"net/http"
	"strings"
	"testing"

	"github.com/barberpro/edge/edge/auth"
)

// TestPsych_Review9Fix_RefusalsOfUnknownClientsRecordNothing: the route-level
// refusals audited since review 9 (finding 6) and the audit read of a
// "client:<id>" object (finding 1) never make a store record a client it holds
// nothing of: no entry for a refused read of an unknown client's consents or
// export, and an audit.read of such a client's object is recorded as "audit".
func TestPsych_Review9Fix_RefusalsOfUnknownClientsRecordNothing(t *testing.T) {
	f := newPsychFixture(t)
	for _, c := range []struct {
		who  map[string]string
		path string
	}{
		{f.as(auth.RoleOperator, "ops"), "/v1/clients/cli-stranger/consents"},
		{f.as(auth.RoleOperator, "ops"), "/v1/clients/cli-stranger/export"},
		{f.as(auth.RoleClient, "cli-bob"), "/v1/clients/cli-stranger/consents"},
	} {
		n := len(f.store.Audit())
		wantStatus(t, f.do(call{method: "GET", path: c.path, header: c.who}), http.StatusForbidden)
		if es := f.auditSince(n); len(es) != 0 {
			t.Errorf("GET %s refused for a client this store holds nothing of: audit entries %v, want none", c.path, es)
		}
	}
	n := len(f.store.Audit())
	wantStatus(t, f.do(call{method: "GET", path: "/v1/audit?object=client:cli-stranger", valid: true}), http.StatusOK)
	wantStatus(t, f.do(call{method: "GET", path: "/v1/audit?object=client:cli-ana", valid: true}), http.StatusOK)
	es := f.auditSince(n)
	if len(es) != 2 || es[0].Action != "audit.read" || es[0].Object != "audit" || es[1].Object != "client:cli-ana" {
		t.Errorf("audit reads recorded %v, want objects [audit client:cli-ana]", es)
	}
	for _, e := range f.store.Audit() {
		if strings.Contains(e.Object, "cli-stranger") {
			t.Errorf("the store records a client it holds nothing of: %+v", e)
		}
	}
}
