package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/barberpro/edge/edge/auth"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/reqtrace"
)

// Server serves the HTTP API v1 of one node. It holds no state of its own beyond
// caches and rate-limit buckets; everything lives in Store and Calendars. Its
// handlers are safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler
	peer    http.Handler
	routes  []route
	metrics *httpMetrics
	openapi []byte
	limits  *limiter

	// jurisdiction is this node's (its city's).
	jurisdiction string
	// proxy relays requests to other jurisdictions; peerClient gathers lists.
	proxy      *httputil.ReverseProxy
	peerClient *http.Client

	zones sync.Map // IANA name → *time.Location
	// providers holds providers for their immutable facts (providercache.go).
	providers providerCache
	// availBodies holds encoded availability answers (encode.go).
	availBodies availBodies
	// listMemo holds encoded provider list pages (listmemo.go).
	listMemo listMemo
}

// handlerFunc handles one request; a returned error is answered as a problem.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one method and path pattern of the API.
type route struct {
	method, path string
	h            handlerFunc
	// loc, when set and Config.Router is set, tells the request's home city: a
	// request for another jurisdiction is relayed there instead of handled.
	loc locator
	// acc is who may call the route (access.go; security.md's table).
	acc access
}

// pattern is the ServeMux pattern of the route, e.g. "GET /v1/bookings/{id}".
func (rt route) pattern() string { return rt.method + " " + rt.path }

// unmatchedRoute labels the metrics of requests that match no route.
const unmatchedRoute = "unmatched"

// New validates cfg, fills its defaults and builds a Server. It starts no
// goroutine.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	spec, err := openAPIJSON()
	if err != nil {
		return nil, err
	}
	m, err := newHTTPMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: reqtrace.Logger(cfg.Logger), mux: http.NewServeMux(), metrics: m, openapi: spec,
		limits: newLimiter(cfg.Limits, cfg.Clock)}
	s.jurisdiction, _ = s.jurisdictionOf(cfg.City) // Validate checked the city
	s.proxy = s.newProxy()
	s.peerClient = &http.Client{
		Transport:     cfg.PeerTransport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	metricsHandler := promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry})
	// The route table: method, pattern, handler, locator (relay), access (who may).
	s.routes = []route{
		{http.MethodPost, "/v1/providers", s.createProvider, byBodyCity, operatorOnly},
		{http.MethodGet, "/v1/providers", s.listProviders, byQueryCity, publicAccess},
		{http.MethodGet, "/v1/providers/{id}", s.getProvider, byPathID, publicAccess},
		{http.MethodPatch, "/v1/providers/{id}", s.patchProvider, byPathID, ownProviderPath},
		{http.MethodGet, "/v1/providers/{id}/availability", s.availability, byPathID, publicAccess},
		{http.MethodGet, "/v1/providers/{id}/placement", s.placement, byPathID, operatorOnly},
		{http.MethodPost, "/v1/bookings", s.createBooking, byBodyProvider[createBookingIn], ownBooking},
		{http.MethodGet, "/v1/bookings/{id}", s.getBooking, byPathID, ownBooking},
		{http.MethodPost, "/v1/bookings/{id}/cancel", s.cancelBooking, byPathID, ownBooking},
		{http.MethodPost, "/v1/bookings/{id}/reschedule", s.rescheduleBooking, byPathID, ownBooking},
		{http.MethodGet, "/v1/clients/{client_id}/bookings", s.clientBookings, nil, ownClientBookings},
		// Issue 9: the psychology vertical (psychology.md) and series.
		{http.MethodPost, "/v1/providers/{id}/verify", s.verifyProvider, byPathID, operatorOnly},
		{http.MethodPost, "/v1/clients/{client_id}/consents", s.grantConsent, byBodyJurisdiction, ownClientOnly},
		{http.MethodGet, "/v1/clients/{client_id}/consents", s.listConsents, nil, ownClientOnly},
		{http.MethodPost, "/v1/clients/{client_id}/consents/{id}/withdraw", s.withdrawConsent, byPathID, ownClientOnly},
		{http.MethodPost, "/v1/bookings/series", s.createSeries, byBodyProvider[createSeriesIn], ownBooking},
		{http.MethodPost, "/v1/bookings/series/{id}/cancel", s.cancelSeries, byPathID, ownBooking},
		{http.MethodGet, "/v1/sessions/{id}", s.getSession, byPathID, sessionRead},
		{http.MethodPost, "/v1/sessions/{id}/check-in", s.moveSession(bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN), byPathID, treatingProvider},
		{http.MethodPost, "/v1/sessions/{id}/complete", s.moveSession(bookingv1.SessionStatus_SESSION_STATUS_COMPLETED), byPathID, treatingProvider},
		{http.MethodPost, "/v1/sessions/{id}/no-show", s.moveSession(bookingv1.SessionStatus_SESSION_STATUS_NO_SHOW), byPathID, treatingProvider},
		{http.MethodPut, "/v1/sessions/{id}/notes", s.putNotes, byPathID, treatingProvider},
		{http.MethodGet, "/v1/sessions/{id}/notes", s.getNotes, byPathID, treatingProvider},
		{http.MethodDelete, "/v1/clients/{client_id}/health-data", s.eraseHealthData, nil, ownClientOrOperator},
		{http.MethodGet, "/v1/clients/{client_id}/export", s.exportClient, nil, ownClientOnly},
		{http.MethodGet, "/v1/audit", s.auditList, byQueryJurisdiction, operatorOnly},
		{http.MethodGet, "/v1/cluster/members", s.members, nil, operatorOnly},
		{http.MethodGet, "/v1/cluster/status", s.clusterStatus, nil, operatorOnly},
		{http.MethodPost, "/v1/cluster/leave", s.clusterLeave, nil, operatorOnly},
		{http.MethodPost, "/v1/cluster/members/{id}/remove", s.clusterRemove, nil, operatorOnly},
		// Issue 10: never relayed (a backup is all of a jurisdiction's records).
		{http.MethodGet, "/v1/cluster/backup", s.clusterBackup, nil, operatorOnly},
		{http.MethodGet, "/healthz", s.healthz, nil, publicAccess},
		{http.MethodGet, "/readyz", s.readyz, nil, publicAccess},
		{http.MethodGet, "/metrics", func(w http.ResponseWriter, r *http.Request) error {
			metricsHandler.ServeHTTP(w, r)
			return nil
		}, nil, publicAccess},
		{http.MethodGet, "/openapi.json", s.openAPI, nil, publicAccess},
	}
	peerMux := http.NewServeMux()
	for _, rt := range s.routes {
		s.mux.Handle(rt.pattern(), s.wrap(rt.pattern(), rt.h, rt.loc, rt.acc, false))
		peerMux.Handle(rt.pattern(), s.wrap(rt.pattern(), rt.h, rt.loc, rt.acc, true))
	}
	s.mux.Handle("/", s.wrap(unmatchedRoute, s.noRoute, nil, publicAccess, false))
	peerMux.Handle("/", s.wrap(unmatchedRoute, s.noRoute, nil, publicAccess, true))
	s.handler, s.peer = s.mux, peerMux
	return s, nil
}

