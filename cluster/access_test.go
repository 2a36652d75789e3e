package cluster_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/time/rate"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/cluster/pki"
	"github.com/barberpro/edge/edge"
	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/load"
)

// answer is what a test request got back.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// problemCode is the code of a problem answer ("" if it is not one).
func (a answer) problemCode() string {
	var p struct {
		Code string `json:"code"`
	}
	if !strings.HasPrefix(a.header.Get("Content-Type"), "application/problem+json") || json.Unmarshal(a.body, &p) != nil {
		return ""
	}
	return p.Code
}

// send sends one request to node n with the Authorization header authz ("" for
// none) and extra headers (name, value pairs).
func send(t *testing.T, n *cluster.Node, method, path, body, authz string, headers ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// The callers of the matrix: no token, and a token of each role for its own
// records and for someone else's.
const (
	asNone = iota
	asClientOwn
	asClientOther
	asProviderOwn
	asProviderOther
	asOperator
	nCallers
)

var callerNames = [nCallers]string{"none", "client-own", "client-other", "provider-own", "provider-other", "operator"}

// Test_Access_RouteTableByRole drives every route of the API against a real node
// with every caller — no token, a client on its own records and on another's, a
// provider on its own calendar and on another's, an operator — and checks the
// status security.md's table gives each cell. The rows must cover every route of
// openapi.yaml (which edge checks is every route it serves), so a route added
// without its access row fails here.
func Test_Access_RouteTableByRole(t *testing.T) {
	// Rate limits have their own test; here every cell must reach its rule.
	kek := newKEKFile(t)
	n := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.Limits = edge.Limits{PerSubject: rate.Inf, PerIP: rate.Inf}
		c.KEKFile = kek
	})
	ops := clustertest.Operator(t, n)
	ctx := context.Background()
	p := newProvider(t, ops, svc("Corte", 30, 0))
	other := newProvider(t, ops, svc("Barba", 30, 0))
	const ana, bob = "cli-ana", "cli-bob"
	b, err := ops.Book(ctx, client.BookingRequest{ProviderID: p.ID, ServiceID: p.Services[0].ID, ClientID: ana, Start: tomorrowAt(8, 0)}, "")
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(role auth.Role, sub string) string { return "Bearer " + clustertest.Token(t, n, role, sub) }
	authz := [nCallers]string{
		asNone:          "",
		asClientOwn:     bearer(auth.RoleClient, ana),
		asClientOther:   bearer(auth.RoleClient, bob),
		asProviderOwn:   bearer(auth.RoleProvider, p.ID),
		asProviderOther: bearer(auth.RoleProvider, other.ID),
		asOperator:      bearer(auth.RoleOperator, "ops"),
	}
	fixed := func(s string) func(int) string { return func(int) string { return s } }
	const (
		ok, created, accepted = http.StatusOK, http.StatusCreated, http.StatusAccepted
		unauth, forbid, gone  = http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound
	)
	public := [nCallers]int{ok, ok, ok, ok, ok, ok}
	operatorOnly := func(s int) [nCallers]int { return [nCallers]int{unauth, forbid, forbid, forbid, forbid, s} }
	// The psychology rows: a licensed, verified psychologist (the "own"
	// provider of those rows), ana's consent, two of her sessions and a series.
	psyP := verifiedPsychologist(t, ops, 98, "MN-1234")
	cns := grantCare(t, clustertest.Client(t, n, auth.RoleClient, ana), ana)
	psyBook := func(hour int) *client.Booking {
		b, err := ops.Book(ctx, client.BookingRequest{ProviderID: psyP.ID, ServiceID: psyP.Services[0].ID, ClientID: ana, Start: tomorrowAt(hour, 30)}, "")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sess, sess2 := psyBook(8), psyBook(9)
	srs, err := ops.BookSeries(ctx, client.SeriesRequest{ProviderID: psyP.ID, ServiceID: psyP.Services[0].ID, ClientID: ana,
		Start: tomorrowAt(7, 0), Every: "1w", Count: 2}, "")
	if err != nil {
		t.Fatal(err)
	}
	psyAuthz := authz
	psyAuthz[asProviderOwn] = bearer(auth.RoleProvider, psyP.ID)
	seriesSlot := 9
	seriesBody := func(int) string {
		seriesSlot++
		return fmt.Sprintf(`{"provider_id":%q,"service_id":%q,"client_id":%q,"start":%q,"every":"1w","count":2}`,
			psyP.ID, psyP.Services[0].ID, ana, tomorrowAt(seriesSlot, 30))
	}
	consentBody := fixed(`{"purpose":"psychology-care","jurisdiction":"ar","text_version":"2026-02"}`)
	ownClient := func(s int) [nCallers]int { return [nCallers]int{unauth, s, forbid, forbid, forbid, forbid} }
	treating := func(s int) [nCallers]int { return [nCallers]int{unauth, forbid, forbid, s, forbid, forbid} }
	// Each successful booking or reschedule takes its own slot.
	slot := 9
	nextStart := func() string { slot++; return tomorrowAt(slot, 0) }
	bookBody := func(int) string {
		return fmt.Sprintf(`{"provider_id":%q,"service_id":%q,"client_id":%q,"start":%q}`, p.ID, p.Services[0].ID, ana, nextStart())
	}
	provider, _ := json.Marshal(load.LoadProvider("buenos-aires", 99))
	rows := []struct {
		method, pattern, path string
		body                  func(caller int) string
		want                  [nCallers]int
	}{
		{"GET", "/healthz", "/healthz", nil, public},
		{"GET", "/readyz", "/readyz", nil, public},
		{"GET", "/metrics", "/metrics", nil, public},
		{"GET", "/openapi.json", "/openapi.json", nil, public},
		{"GET", "/v1/providers", "/v1/providers", nil, public},
		{"GET", "/v1/providers/{id}", "/v1/providers/" + p.ID, nil, public},
		{"GET", "/v1/providers/{id}/availability", "/v1/providers/" + p.ID + "/availability?service_id=" + p.Services[0].ID + "&from=" + tomorrowAt(0, 0)[:10] + "&days=1", nil, public},
		{"POST", "/v1/providers", "/v1/providers", fixed(string(provider)), operatorOnly(created)},
		{"PATCH", "/v1/providers/{id}", "/v1/providers/" + p.ID, fixed(`{"min_notice_minutes":0}`),
			[nCallers]int{unauth, forbid, forbid, ok, forbid, ok}},
		{"GET", "/v1/providers/{id}/placement", "/v1/providers/" + p.ID + "/placement", nil, operatorOnly(ok)},
		{"POST", "/v1/bookings", "/v1/bookings", bookBody,
			[nCallers]int{unauth, created, forbid, created, forbid, created}},
		{"GET", "/v1/bookings/{id}", "/v1/bookings/" + b.ID, nil,
			[nCallers]int{unauth, ok, gone, ok, gone, ok}},
		{"POST", "/v1/bookings/{id}/reschedule", "/v1/bookings/" + b.ID + "/reschedule",
			func(int) string { return fmt.Sprintf(`{"start":%q}`, nextStart()) },
			[nCallers]int{unauth, ok, gone, ok, gone, ok}},
		{"POST", "/v1/bookings/{id}/cancel", "/v1/bookings/" + b.ID + "/cancel", fixed(`{}`),
			[nCallers]int{unauth, ok, gone, ok, gone, ok}},
		{"GET", "/v1/clients/{client_id}/bookings", "/v1/clients/" + ana + "/bookings", nil,
			[nCallers]int{unauth, ok, forbid, forbid, forbid, ok}},
		{"POST", "/v1/providers/{id}/verify", "/v1/providers/" + psyP.ID + "/verify", fixed(`{}`), operatorOnly(ok)},
		{"GET", "/v1/clients/{client_id}/consents", "/v1/clients/" + ana + "/consents", nil, ownClient(ok)},
		{"POST", "/v1/clients/{client_id}/consents", "/v1/clients/" + ana + "/consents", consentBody, ownClient(created)},
		{"POST", "/v1/bookings/series", "/v1/bookings/series", seriesBody,
			[nCallers]int{unauth, created, forbid, created, forbid, created}},
		{"GET", "/v1/sessions/{id}", "/v1/sessions/" + sess.ID, nil, [nCallers]int{unauth, ok, gone, ok, gone, ok}},
		{"PUT", "/v1/sessions/{id}/notes", "/v1/sessions/" + sess.ID + "/notes", fixed(`{"text":"first session"}`), treating(ok)},
		{"GET", "/v1/sessions/{id}/notes", "/v1/sessions/" + sess.ID + "/notes", nil, treating(ok)},
		{"POST", "/v1/sessions/{id}/check-in", "/v1/sessions/" + sess.ID + "/check-in", fixed(`{}`), treating(ok)},
		{"POST", "/v1/sessions/{id}/complete", "/v1/sessions/" + sess.ID + "/complete", fixed(`{}`), treating(ok)},
		{"POST", "/v1/sessions/{id}/no-show", "/v1/sessions/" + sess2.ID + "/no-show", fixed(`{}`), treating(ok)},
		{"GET", "/v1/clients/{client_id}/export", "/v1/clients/" + ana + "/export", nil, ownClient(ok)},
		{"GET", "/v1/audit", "/v1/audit", nil, operatorOnly(ok)},
		{"POST", "/v1/bookings/series/{id}/cancel", "/v1/bookings/series/" + srs.ID + "/cancel", fixed(`{}`),
			[nCallers]int{unauth, ok, gone, ok, gone, ok}},
		{"POST", "/v1/clients/{client_id}/consents/{id}/withdraw", "/v1/clients/" + ana + "/consents/" + cns.ID + "/withdraw", fixed(`{}`),
			ownClient(ok)},
		{"DELETE", "/v1/clients/{client_id}/health-data", "/v1/clients/" + ana + "/health-data", nil,
			[nCallers]int{unauth, accepted, forbid, forbid, forbid, accepted}},
		{"GET", "/v1/cluster/members", "/v1/cluster/members", nil, operatorOnly(ok)},
		{"GET", "/v1/cluster/status", "/v1/cluster/status", nil, operatorOnly(ok)},
		// The node's own jurisdiction (ar): a backup stream.
		{"GET", "/v1/cluster/backup", "/v1/cluster/backup?jurisdiction=ar", nil, operatorOnly(ok)},
		// The node itself is alive: admitted, then refused for that (409).
		{"POST", "/v1/cluster/members/{id}/remove", "/v1/cluster/members/" + n.ID() + "/remove", fixed(`{}`),
			operatorOnly(http.StatusConflict)},
		// The node is its group's only voter: admitted, then refused (409
		// last_voter) before anything changes.
		{"POST", "/v1/cluster/leave", "/v1/cluster/leave", fixed(`{}`), operatorOnly(http.StatusConflict)},
	}

	doc, err := edge.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var spec, covered []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			spec = append(spec, method+" "+path)
		}
	}
	for _, r := range rows {
		covered = append(covered, r.method+" "+r.pattern)
	}
	slices.Sort(spec)
	slices.Sort(covered)
	if !slices.Equal(spec, covered) {
		t.Fatalf("the matrix does not cover exactly the API's routes:\nroutes: %v\nrows:   %v", spec, covered)
	}

	for _, r := range rows {
		for who := range nCallers {
			body := ""
			if r.body != nil {
				body = r.body(who)
			}
			az := authz[who]
			if strings.Contains(r.pattern, "/sessions/") || strings.HasPrefix(r.pattern, "/v1/bookings/series") {
				az = psyAuthz[who] // the own provider is the psychologist
			}
			got := send(t, n, r.method, r.path, body, az)
			want := r.want[who]
			if got.status != want {
				t.Errorf("%s %s as %s: %d, want %d (%s)", r.method, r.pattern, callerNames[who], got.status, want, got.body)
				continue
			}
			switch want {
			case unauth:
				if got.problemCode() != edge.CodeUnauthorized || !strings.HasPrefix(got.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s %s as %s: 401 %q, WWW-Authenticate %q", r.method, r.pattern, callerNames[who], got.body, got.header.Get("WWW-Authenticate"))
				}
			case forbid:
				if got.problemCode() != edge.CodeForbidden {
					t.Errorf("%s %s as %s: 403 %s", r.method, r.pattern, callerNames[who], got.body)
				}
			case gone:
				// Someone else's booking: nothing of it in the answer.
				if got.problemCode() != edge.CodeNotFound || bytes.Contains(got.body, []byte(ana)) || bytes.Contains(got.body, []byte(p.ID)) {
					t.Errorf("%s %s as %s: 404 %s", r.method, r.pattern, callerNames[who], got.body)
				}
			}
		}
	}
}

