package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"golang.org/x/time/rate"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/edgetest"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/topology"
)

// testNow is the fake clock of every test: Monday 2026-11-30 12:00 in Buenos Aires.
var testNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.FixedZone("-03", -3*3600))

// validProviderBody is a provider that works Monday to Friday 09-12 and 17-20.
const validProviderBody = `{
  "name": "Barbería Don Julio",
  "vertical": "barber",
  "city": "buenos-aires",
  "services": [
    {"name": "Corte", "duration_minutes": 30, "buffer_minutes": 10, "price": {"amount": "1500.00", "currency": "ARS"}},
    {"name": "Barba", "duration_minutes": 20, "price": {"amount": "800.5", "currency": "ARS"}}
  ],
  "weekly_hours": {
    "monday":    [{"start": "09:00", "end": "12:00"}, {"start": "17:00", "end": "20:00"}],
    "tuesday":   [{"start": "09:00", "end": "12:00"}, {"start": "17:00", "end": "20:00"}],
    "wednesday": [{"start": "09:00", "end": "12:00"}, {"start": "17:00", "end": "20:00"}],
    "thursday":  [{"start": "09:00", "end": "12:00"}, {"start": "17:00", "end": "20:00"}],
    "friday":    [{"start": "09:00", "end": "12:00"}, {"start": "17:00", "end": "20:00"}]
  },
  "date_overrides": [{"date": "2026-12-24", "hours": []}]
}`

// harness is a Server over the edgetest doubles, with the OpenAPI document to
// validate every exchange against.
type harness struct {
	t      testing.TB
	srv    *Server
	store  *edgetest.Store
	cals   *edgetest.Calendars
	sess   *edgetest.Sessions
	router routers.Router
	logs   *syncBuffer
	ready  atomic.Pointer[error]
	// noSpec skips spec validation (benchmarks and fuzzing).
	noSpec bool
	// tokens signs the harness's tokens; operator is the Authorization header
	// every call sends unless it says otherwise.
	tokens   *edgetest.Tokens
	operator string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newHarness builds a Server with a fixed clock and sequential ids. At cleanup it
// fails the test if any handler panicked.
func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith is newHarness with cfg changed by mut before New (node id, city,
// Router, clock...). The doubles' clock is cfg.Clock as mut left it.
func newHarnessWith(t testing.TB, mut func(*Config)) *harness {
	t.Helper()
	store := edgetest.NewStore()
	cals := edgetest.NewCalendars(store, func() time.Time { return testNow })
	sess := edgetest.NewSessions(store, func() time.Time { return testNow })
	h := &harness{t: t, store: store, cals: cals, sess: sess, logs: &syncBuffer{}, tokens: edgetest.NewTokens(t)}
	h.operator = h.tokens.Bearer(t, auth.RoleOperator, "ops")
	var n atomic.Int64
	cfg := DefaultConfig()
	cfg.Auth = h.tokens.Verifier
	// No rate limits unless a test sets them: tests send bursts as one subject.
	cfg.Limits = Limits{PerSubject: rate.Inf, PerIP: rate.Inf}
	cfg.NodeID = "ba-1"
	cfg.City = "buenos-aires"
	cfg.Store = store
	cfg.Calendars = cals
	cfg.Sessions = sess
	cfg.Topology = topology.Default()
	cfg.Clock = func() time.Time { return testNow }
	cfg.NewID = func(prefix string) string { return fmt.Sprintf("%s_%06d", prefix, n.Add(1)) }
	cfg.Logger = slogTo(h.logs)
	cfg.Placement = func(ctx context.Context, id string) (Placement, error) {
		return Placement{Node: "ba-1", City: "buenos-aires", Jurisdiction: "ar"}, nil
	}
	cfg.Members = func() []Member {
		m := Member{ID: "ba-1", City: "buenos-aires", Jurisdiction: "ar", Status: "alive",
			Addresses: map[string]string{"http": "127.0.0.11:8080", "raft": "127.0.0.11:7000"}}
		m.Raft.Group, m.Raft.Role = "ar", "leader"
		return []Member{m}
	}
	cfg.PeerNode = peerNodeOf
	cfg.Ready = func() error {
		if p := h.ready.Load(); p != nil {
			return *p
		}
		return nil
	}
	if mut != nil {
		mut(&cfg)
	}
	cals.Now, sess.Now = cfg.Clock, cfg.Clock
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.srv = srv
	doc, err := OpenAPI()
	if err != nil {
		t.Fatalf("OpenAPI: %v", err)
	}
	if h.router, err = legacy.NewRouter(doc); err != nil {
		t.Fatalf("router: %v", err)
	}
	t.Cleanup(func() {
		if strings.Contains(h.logs.String(), "recovered panic") {
			t.Errorf("a handler panicked:\n%s", h.logs.String())
		}
	})
	return h
}

// call is one request of a test.
type call struct {
	method, path, body string
	// header is extra request headers; Content-Type defaults to application/json
	// when there is a body, Authorization to the harness's operator token.
	header map[string]string
	// anon sends no Authorization header.
	anon bool
	// peer sends the request to PeerHandler (as a relaying node does).
	peer bool
	// from is the node the peer connection's certificate names (peerConn);
	// default: the node ForwardedByHeader names, an honest relay.
	from string
	// valid asserts that the request itself conforms to the spec.
	valid bool
}

// do serves c and checks the answer against the spec: a documented status and a
// body of the documented schema; every 4xx/5xx a problem.
func (h *harness) do(c call) *httptest.ResponseRecorder {
	h.t.Helper()
	req := h.request(c)
	rec := httptest.NewRecorder()
	if c.peer {
		from := c.from
		if from == "" {
			from = req.Header.Get(ForwardedByHeader)
		}
		if from != "" {
			req.TLS = peerConn(from)
		}
		h.srv.PeerHandler().ServeHTTP(rec, req)
	} else {
		h.srv.Handler().ServeHTTP(rec, req)
	}
	if rec.Code >= 400 {
		checkProblem(h.t, rec)
	}
	if !h.noSpec {
		h.checkSpec(c, rec)
	}
	return rec
}

// peerConn is the state of a mutual-TLS connection whose peer certificate
// names node id, as peerNodeOf (the harness's Config.PeerNode) reads it: the
// cluster reads the certificate's URI SAN (cluster/pki) instead.
func peerConn(id string) *tls.ConnectionState {
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: id}}}}
}