// Handler returns the http.Handler of the API that clients call. It applies
// the rate limits, and refuses a request that carries ForwardedByHeader (403):
// only PeerHandler takes relayed requests.
func (s *Server) Handler() http.Handler { return s.handler }

// PeerHandler returns the http.Handler of the same routes for requests that
// other nodes relay (ForwardedByHeader): the cluster serves it on a listener
// only nodes can reach (mutual TLS). The header is honoured only when it names
// the node of the connection's peer certificate (Config.PeerNode; 403
// otherwise). Tokens are verified there again (relays
// pass the Authorization header on unchanged) and the route's access applies
// again; rate limits do not, the node the client called applied them.
func (s *Server) PeerHandler() http.Handler { return s.peer }

// peerKey marks the context of a request served by PeerHandler.
type peerKey struct{}

// wrap adds to h what every route has: the request deadline, panic recovery,
// problem answers for errors, and metrics labelled with the route pattern; the
// bearer token, the rate limit (not on the peer handler) and the route's access
// (acc). With a Router and a locator, a request for another jurisdiction is
// relayed there (routeAway) instead of reaching h.
func (s *Server) wrap(label string, h handlerFunc, loc locator, acc access, peer bool) http.Handler {
	metrics := s.metrics.forRoute(label)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r = traced(w, r) // request id and trace (reqid.go)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { // let net/http abort the connection
					panic(v)
				}
				// The route pattern, never the path: paths hold ids.
				s.log.ErrorContext(r.Context(), "edge: recovered panic",
					"route", label, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				s.metrics.panics.Inc()
				if !sw.wroteHeader {
					writeProblem(sw, http.StatusInternalServerError, CodeInternalError, "internal error")
				}
			}
			d := time.Since(start)
			metrics.observe(sw.statusCode(), d)
			s.logAccess(r, label, sw.statusCode(), d)
		}()
		// Nothing is cacheable unless the handler says so (cacheFor): the
		// psychology vertical's answers, errors included, are never stored. A
		// relayed answer carries the home node's header instead (forward).
		sw.Header().Set("Cache-Control", noStore)
		r, err := s.admit(r, acc, peer)
		if err != nil {
			err = s.auditRefusedRoute(r, label, err)
			s.writeError(sw, r, label, err)
			return
		}
		// A query string that is not valid URL encoding would otherwise be read
		// as missing parameters (an unfiltered list for ?city=%zz).
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			s.writeError(sw, r, label, badRequest("the query string is not valid URL encoding"))
			return
		}
		if s.cfg.Router != nil && loc != nil && s.routeAway(sw, r, label, loc) {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		if err := h(sw, r.WithContext(ctx)); err != nil {
			s.writeError(sw, r, label, err)
		}
	})
}

