package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	"github.com/barberpro/edge/edge/ids"
)

// Router knows the live nodes of each jurisdiction. The cluster layer implements
// it from membership; Config.Router nil means a single-jurisdiction node.
//
// Concurrency: every method may be called from many goroutines at once.
type Router interface {
	// Jurisdiction is this node's jurisdiction (it must be its city's).
	Jurisdiction() string
	// Peer returns the base URL (http://host:port) of a live node of jurisdiction
	// j, preferring one in city (city may be ""); an error wrapping ErrNoPeer if
	// none is up.
	Peer(j, city string) (string, error)
	// Jurisdictions lists every jurisdiction with a live node, this node's
	// included, sorted.
	Jurisdictions() []string
}

// ErrNoPeer is what Router.Peer returns (wrapped) when no node of the
// jurisdiction is up: the request answers 503 jurisdiction_unavailable.
var ErrNoPeer = errors.New("edge: no live node of that jurisdiction")

// ForwardedByHeader marks a request relayed by another node; its value is that
// node's id. Only Server.PeerHandler (a listener only nodes reach) takes it;
// Server.Handler refuses a request that carries it (403). A node handles a relayed
// request itself and never relays it again: if it is for another jurisdiction
// the answer is 503. On the unfiltered lists it means "this store only": the
// relaying node is gathering every jurisdiction's. A relayed request carries the
// client's Authorization header unchanged and is not rate-limited again.
const ForwardedByHeader = "X-Barberpro-Forwarded-By"

// CreatedMsHeader is set on the answer of GET /v1/clients/{id}/bookings to a
// relayed request: the created_at_ms of each item, in order, comma-separated, so
// the gathering node can merge pages of several stores newest first.
const CreatedMsHeader = "X-Barberpro-Created-Ms"

// maxPeerAnswerBytes bounds the answer of a peer to a fan-out request.
const maxPeerAnswerBytes = 64 << 20

// locator tells the home city of the record a request is about, from the request
// alone (path, query, or the body); ok is false when it cannot tell, in which
// case the request is handled locally (and answers its own 4xx). A locator that
// decodes the body for the handler leaves it in w (byBodyProvider).
type locator func(s *Server, w *statusWriter, r *http.Request) (city string, ok bool)

// byPathID locates /v1/providers/{id}/... and /v1/bookings/{id}/...
func byPathID(_ *Server, _ *statusWriter, r *http.Request) (string, bool) {
	return ids.CityOf(r.PathValue("id"))
}

// byQueryCity locates GET /v1/providers?city=X; without city the list gathers
// every jurisdiction's (listProviders).
func byQueryCity(_ *Server, _ *statusWriter, r *http.Request) (string, bool) {
	city := r.URL.Query().Get("city")
	return city, city != ""
}

// byBodyCity locates POST /v1/providers by its body's city.
func byBodyCity(s *Server, _ *statusWriter, r *http.Request) (string, bool) {
	var in struct {
		City string `json:"city"`
	}
	if b := s.peekBody(r); b == nil || json.Unmarshal(b, &in) != nil {
		return "", false
	}
	return in.City, in.City != ""
}

// byBodyJurisdiction locates POST /v1/clients/{client_id}/consents by its body's
// jurisdiction (through the first city of that jurisdiction).
func byBodyJurisdiction(s *Server, _ *statusWriter, r *http.Request) (string, bool) {
	var in struct {
		Jurisdiction string `json:"jurisdiction"`
	}
	if b := s.peekBody(r); b == nil || json.Unmarshal(b, &in) != nil {
		return "", false
	}
	return s.firstCity(in.Jurisdiction)
}

// byQueryJurisdiction locates GET /v1/audit?jurisdiction=X; without it, the
// home of the object asked about when its id carries a city
// (?object=bkg_cordoba_…: the Argentine chain, where its entries are), else
// this node's.
func byQueryJurisdiction(s *Server, _ *statusWriter, r *http.Request) (string, bool) {
	q := r.URL.Query()
	if j := q.Get("jurisdiction"); j != "" {
		return s.firstCity(j)
	}
	return ids.CityOf(q.Get("object"))
}

// providerNamer is a request body that names a provider: POST /v1/bookings and
// POST /v1/bookings/series, located by it.
type providerNamer interface{ providerOf() string }

// decoded is a request body as a locator decoded it for the handler: the
// value (a *T of the route's input) and decodeBody's error.
type decoded struct {
	v   any
	err error
}