// peerNodeOf is the harness's Config.PeerNode: the common name of the peer
// certificate (peerConn).
func peerNodeOf(cs *tls.ConnectionState) (string, error) {
	if len(cs.PeerCertificates) == 0 || cs.PeerCertificates[0].Subject.CommonName == "" {
		return "", errors.New("no peer certificate")
	}
	return cs.PeerCertificates[0].Subject.CommonName, nil
}

// request builds the request of c.
func (h *harness) request(c call) *http.Request {
	req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if !c.anon {
		req.Header.Set("Authorization", h.operator)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	return req
}

// as returns the header map of a call made with a token of role and sub.
func (h *harness) as(role auth.Role, sub string) map[string]string {
	return map[string]string{"Authorization": h.tokens.Bearer(h.t, role, sub)}
}

// checkSpec validates the exchange with kin-openapi's openapi3filter.
func (h *harness) checkSpec(c call, rec *httptest.ResponseRecorder) {
	h.t.Helper()
	ctx := context.Background()
	req := h.request(c)
	route, params, err := h.router.FindRoute(req)
	if err != nil {
		if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			h.t.Errorf("%s %s: not in the spec (%v) but answered %d", c.method, c.path, err, rec.Code)
		}
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if c.valid {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			h.t.Errorf("%s %s: request does not conform to the spec: %v", c.method, c.path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Body:                   io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		h.t.Errorf("%s %s: answer %d does not conform to the spec: %v\n%s", c.method, c.path, rec.Code, err, rec.Body)
	}
}

// checkProblem asserts that rec is an RFC 9457 problem whose status matches and
// whose code is a known one.
func checkProblem(t testing.TB, rec *httptest.ResponseRecorder) problemBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != problemContentType {
		t.Errorf("status %d: Content-Type %q, want %q; body %s", rec.Code, ct, problemContentType, rec.Body)
	}
	var p problemBody
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Errorf("status %d: problem body %q: %v", rec.Code, rec.Body, err)
	}
	if p.Status != rec.Code || titles[p.Code] == "" || p.Title != titles[p.Code] ||
		p.Type != ProblemTypePrefix+p.Code || p.Detail == "" {
		t.Errorf("status %d: bad problem %+v", rec.Code, p)
	}
	return p
}

// decode unmarshals the body of rec into a fresh T.
func decode[T any](t testing.TB, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %s: %v", rec.Body, err)
	}
	return v
}

// mustCreateProvider creates the valid provider and returns it.
func (h *harness) mustCreateProvider() providerOut {
	h.t.Helper()
	rec := h.do(call{method: "POST", path: "/v1/providers", body: validProviderBody, valid: true})
	if rec.Code != http.StatusCreated {
		h.t.Fatalf("create provider: %d %s", rec.Code, rec.Body)
	}
	return decode[providerOut](h.t, rec)
}

// bookingBody is the body of POST /v1/bookings.
func bookingBody(providerID, serviceID, clientID, start string) string {
	b, _ := json.Marshal(createBookingIn{ProviderID: providerID, ServiceID: serviceID, ClientID: clientID, Start: start})
	return string(b)
}

// mustBook books and returns the booking.
func (h *harness) mustBook(p providerOut, clientID, start string) bookingOut {
	h.t.Helper()
	rec := h.do(call{method: "POST", path: "/v1/bookings", body: bookingBody(p.ID, p.Services[0].ID, clientID, start), valid: true})
	if rec.Code != http.StatusCreated {
		h.t.Fatalf("book %s: %d %s", start, rec.Code, rec.Body)
	}
	return decode[bookingOut](h.t, rec)
}

// wantStatus fails when rec's status is not want.
func wantStatus(t testing.TB, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status %d, want %d; body %s", rec.Code, want, rec.Body)
	}
}

// slogTo is a logger writing text to w.
func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// serve sends one request to srv without spec checks and without a token.
func serve(srv *Server, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	return rec
}

// errNotFoundForTest is a store miss, as a stale replica answers.
var errNotFoundForTest = fmt.Errorf("%w: (test) stale replica", storage.ErrNotFound)

// readyPsych makes a psychology provider bookable for clients through h: an
// operator verifies its licence and each client grants a psychology-care
// consent in the provider's jurisdiction.
func (h *harness) readyPsych(p providerOut, clients ...string) {
	h.t.Helper()
	wantStatus(h.t, h.do(call{method: "POST", path: "/v1/providers/" + p.ID + "/verify", valid: true}), http.StatusOK)
	for _, c := range clients {
		h.grantConsent(c, p.Jurisdiction)
	}
}

// grantConsent grants client a psychology-care consent in jurisdiction j
// through h, as the client.
func (h *harness) grantConsent(client, j string) consentOut {
	h.t.Helper()
	rec := h.do(call{method: "POST", path: "/v1/clients/" + client + "/consents", header: h.as(auth.RoleClient, client),
		body: `{"purpose": "psychology-care", "jurisdiction": "` + j + `", "text_version": "2026-01"}`, valid: true})
	wantStatus(h.t, rec, http.StatusCreated)
	return decode[consentOut](h.t, rec)
}
