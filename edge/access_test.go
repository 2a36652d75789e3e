package edge

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/storage"
)

// TestAccess_ClientCannotClaimToBeANode checks the public handler refuses a
// request that carries ForwardedByHeader (it would skip the rate limit and make
// a list "this store only"), and the peer handler takes it.
func TestAccess_ClientCannotClaimToBeANode(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	fw := map[string]string{ForwardedByHeader: "ba-2"}
	rec := h.do(call{method: "GET", path: "/v1/providers/" + p.ID, header: fw, valid: true})
	wantStatus(t, rec, http.StatusForbidden)
	if pb := checkProblem(t, rec); pb.Code != CodeForbidden {
		t.Errorf("code %s", pb.Code)
	}
	wantStatus(t, h.do(call{method: "GET", path: "/v1/providers/" + p.ID, header: fw, peer: true, valid: true}), http.StatusOK)
}

// TestAccess_PeerHandlerVerifiesTokensAgain checks a relayed request is held to
// the same token and access rules as a direct one.
func TestAccess_PeerHandlerVerifiesTokensAgain(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	b := h.mustBook(p, "cli-ana", "2026-12-01T09:00:00-03:00")
	fw := map[string]string{ForwardedByHeader: "ba-2"}
	rec := h.do(call{method: "GET", path: "/v1/bookings/" + b.ID, header: fw, peer: true, anon: true})
	wantStatus(t, rec, http.StatusUnauthorized)
	if rec.Header().Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	other := h.as(auth.RoleClient, "cli-bob")
	other[ForwardedByHeader] = "ba-2"
	wantStatus(t, h.do(call{method: "GET", path: "/v1/bookings/" + b.ID, header: other, peer: true}), http.StatusNotFound)
	own := h.as(auth.RoleClient, "cli-ana")
	own[ForwardedByHeader] = "ba-2"
	wantStatus(t, h.do(call{method: "GET", path: "/v1/bookings/" + b.ID, header: own, peer: true}), http.StatusOK)
}