// byBodyProvider locates a request by its body's provider_id, decoding the
// body as the handler does (decodeBody, into a T) and leaving the result in w
// for it (decodedBody): one decoding a request. The body is put back for a
// relay. A body that does not decode is not located (the handler answers its
// 4xx from the result left in w).
func byBodyProvider[T any, P interface {
	*T
	providerNamer
}](s *Server, w *statusWriter, r *http.Request) (string, bool) {
	in := P(new(T))
	b, err := s.readBody(w, r)
	if err == nil {
		r.Body = io.NopCloser(bytes.NewReader(b))
		resendable(r, b)
		err = s.decodeJSON(r, b, in, false)
	}
	w.body = &decoded{v: in, err: err}
	if err != nil {
		return "", false
	}
	return ids.CityOf(in.providerOf())
}

// decodedBody is the request body decoded into a T: the locator's result when
// byBodyProvider[T] located the request, else decodeBody's.
func decodedBody[T any](s *Server, w http.ResponseWriter, r *http.Request) (*T, error) {
	if sw, ok := w.(*statusWriter); ok && sw.body != nil {
		if in, ok := sw.body.v.(*T); ok {
			return in, sw.body.err
		}
	}
	in := new(T)
	_, err := s.decodeBody(w, r, in, false)
	return in, err
}

// peekBody reads the body (at most MaxBodyBytes) and puts it back so that the
// handler or the proxy reads it whole. It returns nil when there is no body, it
// is too large or it cannot be read: the local handler then answers the 4xx.
func (s *Server) peekBody(r *http.Request) []byte {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	orig := r.Body
	b, err := io.ReadAll(io.LimitReader(orig, s.cfg.MaxBodyBytes+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), orig), orig}
	if err != nil || int64(len(b)) > s.cfg.MaxBodyBytes {
		return nil
	}
	resendable(r, b)
	return b
}

// resendable sets r.GetBody to b, the whole body already read: a relay may
// send it again (a pooled connection found closed) without copying it.
func resendable(r *http.Request, b []byte) {
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// jurisdictionOf is the jurisdiction of a city of the topology.
func (s *Server) jurisdictionOf(city string) (string, bool) {
	c, err := s.cfg.Topology.City(city)
	if err != nil {
		return "", false
	}
	return c.Jurisdiction, true
}

// relayed reports whether r was relayed by another node: it came through
// PeerHandler (Handler refuses ForwardedByHeader) and carries the header.
func relayed(r *http.Request) bool {
	return r.Context().Value(peerKey{}) != nil && r.Header.Get(ForwardedByHeader) != ""
}

// fansOut reports whether an unfiltered list must gather every jurisdiction's:
// there is a Router and the request was not relayed.
func (s *Server) fansOut(r *http.Request) bool { return s.cfg.Router != nil && !relayed(r) }

// routeAway sends a request about another jurisdiction's record to a node of that
// jurisdiction and relays the answer. It returns false, having done nothing but
// peek at the body, when the request is for this node's jurisdiction or its
// jurisdiction cannot be told (the local handler answers).
func (s *Server) routeAway(w *statusWriter, r *http.Request, label string, loc locator) bool {
	city, ok := loc(s, w, r)
	if !ok {
		return false
	}
	j, ok := s.jurisdictionOf(city)
	if !ok || j == s.jurisdiction {
		return false
	}
	if relayed(r) {
		s.log.WarnContext(r.Context(), "edge: relayed request for another jurisdiction refused",
			"route", label, "jurisdiction", j)
		s.metrics.forwarded.WithLabelValues(label, j, "refused").Inc()
		writeProblem(w, http.StatusServiceUnavailable, CodeJurisdictionUnavailable,
			fmt.Sprintf("this node serves jurisdiction %s, not %s, and does not relay a request twice; retry", s.jurisdiction, j))
		return true
	}
	s.forward(w, r, label, j, city)
	return true
}

// forwardInfo travels in the context of a relayed request to the proxy's hooks.
type forwardInfo struct {
	target       *url.URL
	label, juris string
}

type forwardKey struct{}

// newProxy builds the reverse proxy that relays requests to other nodes: the
// request unchanged but for X-Barberpro-Forwarded-By (and hop-by-hop headers),
// the answer streamed back verbatim. It stores, caches and logs nothing of either.
func (s *Server) newProxy() *httputil.ReverseProxy {
	return traceProxy(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			fi := pr.In.Context().Value(forwardKey{}).(*forwardInfo)
			pr.SetURL(fi.target)
			pr.Out.Header.Set(ForwardedByHeader, s.cfg.NodeID)
		},
		Transport: s.cfg.PeerTransport,
		// The standard logger would print errors carrying the URL (ids).
		ErrorLog: log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			fi := r.Context().Value(forwardKey{}).(*forwardInfo)
			reason := "unreachable"
			if errors.Is(err, context.DeadlineExceeded) {
				reason = "timed out"
			} else if errors.Is(err, context.Canceled) {
				reason = "cancelled"
			}
			s.log.WarnContext(r.Context(), "edge: relaying to another jurisdiction failed",
				"route", fi.label, "jurisdiction", fi.juris, "target", fi.target.Host, "reason", reason)
			w.Header().Set("Cache-Control", noStore)
			writeProblem(w, http.StatusServiceUnavailable, CodeJurisdictionUnavailable,
				fmt.Sprintf("the node of jurisdiction %s did not answer (%s); retry", fi.juris, reason))
		},
	})
}

