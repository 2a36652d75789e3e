package edge

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/barberpro/edge/storage"
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