// Test_Access_BadTokens checks a real node answers 401 unauthorized with
// WWW-Authenticate: Bearer to a missing, malformed, expired, forged (another key
// under the node's kid) or unknown-kid token on a protected route, and serves a
// public route whatever the token.
func Test_Access_BadTokens(t *testing.T) {
	n := clustertest.MustStartNode(t, nil)
	dir := clustertest.TokenDir(t)
	good := "Bearer " + clustertest.Token(t, n, auth.RoleOperator, "ops")

	signer, err := auth.LoadSigner(dir)
	if err != nil {
		t.Fatal(err)
	}
	signer.Now = func() time.Time { return time.Now().Add(-3 * time.Hour) }
	expired, err := signer.Issue(auth.RoleOperator, "ops", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherDir := filepath.Join(t.TempDir(), "other")
	if err := auth.Init(otherDir); err != nil {
		t.Fatal(err)
	}
	unknownKid, err := auth.Issue(otherDir, auth.RoleOperator, "ops", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Another key that claims the node's kid: a forged signature.
	forged := issueAs(t, filepath.Join(otherDir, auth.SigningKeyFile), signer.KeyID())
	// The node's own key under a kid it does not know.
	renamed := issueAs(t, filepath.Join(dir, auth.SigningKeyFile), "not-a-kid-of-the-set")
	parts := strings.Split(strings.TrimPrefix(good, "Bearer "), ".")

	if a := send(t, n, "GET", "/v1/cluster/members", "", good); a.status != http.StatusOK {
		t.Fatalf("control: a good operator token got %d %s", a.status, a.body)
	}
	for name, authz := range map[string]string{
		"missing":          "",
		"not bearer":       "Basic b3BzOm9wcw==",
		"empty bearer":     "Bearer ",
		"malformed":        "Bearer not.a.jwt",
		"expired":          "Bearer " + expired,
		"forged":           "Bearer " + forged,
		"unknown kid":      "Bearer " + unknownKid,
		"own key, new kid": "Bearer " + renamed,
		"signature cut":    "Bearer " + parts[0] + "." + parts[1] + ".",
	} {
		t.Run(name, func(t *testing.T) {
			a := send(t, n, "GET", "/v1/cluster/members", "", authz)
			if a.status != http.StatusUnauthorized || a.problemCode() != edge.CodeUnauthorized ||
				!strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("%d %q WWW-Authenticate %q", a.status, a.body, a.header.Get("WWW-Authenticate"))
			}
			if pub := send(t, n, "GET", "/v1/providers", "", authz); pub.status != http.StatusOK {
				t.Fatalf("public route with that token: %d %s", pub.status, pub.body)
			}
		})
	}
}

// issueAs returns an operator token signed with the private JWK in keyFile but
// naming kid in its header.
func issueAs(t *testing.T, keyFile, kid string) string {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.Key.(ed25519.PrivateKey); !ok {
		t.Fatalf("%s is not an Ed25519 private key", keyFile)
	}
	k.KeyID = kid
	s, err := auth.NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Issue(auth.RoleOperator, "ops", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// mustJSON decodes b into v.
func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// Test_Access_ForwardedByNamesThePeerCertificate (review8 finding 6): the peer
// listener honours X-Barberpro-Forwarded-By only when it names the node of the
// certificate the request came over: a node of the CA cannot relay in another
// node's name.
func Test_Access_ForwardedByNamesThePeerCertificate(t *testing.T) {
	a := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Bind = "127.0.0.91" })
	const ip = "127.0.0.92"
	m := mustMaterial(t, clustertest.MustCA(t), pki.Identity{Jurisdiction: "ar", City: "cordoba", NodeID: "cba-7"}, ip)
	conf := m.ClientTLS(pki.AnyNode)
	conf.ServerName = "127.0.0.91"
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: conf,
		DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext,
	}}
	for by, want := range map[string]int{"cba-7": http.StatusOK, "us-1": http.StatusForbidden, a.ID(): http.StatusForbidden} {
		req, err := http.NewRequest(http.MethodGet, "https://"+a.PeerAddr()+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(edge.ForwardedByHeader, by)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("relay as %s: %v", by, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("cba-7's certificate, %s: %s: %d, want %d", edge.ForwardedByHeader, by, resp.StatusCode, want)
		}
	}
}