// admit authenticates r, charges its rate limit (public handler only) and
// applies acc. It returns r with the caller (callerOf) and, on the peer handler,
// the peer mark in its context, or the problem to answer.
func (s *Server) admit(r *http.Request, acc access, peer bool) (*http.Request, error) {
	if err := s.checkRelay(r, peer); err != nil {
		return r, err
	}
	p, authErr, err := s.authenticate(r, acc, !peer)
	if err != nil {
		return r, err
	}
	node := s.cfg.NodeID
	if by := r.Header.Get(ForwardedByHeader); peer && by != "" {
		node = by // checkRelay verified it names the connection's peer
	}
	c, ok, err := authorize(r, acc, p, authErr, node)
	if err != nil {
		if c.p.Subject != "" {
			// Refused from the role alone: the caller is kept for the
			// refusal's audit record (auditRouteRefusal), never for access.
			r = r.WithContext(context.WithValue(r.Context(), refusedKey{}, c))
		}
		return r, err
	}
	ctx := r.Context()
	if ok {
		ctx = context.WithValue(ctx, callerKey{}, c)
	}
	if peer {
		ctx = context.WithValue(ctx, peerKey{}, true)
	}
	return r.WithContext(ctx), nil
}

// authenticate returns the principal of r's bearer token, or authErr when it has
// none that verifies (on a public route without an Authorization header, no
// token is looked at). With limit (the public handler) it charges the rate
// limits first, and returns err, a 429, when over: a token the verifier has
// verified before is charged to its subject alone; any other request to the
// client's IP, before any signature is checked, and, once its token verified,
// to its subject too. A valid token is charged whether or not the route then
// lets it through.
func (s *Server) authenticate(r *http.Request, acc access, limit bool) (p auth.Principal, authErr, err error) {
	authErr = auth.ErrNoToken
	var tok string
	if !acc.public || r.Header.Get("Authorization") != "" {
		tok, authErr = auth.BearerToken(r.Header)
	}
	if authErr == nil {
		var cached bool
		if p, cached = s.cfg.Auth.Cached(tok); !cached {
			if limit {
				if ok, retry := s.limits.allowIP(r); !ok {
					return p, authErr, errRateLimited(retry)
				}
			}
			if p, authErr = s.cfg.Auth.Verify(tok); authErr != nil {
				return p, authErr, nil
			}
		}
		if limit {
			if ok, retry := s.limits.allowSubject(p); !ok {
				return p, nil, errRateLimited(retry)
			}
		}
		return p, nil, nil
	}
	if limit {
		if ok, retry := s.limits.allowIP(r); !ok {
			return p, authErr, errRateLimited(retry)
		}
	}
	return p, authErr, nil
}

// checkRelay refuses ForwardedByHeader where it must not be honoured: on the
// public handler always (only nodes relay, and only over the peer listener), on
// the peer handler unless it names the node whose certificate the request came
// over (Config.PeerNode): a node may relay only in its own name.
func (s *Server) checkRelay(r *http.Request, peer bool) error {
	by := r.Header.Get(ForwardedByHeader)
	switch {
	case by == "":
		return nil
	case !peer:
		return errForbidden(ForwardedByHeader + " is for nodes: relayed requests are taken only on the peer listener")
	case s.cfg.PeerNode == nil:
		return errForbidden(ForwardedByHeader + " is not taken here: this node cannot tell which node a connection is from")
	case r.TLS == nil:
		return errForbidden(ForwardedByHeader + " is taken only over mutual TLS")
	}
	node, err := s.cfg.PeerNode(r.TLS)
	switch {
	case err != nil:
		return errForbidden(ForwardedByHeader + ": the peer certificate names no node")
	case node != by:
		return errForbidden(ForwardedByHeader + " must name the node of the peer certificate")
	}
	return nil
}

// refusedKey marks the context of a request whose valid token the route
// refused from the role alone; its value is the caller.
type refusedKey struct{}