// forward relays r to a live node of jurisdiction j (preferring city) within
// ForwardTimeout. No live node, a refused connection or a timeout answer 503.
func (s *Server) forward(w *statusWriter, r *http.Request, label, j, city string) {
	base, err := s.cfg.Router.Peer(j, city)
	var target *url.URL
	if err == nil {
		target, err = peerURL(base)
	}
	if err != nil {
		s.log.WarnContext(r.Context(), "edge: no node to relay to", "route", label, "jurisdiction", j, "err", err)
		s.metrics.forwarded.WithLabelValues(label, j, "no_peer").Inc()
		writeProblem(w, http.StatusServiceUnavailable, CodeJurisdictionUnavailable,
			fmt.Sprintf("no node of jurisdiction %s is up; retry later", j))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ForwardTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, forwardKey{}, &forwardInfo{target: target, label: label, juris: j})
	w.Header().Del("Cache-Control") // the home node's answer says what it is
	s.proxy.ServeHTTP(w, r.WithContext(ctx))
	status := strconv.Itoa(w.statusCode())
	s.metrics.forwarded.WithLabelValues(label, j, status).Inc()
	s.log.DebugContext(r.Context(), "edge: relayed", "route", label, "jurisdiction", j, "target", target.Host, "status", status)
}

// peerURL parses a base URL from the Router.
func peerURL(base string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("edge: Router.Peer gave %q, not an http(s)://host:port URL", base)
	}
	return u, nil
}

// errJurisdiction is the 503 of a jurisdiction that cannot answer a fan-out.
func errJurisdiction(j, reason string) error {
	return &apiError{http.StatusServiceUnavailable, CodeJurisdictionUnavailable, fmt.Sprintf("jurisdiction %s cannot answer now (%s), so the list would be incomplete; retry", j, reason), nil}

}

// peerGet sends a relayed GET of path (escaped) ?q to a live node of jurisdiction j and
// returns the 200 answer's body and headers. A peer's 4xx problem is returned as
// is; anything else that is not a 200 is a 503 naming j. label is the route
// pattern, for the log (which never holds ids or bodies).
func (s *Server) peerGet(ctx context.Context, label, j, path string, q url.Values) ([]byte, http.Header, error) {
	return s.peerDo(ctx, label, http.MethodGet, j, path, q)
}

// peerDo is peerGet with any method (no body): the fan-out of an erasure sends
// DELETE. Any 2xx answer is a success.
func (s *Server) peerDo(ctx context.Context, label, method, j, path string, q url.Values) ([]byte, http.Header, error) {
	base, err := s.cfg.Router.Peer(j, "")
	var target *url.URL
	if err == nil {
		target, err = peerURL(base)
	}
	if err != nil {
		s.log.WarnContext(ctx, "edge: no node to gather from", "route", label, "jurisdiction", j, "err", err)
		return nil, nil, errJurisdiction(j, "no live node")
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ForwardTimeout)
	defer cancel()
	// path is already escaped; no cleaning of dot segments (JoinPath would).
	u := strings.TrimRight(target.String(), "/") + path + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("edge: fan-out request: %w", err) // a bug: 500
	}
	req.Header.Set(ForwardedByHeader, s.cfg.NodeID)
	req.Header.Set("Accept", "application/json")
	setTraceHeader(req, req.Header)
	if c, ok := callerOf(ctx); ok && c.authorization != "" {
		// The peer verifies the caller's token again and applies the route's access.
		req.Header.Set("Authorization", c.authorization)
	}
	fail := func(reason string) ([]byte, http.Header, error) {
		s.log.WarnContext(ctx, "edge: gathering from another jurisdiction failed",
			"route", label, "jurisdiction", j, "target", target.Host, "reason", reason)
		return nil, nil, errJurisdiction(j, reason)
	}
	resp, err := s.peerClient.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) { // the client left, or another source failed
			return nil, nil, fmt.Errorf("edge: gathering from jurisdiction %s: %w", j, context.Canceled)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fail("timed out")
		}
		return fail("unreachable")
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerAnswerBytes+1))
	switch {
	case err != nil:
		return fail("answer cut short")
	case len(b) > maxPeerAnswerBytes:
		return fail("answer too large")
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return b, resp.Header, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		var p problemBody
		if json.Unmarshal(b, &p) == nil && p.Code != "" && titles[p.Code] != "" {
			return nil, nil, &apiError{resp.StatusCode, p.Code, p.Detail, nil}
		}
	}
	return fail("answered " + strconv.Itoa(resp.StatusCode))
}