// Test_Access_TokenIssuerAndLifetimePinned (review8 finding 6): a node accepts
// only tokens of its --token-issuer living at most its --token-max-ttl.
func Test_Access_TokenIssuerAndLifetimePinned(t *testing.T) {
	n := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.Bind, c.TokenIssuer, c.TokenMaxTTL = "127.0.0.93", "idp.example", 30*time.Minute
	})
	s, err := auth.LoadSigner(clustertest.TokenDir(t))
	if err != nil {
		t.Fatal(err)
	}
	issue := func(iss string, ttl time.Duration) string {
		s.Issuer = iss
		tok, err := s.Issue(auth.RoleOperator, "ops", ttl)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	for _, c := range []struct {
		name, authz, detail string
		want                int
	}{
		{"pinned issuer, 30m", issue("idp.example", 30*time.Minute), "", http.StatusOK},
		{"issuer barberpro", issue(auth.DefaultIssuer, 10*time.Minute), "issuer", http.StatusUnauthorized},
		{"pinned issuer, 31m", issue("idp.example", 31*time.Minute), "lives longer", http.StatusUnauthorized},
	} {
		a := send(t, n, http.MethodGet, "/v1/cluster/members", "", c.authz)
		if a.status != c.want || !bytes.Contains(a.body, []byte(c.detail)) {
			t.Errorf("%s: %d %s, want %d naming %q", c.name, a.status, a.body, c.want, c.detail)
		}
	}
}