// TestAccess_RateLimitOnceAtTheCalledNode checks Handler limits a subject and
// PeerHandler does not limit it again.
func TestAccess_RateLimitOnceAtTheCalledNode(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) {
		// IPBurst 3: the first use of each token (ana's, bob's) is charged to
		// the IP too, before its signature is checked.
		c.Limits = Limits{PerSubject: 0.001, SubjectBurst: 2, PerIP: 0.001, IPBurst: 3}
	})
	ana := h.as(auth.RoleClient, "cli-ana")
	for range 2 {
		wantStatus(t, h.do(call{method: "GET", path: "/v1/clients/cli-ana/bookings", header: ana}), http.StatusOK)
	}
	rec := h.do(call{method: "GET", path: "/v1/clients/cli-ana/bookings", header: ana})
	wantStatus(t, rec, http.StatusTooManyRequests)
	if ra := rec.Header().Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	relayed := h.as(auth.RoleClient, "cli-ana")
	relayed[ForwardedByHeader] = "ba-2"
	for i := range 5 {
		if rec := h.do(call{method: "GET", path: "/v1/clients/cli-ana/bookings", header: relayed, peer: true}); rec.Code != http.StatusOK {
			t.Fatalf("relayed request %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	// A refused request of a valid token counts against its subject, not the IP
	// (once the token is known: its first use was charged to the IP as well).
	bob := h.as(auth.RoleClient, "cli-bob")
	wantStatus(t, h.do(call{method: "GET", path: "/v1/cluster/status", header: bob}), http.StatusForbidden)
	wantStatus(t, h.do(call{method: "GET", path: "/v1/cluster/status", header: bob}), http.StatusForbidden)
	wantStatus(t, h.do(call{method: "GET", path: "/v1/cluster/status", header: bob}), http.StatusTooManyRequests)
	wantStatus(t, h.do(call{method: "GET", path: "/healthz", anon: true}), http.StatusOK)
}

// TestLimiter_BoundedAndEvictsIdle checks the limiter keeps at most MaxKeys
// buckets (dropping the least recently used), drops idle ones, and that a bucket
// dropped for idleness had refilled (a new one is the same).
func TestLimiter_BoundedAndEvictsIdle(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := newBuckets(1, 1, 3, time.Minute, func() time.Time { return now })
	for i := range 5 {
		if ok, _ := l.allow(fmt.Sprintf("k%d", i)); !ok {
			t.Fatalf("first request of k%d refused", i)
		}
	}
	if l.len() != 3 {
		t.Fatalf("%d buckets, want at most 3", l.len())
	}
	ok, retry := l.allow("k4")
	if ok || retry <= 0 || retry > time.Second {
		t.Fatalf("k4 again at once: %v retry %v", ok, retry)
	}
	// k0 was evicted as least recently used: it starts again full.
	if ok, _ := l.allow("k0"); !ok {
		t.Fatal("an evicted key was not given a new bucket")
	}
	now = now.Add(2 * time.Minute)
	l.allow("fresh")
	if l.len() != 1 {
		t.Fatalf("%d buckets after every other went idle, want 1", l.len())
	}
	inf := newLimiter(Limits{PerSubject: rate.Inf, PerIP: rate.Inf, MaxKeys: 1, IdleAfter: time.Minute}, time.Now)
	ana := auth.Principal{Role: auth.RoleClient, Subject: "cli-ana"}
	for range 100 {
		if ok, _ := inf.allowSubject(ana); !ok {
			t.Fatal("rate.Inf refused a request")
		}
	}
	if inf.len() != 0 {
		t.Fatal("rate.Inf keeps buckets")
	}
}

// TestAccess_FanOutCarriesTheCallersToken checks a client's list gathered from
// every jurisdiction reaches the other jurisdiction's node with the client's own
// token (verified again there), and another client's list is refused.
func TestAccess_FanOutCarriesTheCallersToken(t *testing.T) {
	ar, us, _ := newTestCluster(t, nil)
	pa := ar.create(providerBody("rosario", "psychology"))
	pu := us.create(providerBody("us-east", "barber"))
	ar.readyPsych(pa, "cli-ana")
	ar.mustBook(pa, "cli-ana", "2026-12-01T09:00:00-03:00")
	us.mustBook(pu, "cli-ana", "2026-12-01T09:00:00-05:00")
	var (
		mu   sync.Mutex
		seen []string
	)
	inner := us.ts.Config.Handler
	us.ts.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		inner.ServeHTTP(w, r)
	})
	ana := ar.as(auth.RoleClient, "cli-ana")
	rec := ar.do(call{method: "GET", path: "/v1/clients/cli-ana/bookings", header: ana, valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[listOut[bookingOut]](t, rec); len(got.Items) != 2 {
		t.Fatalf("%d bookings, want 2 (one per jurisdiction)", len(got.Items))
	}
	mu.Lock()
	if len(seen) != 1 || seen[0] != ana["Authorization"] {
		t.Errorf("the US node saw Authorization %q, want the client's token", seen)
	}
	mu.Unlock()
	bob := ar.as(auth.RoleClient, "cli-bob")
	wantStatus(t, ar.do(call{method: "GET", path: "/v1/clients/cli-ana/bookings", header: bob, valid: true}), http.StatusForbidden)
}

// TestLogs_NoClientIDsOrPaths makes requests about a client fail on the server
// side (a jurisdiction down during a fan-out, a store that cannot answer) and
// checks the node's logs name routes, never the client id or the path.
func TestLogs_NoClientIDsOrPaths(t *testing.T) {
	ar, us, peers := newTestCluster(t, nil)
	const secret = "cli-secret-1234"
	p := ar.create(providerBody("buenos-aires", "barber"))
	b := ar.mustBook(p, secret, "2026-12-01T09:00:00-03:00")
	us.ts.Close()
	rec := ar.do(call{method: "GET", path: "/v1/clients/" + secret + "/bookings", valid: true})
	wantStatus(t, rec, http.StatusServiceUnavailable)
	peers.remove("us")
	// A layer below whose error names the records it was reading.
	ar.store.Fail = func(op string) error {
		if op == "LinearizableRead" {
			return fmt.Errorf("%w: reading %s for %s", storage.ErrTimeout, b.ID, secret)
		}
		return nil
	}
	wantStatus(t, ar.do(call{method: "GET", path: "/v1/bookings/" + b.ID}), http.StatusServiceUnavailable)
	wantStatus(t, ar.do(call{method: "GET", path: "/v1/clients/" + secret + "/bookings"}), http.StatusServiceUnavailable)
	logs := ar.logs.String()
	if !strings.Contains(logs, "GET /v1/clients/{client_id}/bookings") {
		t.Fatalf("the failures were not logged by route: %s", logs)
	}
	if strings.Contains(logs, secret) || strings.Contains(logs, b.ID) {
		t.Errorf("a client id or a booking id reached the logs:\n%s", logs)
	}
}

// TestOpenAPI_SecurityMatchesAccess checks openapi.yaml marks exactly the public
// routes as needing no token, so the document cannot drift from the rules.
func TestOpenAPI_SecurityMatchesAccess(t *testing.T) {
	h := newHarness(t)
	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range h.srv.routes {
		op := doc.Paths.Find(rt.path).GetOperation(rt.method)
		if op == nil {
			t.Fatalf("%s not in the spec", rt.pattern())
		}
		public := op.Security != nil && len(*op.Security) == 0
		if public != rt.acc.public {
			t.Errorf("%s: public in the spec %v, in the route table %v", rt.pattern(), public, rt.acc.public)
		}
		_, has401 := op.Responses.Map()["401"]
		if has401 == rt.acc.public {
			t.Errorf("%s: documents 401 %v, public %v", rt.pattern(), has401, rt.acc.public)
		}
		if _, ok := op.Responses.Map()["429"]; !ok {
			t.Errorf("%s: 429 not documented", rt.pattern())
		}
	}
}