// clientRouteActions are the audit actions of the routes about a client's
// psychology data (psychology.md, "Audit": consents, export, erasure,
// bookings), whose refusals by the route wrapper are audited too.
var clientRouteActions = map[string]string{
	"POST /v1/clients/{client_id}/consents":               "consent.grant",
	"GET /v1/clients/{client_id}/consents":                "consent.read",
	"POST /v1/clients/{client_id}/consents/{id}/withdraw": "consent.withdraw",
	"GET /v1/clients/{client_id}/export":                  "export",
	"DELETE /v1/clients/{client_id}/health-data":          "erasure",
	"GET /v1/clients/{client_id}/bookings":                "booking.read",
}

// auditRefusedRoute appends the audit record of a 403 that the wrapper decided
// from the role alone on a route of clientRouteActions (object
// "client:<client_id>", outcome forbidden) and returns refusal, or the error
// of appending it. The record goes to this node's store only when it holds
// something of the client (auditRouteRefusal).
func (s *Server) auditRefusedRoute(r *http.Request, label string, refusal error) error {
	action, ok := clientRouteActions[label]
	if !ok {
		return refusal
	}
	c, ok := r.Context().Value(refusedKey{}).(caller)
	var ae *apiError
	if !ok || !errors.As(refusal, &ae) || ae.status != http.StatusForbidden {
		return refusal
	}
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), callerKey{}, c), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.auditRouteRefusal(ctx, action, r.PathValue("client_id")); err != nil {
		return err
	}
	return refusal
}

// noRoute answers requests no route matches: 405 with Allow when the path exists
// with another method, else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, p := s.mux.Handler(probe); p != "" && p != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		if strings.Contains(strings.Join(allow, ","), http.MethodGet) {
			allow = append(allow, http.MethodHead)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return &apiError{http.StatusMethodNotAllowed, CodeNotFound, fmt.Sprintf("method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", ")), nil}

	}
	return notFound("no route for %s %s", r.Method, r.URL.Path)
}

// statusWriter records the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	// body is the request body a locator decoded for the handler, or nil.
	body *decoded
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) statusCode() int {
	if !w.wroteHeader {
		return http.StatusOK
	}
	return w.status
}

// httpMetrics are the edge's Prometheus metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	panics   prometheus.Counter
	// forwarded counts requests relayed to another jurisdiction, by route,
	// jurisdiction and outcome (the status relayed, "no_peer" or "refused").
	forwarded *prometheus.CounterVec
}

func newHTTPMetrics(reg *prometheus.Registry) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "barberpro", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "barberpro", Subsystem: "http", Name: "request_duration_seconds",
			Help: "Time to answer an HTTP request, by route pattern.",
			// .15 is the booking latency objective (deploy/prometheus/alerts.yml).
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .15, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "barberpro", Subsystem: "http", Name: "panics_total",
			Help: "Handler panics recovered (a bug: it should stay 0).",
		}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "barberpro", Subsystem: "http", Name: "forwarded_total",
			Help: "Requests relayed to a node of another jurisdiction, by route pattern, jurisdiction and outcome.",
		}, []string{"route", "jurisdiction", "outcome"}),
	}
	var err error
	m.requests, err = register(reg, m.requests)
	if err != nil {
		return nil, err
	}
	m.latency, err = register(reg, m.latency)
	if err != nil {
		return nil, err
	}
	m.panics, err = register(reg, m.panics)
	if err != nil {
		return nil, err
	}
	m.forwarded, err = register(reg, m.forwarded)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under its
// name (two Servers may share a Registry).
func register[C prometheus.Collector](reg *prometheus.Registry, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("edge: registering metrics: %w", err)
	}
	return c, nil
}

// routeMetrics observes the requests of one route. It looks the route's
// series up once (the latency) or once per status (the count) instead of
// hashing the labels on every request; a series still appears only once a
// request was answered with it.
type routeMetrics struct {
	m        *httpMetrics
	route    string
	latency  func() prometheus.Observer
	requests sync.Map // status (int) → prometheus.Counter
}

func (m *httpMetrics) forRoute(route string) *routeMetrics {
	return &routeMetrics{m: m, route: route, latency: sync.OnceValue(func() prometheus.Observer {
		return m.latency.WithLabelValues(route)
	})}
}

// observe counts a request answered with status after d.
func (rm *routeMetrics) observe(status int, d time.Duration) {
	c, ok := rm.requests.Load(status)
	if !ok {
		c, _ = rm.requests.LoadOrStore(status, rm.m.requests.WithLabelValues(rm.route, strconv.Itoa(status)))
	}
	c.(prometheus.Counter).Inc()
	rm.latency().Observe(d.Seconds())
}
