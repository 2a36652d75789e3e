package edge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/edgetest"
	"github.com/barberpro/edge/edge/ids"
	"github.com/barberpro/edge/storage"
)

// fakePeers is the shared view of which node serves each jurisdiction.
type fakePeers struct {
	mu   sync.Mutex
	urls map[string]string // jurisdiction → base URL
	// tokens is the token key set every node of the cluster shares.
	tokens *edgetest.Tokens
}

func (p *fakePeers) set(j, url string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.urls[j] = url
}

func (p *fakePeers) remove(j string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.urls, j)
}

// fakeRouter is one node's Router over fakePeers; it records what it was asked.
type fakeRouter struct {
	self  string
	peers *fakePeers
	mu    sync.Mutex
	asked []string // "jurisdiction/city"
}

func (r *fakeRouter) Jurisdiction() string { return r.self }

func (r *fakeRouter) Peer(j, city string) (string, error) {
	r.mu.Lock()
	r.asked = append(r.asked, j+"/"+city)
	r.mu.Unlock()
	r.peers.mu.Lock()
	defer r.peers.mu.Unlock()
	u, ok := r.peers.urls[j]
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrNoPeer, j)
	}
	return u, nil
}

func (r *fakeRouter) Jurisdictions() []string {
	r.peers.mu.Lock()
	defer r.peers.mu.Unlock()
	js := []string{r.self}
	for j := range r.peers.urls {
		js = append(js, j)
	}
	slices.Sort(js)
	return slices.Compact(js)
}

func (r *fakeRouter) askedFor() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.asked)
}

// recorder records the calls a node made to its Store and Calendars doubles and
// the ForwardedByHeader of the requests it received over HTTP.
type recorder struct {
	mu        sync.Mutex
	ops       []string
	forwarded []string
}

func (rc *recorder) op(op string) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.ops = append(rc.ops, op)
	return nil
}

func (rc *recorder) calls() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.ops)
}

func (rc *recorder) reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.ops, rc.forwarded = nil, nil
}

func (rc *recorder) forwardedBy() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.forwarded)
}

// testNode is one node of an in-process cluster: a harness (requests sent to it
// in-process) also served over HTTP for its peers.
type testNode struct {
	*harness
	juris  string
	router *fakeRouter
	rec    *recorder
	ts     *httptest.Server
}

// newTestNode starts a node of city (of jurisdiction juris) and registers it in
// peers. Its logger logs everything, debug included.
func newTestNode(t *testing.T, peers *fakePeers, id, city, juris string, clock func() time.Time, mut func(*Config)) *testNode {
	t.Helper()
	n := &testNode{juris: juris, router: &fakeRouter{self: juris, peers: peers}, rec: &recorder{}}
	logs := &syncBuffer{}
	if peers.tokens == nil {
		peers.tokens = edgetest.NewTokens(t)
	}
	n.harness = newHarnessWith(t, func(c *Config) {
		c.NodeID, c.City, c.Router = id, city, n.router
		c.Auth = peers.tokens.Verifier
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if clock != nil {
			c.Clock = clock
		}
		if mut != nil {
			mut(c)
		}
	})
	n.harness.logs = logs
	n.harness.tokens = peers.tokens
	n.harness.operator = peers.tokens.Bearer(t, auth.RoleOperator, "ops")
	n.store.Fail, n.cals.Fail, n.sess.Fail = n.rec.op, n.rec.op, n.rec.op
	n.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if by := r.Header.Get(ForwardedByHeader); by != "" {
			n.rec.mu.Lock()
			n.rec.forwarded = append(n.rec.forwarded, by)
			n.rec.mu.Unlock()
		}
		// The peer listener: what Router.Peer points at. It stands for mutual
		// TLS with the relaying node, which names itself honestly here.
		if by := r.Header.Get(ForwardedByHeader); by != "" {
			r.TLS = peerConn(by)
		}
		n.srv.PeerHandler().ServeHTTP(w, r)
	}))
	t.Cleanup(n.ts.Close)
	peers.set(juris, n.ts.URL)
	return n
}

// newTestCluster starts an Argentine node (buenos-aires) and a US one (us-east).
func newTestCluster(t *testing.T, clock func() time.Time) (ar, us *testNode, peers *fakePeers) {
	t.Helper()
	peers = &fakePeers{urls: map[string]string{}}
	ar = newTestNode(t, peers, "ba-1", "buenos-aires", "ar", clock, nil)
	us = newTestNode(t, peers, "us-1", "us-east", "us", clock, nil)
	return ar, us, peers
}

// providerBody is validProviderBody homed in city with the vertical.
func providerBody(city, vertical string) string {
	b := strings.Replace(validProviderBody, `"city": "buenos-aires"`, `"city": "`+city+`"`, 1)
	b = strings.Replace(b, `"vertical": "barber"`, `"vertical": "`+vertical+`"`, 1)
	if city == "us-east" {
		b = strings.ReplaceAll(b, `"ARS"`, `"USD"`)
	}
	if vertical == "psychology" {
		b = strings.Replace(b, `"name": "Barbería Don Julio",`, `"name": "Lic. Laura Pérez", "license": {"number": "MN 12345", "issuer": "Colegio de Psicólogos"},`, 1)
	}
	return b
}

// create creates a provider through node h.
func (h *harness) create(body string) providerOut {
	h.t.Helper()
	rec := h.do(call{method: "POST", path: "/v1/providers", body: body, valid: true})
	wantStatus(h.t, rec, http.StatusCreated)
	return decode[providerOut](h.t, rec)
}

// TestRouting_RelaysToHomeJurisdiction drives every provider and booking route
// of an Argentine psychology provider through the US node: the Argentine node
// answers, the US node relays, keeps nothing, calls nothing, logs no id.
func TestRouting_RelaysToHomeJurisdiction(t *testing.T) {
	ar, us, _ := newTestCluster(t, nil)

	// Created through the US node, homed in La Plata: it lives in ar's store.
	p := us.create(providerBody("la-plata", "psychology"))
	if !strings.HasPrefix(p.ID, "prv_la-plata_") || p.Jurisdiction != "ar" || p.City != "la-plata" {
		t.Fatalf("created %+v", p)
	}
	if city, ok := ids.CityOf(p.ID); !ok || city != "la-plata" {
		t.Fatalf("CityOf(%s) = %q, %v", p.ID, city, ok)
	}
	if _, err := ar.store.Provider(context.Background(), p.ID); err != nil {
		t.Fatalf("the Argentine store does not hold it: %v", err)
	}
	if got := us.router.askedFor(); !slices.Equal(got, []string{"ar/la-plata"}) {
		t.Errorf("router asked %v, want [ar/la-plata]", got)
	}

	rec := us.do(call{method: "GET", path: "/v1/providers/" + p.ID, valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[providerOut](t, rec); got.ID != p.ID || got.Name != p.Name || got.Vertical != "psychology" {
		t.Errorf("get through us: %+v", got)
	}
	rec = us.do(call{method: "PATCH", path: "/v1/providers/" + p.ID, body: `{"horizon_days": 30}`, valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[providerOut](t, rec); got.HorizonDays != 30 {
		t.Errorf("patch through us: %+v", got)
	}
	rec = us.do(call{method: "GET", path: "/v1/providers/" + p.ID + "/availability?service_id=" + p.Services[0].ID + "&from=2026-12-01&days=1", valid: true})
	wantStatus(t, rec, http.StatusOK)
	if av := decode[availabilityOut](t, rec); len(av.Slots) != 22 {
		t.Errorf("availability through us: %d slots", len(av.Slots))
	}
	rec = us.do(call{method: "GET", path: "/v1/providers/" + p.ID + "/placement", valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[placementOut](t, rec); got.Jurisdiction != "ar" {
		t.Errorf("placement through us: %+v", got)
	}

	// A psychology booking through the US node, with an Idempotency-Key, once
	// the provider is verified and the client consented (both through US too).
	us.readyPsych(p, "cli_psy")
	key := map[string]string{IdempotencyHeader: "k-psy-1"}
	body := bookingBody(p.ID, p.Services[0].ID, "cli_psy", "2026-12-01T09:00:00-03:00")
	rec = us.do(call{method: "POST", path: "/v1/bookings", body: body, header: key, valid: true})
	wantStatus(t, rec, http.StatusCreated)
	b := decode[bookingOut](t, rec)
	if !strings.HasPrefix(b.ID, "bkg_la-plata_") || rec.Header().Get("Location") != "/v1/bookings/"+b.ID {
		t.Fatalf("booking %+v, Location %q", b, rec.Header().Get("Location"))
	}
	rec = us.do(call{method: "POST", path: "/v1/bookings", body: body, header: key, valid: true})
	wantStatus(t, rec, http.StatusCreated)
	if got := decode[bookingOut](t, rec); got.ID != b.ID || rec.Header().Get(ReplayedHeader) != "true" {
		t.Errorf("replay through us: %+v replayed=%q", got, rec.Header().Get(ReplayedHeader))
	}
	rec = us.do(call{method: "GET", path: "/v1/bookings/" + b.ID, valid: true})
	wantStatus(t, rec, http.StatusOK)
	rec = us.do(call{method: "POST", path: "/v1/bookings/" + b.ID + "/reschedule", body: `{"start": "2026-12-01T10:00:00-03:00"}`, valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[bookingOut](t, rec); got.Start != "2026-12-01T10:00:00-03:00" {
		t.Errorf("reschedule through us: %+v", got)
	}
	rec = us.do(call{method: "POST", path: "/v1/bookings/" + b.ID + "/cancel", valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[bookingOut](t, rec); got.Status != "cancelled" {
		t.Errorf("cancel through us: %+v", got)
	}
	// Errors of the home node are relayed verbatim.
	rec = us.do(call{method: "POST", path: "/v1/bookings", valid: true,
		body: bookingBody(p.ID, p.Services[0].ID, "cli_psy", "2026-12-01T09:07:00-03:00")})
	wantStatus(t, rec, http.StatusUnprocessableEntity)
	rec = us.do(call{method: "GET", path: "/v1/bookings/bkg_rosario_nope", valid: true})
	wantStatus(t, rec, http.StatusNotFound)

	// The Argentine node got every request relayed, marked by the US node.
	if fw := ar.rec.forwardedBy(); len(fw) < 10 || slices.ContainsFunc(fw, func(s string) bool { return s != "us-1" }) {
		t.Errorf("ar saw %s: %v", ForwardedByHeader, fw)
	}
	// The US node touched neither its store nor its calendars, and logged no id,
	// name or client of the Argentine records.
	if ops := us.rec.calls(); len(ops) != 0 {
		t.Errorf("the US node called its Store/Calendars: %v", ops)
	}
	us.store.Fail, us.cals.Fail = nil, nil
	if ps, _, _ := us.store.ListProviders(context.Background(), storage.ProviderFilter{}); len(ps) != 0 {
		t.Errorf("the US store holds %d providers", len(ps))
	}
	if bs, _, _ := us.store.ClientBookings(context.Background(), "cli_psy", storage.Page{}); len(bs) != 0 {
		t.Errorf("the US store holds %d bookings", len(bs))
	}
	logs := us.logs.String()
	for _, secret := range []string{p.ID, b.ID, "cli_psy", "Barbería", "la-plata_"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the US node logged %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "edge: relayed") || !strings.Contains(logs, "route=\"POST /v1/bookings\"") {
		t.Errorf("the US node did not log the relay (route, status, target):\n%s", logs)
	}
	// The relays are counted by route, jurisdiction and outcome.
	if m := serve(us.srv, "GET", "/metrics", ""); !strings.Contains(m.Body.String(), `barberpro_http_forwarded_total{jurisdiction="ar",outcome="201",route="POST /v1/bookings"} 2`) {
		t.Errorf("forwarded metric missing:\n%s", m.Body)
	}
}

// TestRouting_LocalJurisdictionStaysLocal checks a node answers its own
// jurisdiction's requests itself, whoever sent them.
func TestRouting_LocalJurisdictionStaysLocal(t *testing.T) {
	ar, us, _ := newTestCluster(t, nil)
	p := ar.create(providerBody("cordoba", "barber"))
	ar.rec.reset()
	rec := ar.do(call{method: "GET", path: "/v1/providers/" + p.ID, valid: true})
	wantStatus(t, rec, http.StatusOK)
	// Relayed by a peer and for this jurisdiction: handled here.
	rec = ar.do(call{method: "GET", path: "/v1/providers/" + p.ID, header: map[string]string{ForwardedByHeader: "us-1"}, peer: true, valid: true})
	wantStatus(t, rec, http.StatusOK)
	if len(ar.rec.calls()) == 0 {
		t.Error("the Argentine node did not read its own store")
	}
	if len(us.rec.forwardedBy()) != 0 || len(ar.router.askedFor()) != 0 {
		t.Errorf("relayed a local request: us saw %v, ar asked %v", us.rec.forwardedBy(), ar.router.askedFor())
	}
}

// TestRouting_NoRelayLoop checks a request already relayed and not for this
// node's jurisdiction is 503, never relayed again nor answered from here.
func TestRouting_NoRelayLoop(t *testing.T) {
	ar, us, _ := newTestCluster(t, nil)
	p := ar.create(providerBody("buenos-aires", "psychology"))
	fw := map[string]string{ForwardedByHeader: "cordoba-1"}
	for _, c := range []call{
		{method: "GET", path: "/v1/providers/" + p.ID, header: fw, peer: true, valid: true},
		{method: "POST", path: "/v1/bookings", header: fw, peer: true, valid: true,
			body: bookingBody(p.ID, p.Services[0].ID, "c", "2026-12-01T09:00:00-03:00")},
		{method: "POST", path: "/v1/providers", header: fw, peer: true, body: providerBody("rosario", "barber"), valid: true},
		{method: "GET", path: "/v1/providers?city=la-plata", header: fw, peer: true, valid: true},
	} {
		rec := us.do(c)
		wantStatus(t, rec, http.StatusServiceUnavailable)
		if pb := checkProblem(t, rec); pb.Code != CodeJurisdictionUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s: %+v Retry-After %q", c.method, c.path, pb, rec.Header().Get("Retry-After"))
		}
	}
	if len(ar.rec.forwardedBy()) != 0 || len(us.router.askedFor()) != 0 || len(us.rec.calls()) != 0 {
		t.Errorf("relayed again or answered locally: ar saw %v, us asked %v, us called %v",
			ar.rec.forwardedBy(), us.router.askedFor(), us.rec.calls())
	}
}

// TestRouting_Unavailable checks no live node, a dead node and a node too slow
// to answer are each a 503 jurisdiction_unavailable with Retry-After, and
// nothing is answered from the wrong jurisdiction.
func TestRouting_Unavailable(t *testing.T) {
	peers := &fakePeers{urls: map[string]string{}}
	ar := newTestNode(t, peers, "ba-1", "buenos-aires", "ar", nil, nil)
	us := newTestNode(t, peers, "us-1", "us-east", "us", nil, func(c *Config) { c.ForwardTimeout = 200 * time.Millisecond })
	p := ar.create(providerBody("buenos-aires", "psychology"))
	want503 := func(name string) {
		t.Helper()
		for _, c := range []call{
			{method: "GET", path: "/v1/providers/" + p.ID, valid: true},
			{method: "POST", path: "/v1/bookings", valid: true, body: bookingBody(p.ID, p.Services[0].ID, "c", "2026-12-01T09:00:00-03:00")},
			{method: "POST", path: "/v1/providers", body: providerBody("la-plata", "barber"), valid: true},
		} {
			rec := us.do(c)
			wantStatus(t, rec, http.StatusServiceUnavailable)
			if pb := checkProblem(t, rec); pb.Code != CodeJurisdictionUnavailable || rec.Header().Get("Retry-After") != "1" {
				t.Errorf("%s: %s %s: %+v Retry-After %q", name, c.method, c.path, pb, rec.Header().Get("Retry-After"))
			}
		}
		if ops := us.rec.calls(); len(ops) != 0 {
			t.Errorf("%s: the US node fell back to its own store: %v", name, ops)
		}
	}

	// A node too slow: the relay gives up after ForwardTimeout.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	peers.set("ar", slow.URL)
	start := time.Now()
	want503("slow node")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the relay took %v", d)
	}

	// A dead node: connection refused.
	ar.ts.Close()
	peers.set("ar", ar.ts.URL)
	want503("dead node")

	// No live node at all.
	peers.remove("ar")
	want503("no node")
	// The US node still answers its own.
	us.rec.reset()
	wantStatus(t, us.do(call{method: "POST", path: "/v1/providers", body: providerBody("us-east", "barber"), valid: true}), http.StatusCreated)
	// A jurisdiction of the topology without any node (santiago, cl): 503 too.
	rec := us.do(call{method: "POST", path: "/v1/providers", body: strings.ReplaceAll(providerBody("santiago", "barber"), `"ARS"`, `"CLP"`), valid: true})
	wantStatus(t, rec, http.StatusServiceUnavailable)
}

// TestRouting_UnlocatableStaysLocal checks requests whose jurisdiction cannot be
// told (malformed ids, unknown cities, bad bodies) get the local 4xx.
func TestRouting_UnlocatableStaysLocal(t *testing.T) {
	ar, us, _ := newTestCluster(t, nil)
	for _, c := range []struct {
		call
		status int
	}{
		{call{method: "GET", path: "/v1/providers/prv_nope"}, 404},
		{call{method: "GET", path: "/v1/providers/prv_atlantis_x"}, 404},
		{call{method: "GET", path: "/v1/providers/svc_buenos-aires_x"}, 404},
		{call{method: "GET", path: "/v1/bookings/bkg__x"}, 404},
		{call{method: "GET", path: "/v1/providers?city=atlantis"}, 422},
		{call{method: "POST", path: "/v1/providers", body: providerBody("atlantis", "barber")}, 422},
		{call{method: "POST", path: "/v1/providers", body: `{"city": "la-plata"`}, 400},
		{call{method: "POST", path: "/v1/providers", body: `{"city": 7}`}, 400},
		{call{method: "POST", path: "/v1/bookings", body: bookingBody("prv_nope", "svc_1", "c", "2026-12-01T09:00:00-03:00")}, 404},
		{call{method: "POST", path: "/v1/bookings", body: `[]`}, 400},
	} {
		rec := us.do(c.call)
		if rec.Code != c.status {
			t.Errorf("%s %s: %d, want %d: %s", c.method, c.path, rec.Code, c.status, rec.Body)
		}
	}
	// A body over the limit is not peeked at: 413 here.
	big := `{"city": "la-plata", "name": "` + strings.Repeat("x", int(DefaultMaxBodyBytes)) + `"}`
	wantStatus(t, us.do(call{method: "POST", path: "/v1/providers", body: big}), http.StatusRequestEntityTooLarge)
	if fw := ar.rec.forwardedBy(); len(fw) != 0 {
		t.Errorf("relayed an unlocatable request: %v", fw)
	}
}

// TestFanOut_Providers pages through the providers of two jurisdictions from
// either node, with several page sizes and filters.
func TestFanOut_Providers(t *testing.T) {
	ar, us, _ := newTestCluster(t, nil)
	var want, wantPsy []string
	for _, c := range []struct {
		node           *testNode
		city, vertical string
	}{
		{ar, "buenos-aires", "barber"}, {ar, "la-plata", "psychology"}, {us, "us-east", "barber"},
		{ar, "cordoba", "barber"}, {us, "us-east", "psychology"}, {us, "us-east", "barber"}, {ar, "buenos-aires", "psychology"},
	} {
		p := c.node.create(providerBody(c.city, c.vertical))
		want = append(want, p.ID)
		if c.vertical == "psychology" {
			wantPsy = append(wantPsy, p.ID)
		}
	}
	slices.Sort(want)
	slices.Sort(wantPsy)
	for _, n := range []*testNode{ar, us} {
		for _, limit := range []int{1, 2, 3, 50} {
			for _, q := range []struct {
				filter string
				want   []string
			}{{"", want}, {"vertical=psychology&", wantPsy}} {
				var got []string
				cursor := ""
				for pages := 0; ; pages++ {
					if pages > len(want)+1 {
						t.Fatalf("%s limit %d: endless paging", n.srv.cfg.NodeID, limit)
					}
					path := fmt.Sprintf("/v1/providers?%slimit=%d", q.filter, limit)
					if cursor != "" {
						path += "&cursor=" + cursor
					}
					rec := n.do(call{method: "GET", path: path, valid: true})
					wantStatus(t, rec, http.StatusOK)
					page := decode[listOut[providerOut]](t, rec)
					if len(page.Items) > limit {
						t.Fatalf("%s: %d items for limit %d", path, len(page.Items), limit)
					}
					for _, p := range page.Items {
						got = append(got, p.ID)
					}
					if page.NextCursor == "" {
						break
					}
					cursor = page.NextCursor
				}
				if !slices.Equal(got, q.want) {
					t.Errorf("%s, ?%slimit=%d:\n got %v\nwant %v", n.srv.cfg.NodeID, q.filter, limit, got, q.want)
				}
			}
		}
	}
	// With a city, the list is that city's jurisdiction's, relayed.
	rec := ar.do(call{method: "GET", path: "/v1/providers?city=us-east", valid: true})
	wantStatus(t, rec, http.StatusOK)
	if page := decode[listOut[providerOut]](t, rec); len(page.Items) != 3 {
		t.Errorf("?city=us-east from ar: %d items", len(page.Items))
	}
}

// TestFanOut_ClientBookings pages through a client's bookings held in two
// jurisdictions, newest first, with several page sizes, ties included.
func TestFanOut_ClientBookings(t *testing.T) {
	var nowMs atomic.Int64
	nowMs.Store(testNow.UnixMilli())
	clock := func() time.Time { return time.UnixMilli(nowMs.Load()) }
	ar, us, _ := newTestCluster(t, clock)
	pa := ar.create(providerBody("rosario", "psychology"))
	pu := us.create(providerBody("us-east", "barber"))
	ar.readyPsych(pa, "cli_x", "cli_other")
	type want struct {
		ms int64
		id string
	}
	var all []want
	// Creation instants interleave across the stores; three bookings share one.
	steps := []struct {
		node  *testNode
		dt    int64
		start string
	}{
		{ar, 1000, "2026-12-01T09:00:00-03:00"}, {us, 1000, "2026-12-01T09:00:00-05:00"},
		{ar, 1000, "2026-12-01T10:00:00-03:00"}, {ar, 0, "2026-12-01T11:00:00-03:00"},
		{us, 0, "2026-12-01T10:00:00-05:00"}, {us, 1000, "2026-12-01T11:00:00-05:00"},
		{ar, 1000, "2026-12-02T09:00:00-03:00"}, {us, 1, "2026-12-02T09:00:00-05:00"},
	}
	for _, st := range steps {
		nowMs.Add(st.dt)
		p := pa
		if st.node == us {
			p = pu
		}
		// Booked through the other node half of the time.
		via := st.node
		if len(all)%2 == 1 {
			via = map[*testNode]*testNode{ar: us, us: ar}[st.node]
		}
		b := via.mustBook(p, "cli_x", st.start)
		all = append(all, want{nowMs.Load(), b.ID})
		other := strings.NewReplacer("2026-12-01", "2026-12-03", "2026-12-02", "2026-12-04").Replace(st.start)
		via.mustBook(p, "cli_other", other)
	}
	slices.SortFunc(all, func(a, b want) int {
		if a.ms != b.ms {
			return int(b.ms - a.ms)
		}
		return strings.Compare(b.id, a.id)
	})
	var wantIDs []string
	for _, w := range all {
		wantIDs = append(wantIDs, w.id)
	}
	for _, n := range []*testNode{ar, us} {
		for _, limit := range []int{1, 2, 3, 50} {
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > len(all)+1 {
					t.Fatalf("%s limit %d: endless paging", n.srv.cfg.NodeID, limit)
				}
				path := fmt.Sprintf("/v1/clients/cli_x/bookings?limit=%d", limit)
				if cursor != "" {
					path += "&cursor=" + cursor
				}
				rec := n.do(call{method: "GET", path: path, valid: true})
				wantStatus(t, rec, http.StatusOK)
				page := decode[listOut[bookingOut]](t, rec)
				if len(page.Items) > limit {
					t.Fatalf("%s: %d items", path, len(page.Items))
				}
				for _, b := range page.Items {
					if b.ClientID != "cli_x" {
						t.Fatalf("%s: booking of %s", path, b.ClientID)
					}
					got = append(got, b.ID)
				}
				if rec.Header().Get(CreatedMsHeader) != "" {
					t.Errorf("%s: the internal header reached the client", path)
				}
				if page.NextCursor == "" {
					break
				}
				cursor = page.NextCursor
			}
			if !slices.Equal(got, wantIDs) {
				t.Errorf("%s limit %d:\n got %v\nwant %v", n.srv.cfg.NodeID, limit, got, wantIDs)
			}
		}
	}
	// Answers are in each provider's zone.
	rec := us.do(call{method: "GET", path: "/v1/clients/cli_x/bookings", valid: true})
	for _, b := range decode[listOut[bookingOut]](t, rec).Items {
		if strings.HasPrefix(b.ProviderID, "prv_rosario_") != strings.HasSuffix(b.Start, "-03:00") {
			t.Errorf("booking %s starts %s", b.ID, b.Start)
		}
	}
	// A malformed cursor is 422 before anything is asked.
	rec = us.do(call{method: "GET", path: "/v1/clients/cli_x/bookings?cursor=!!", valid: true})
	wantStatus(t, rec, http.StatusUnprocessableEntity)
}

// TestFanOut_JurisdictionDown checks an unfiltered list is 503 when one
// jurisdiction cannot answer, never a partial list.
func TestFanOut_JurisdictionDown(t *testing.T) {
	ar, us, peers := newTestCluster(t, nil)
	ar.create(providerBody("buenos-aires", "barber"))
	p := us.create(providerBody("us-east", "barber"))
	us.mustBook(p, "c", "2026-12-01T09:00:00-05:00")
	lists := []call{
		{method: "GET", path: "/v1/providers", valid: true},
		{method: "GET", path: "/v1/providers?vertical=barber&limit=1", valid: true},
		{method: "GET", path: "/v1/clients/c/bookings", valid: true},
	}
	for _, c := range lists {
		wantStatus(t, ar.do(c), http.StatusOK)
	}
	check := func(name string) {
		t.Helper()
		for _, c := range lists {
			rec := ar.do(c)
			wantStatus(t, rec, http.StatusServiceUnavailable)
			if pb := checkProblem(t, rec); pb.Code != CodeJurisdictionUnavailable || !strings.Contains(pb.Detail, "us") ||
				rec.Header().Get("Retry-After") != "1" {
				t.Errorf("%s: %s: %+v", name, c.path, pb)
			}
		}
	}
	// The US store has no leader: the peer answers 503.
	us.store.Fail = func(op string) error { return fmt.Errorf("%w: electing", storage.ErrNotLeader) }
	check("no leader")
	// The US node is dead (still listed).
	us.ts.Close()
	check("dead node")
	// The local store failing fails the list too.
	peers.remove("us")
	ar.store.Fail = func(op string) error {
		if op == "ListProviders" || op == "LinearizableRead" {
			return storage.ErrNotLeader
		}
		return nil
	}
	for _, c := range lists {
		wantStatus(t, ar.do(c), http.StatusServiceUnavailable)
	}
}

// TestRouting_Config checks a Router of another jurisdiction than the node's
// city is refused.
func TestRouting_Config(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeID, cfg.City = "n", "buenos-aires"
	h := newHarness(t)
	cfg.Store, cfg.Calendars, cfg.Topology, cfg.Placement = h.store, h.cals, h.srv.cfg.Topology, h.srv.cfg.Placement
	cfg.Auth = h.srv.cfg.Auth
	cfg.Router = &fakeRouter{self: "us", peers: &fakePeers{urls: map[string]string{}}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "Router") {
		t.Errorf("Validate = %v", err)
	}
	cfg.Router = &fakeRouter{self: "ar", peers: &fakePeers{urls: map[string]string{}}}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
}

// TestIDs_CarryTheCity checks the ids the edge assigns route, and a NewID that
// drops the city is a 500, not an unroutable record.
func TestIDs_CarryTheCity(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	b := h.mustBook(p, "c", "2026-12-01T09:00:00-03:00")
	for _, id := range []string{p.ID, b.ID} {
		if city, ok := ids.CityOf(id); !ok || city != "buenos-aires" {
			t.Errorf("CityOf(%q) = %q, %v", id, city, ok)
		}
	}
	if _, ok := ids.CityOf(p.Services[0].ID); ok || strings.Contains(p.Services[0].ID, "buenos-aires") {
		t.Errorf("service id %q carries a city", p.Services[0].ID)
	}
	bad := newHarnessWith(t, func(c *Config) { c.NewID = func(prefix string) string { return "prv_" + ids.New("x") } })
	rec := bad.do(call{method: "POST", path: "/v1/providers", body: validProviderBody, valid: true})
	wantStatus(t, rec, http.StatusInternalServerError)
	// ids.New builds routed ids from routed prefixes.
	if city, ok := ids.CityOf(ids.New(ids.Prefix(ids.Booking, "la-plata"))); !ok || city != "la-plata" {
		t.Errorf("ids.New does not route: %q %v", city, ok)
	}
}

var _ Router = (*fakeRouter)(nil)

// TestRouting_RelaysSeriesHome: POST /v1/bookings/series for a provider of
// another jurisdiction is located by its body (byBodyProvider[createSeriesIn])
// and relayed whole: the home node creates every occurrence, the relaying node
// touches nothing of its own.
func TestRouting_RelaysSeriesHome(t *testing.T) {
	ar, us, _ := newTestCluster(t, nil)
	p := us.create(providerBody("rosario", "barber"))
	rec := us.do(call{method: "POST", path: "/v1/bookings/series", valid: true,
		body: seriesBody(p, "c", "2026-12-01T09:00:00-03:00", "1w", 3)})
	wantStatus(t, rec, http.StatusCreated)
	sr := decode[seriesOut](t, rec)
	if len(sr.Items) != 3 || !strings.HasPrefix(sr.Items[0].ID, "bkg_rosario_") {
		t.Fatalf("series through us: %+v", sr)
	}
	if _, err := ar.store.Booking(context.Background(), sr.Items[2].ID); err != nil {
		t.Fatalf("the Argentine store does not hold the last occurrence: %v", err)
	}
	if ops := us.rec.calls(); len(ops) != 0 {
		t.Errorf("the US node called its Store/Calendars: %v", ops)
	}
}

// TestByBodyProvider_PutsTheBodyBack: the locator reads the body to decode it
// and must leave it for a relay twice over: in Body, and in GetBody, which the
// transport calls to send a POST again on a fresh connection when a pooled one
// turns out closed.
func TestByBodyProvider_PutsTheBodyBack(t *testing.T) {
	ar, _, _ := newTestCluster(t, nil)
	body := bookingBody("prv_us-east_1", "svc_1", "c", "2026-12-01T09:00:00-05:00")
	r := httptest.NewRequest(http.MethodPost, "/v1/bookings", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	sw := &statusWriter{ResponseWriter: httptest.NewRecorder()}
	if city, ok := byBodyProvider[createBookingIn](ar.srv, sw, r); !ok || city != "us-east" {
		t.Fatalf("located %q, %v; want us-east", city, ok)
	}
	if in, ok := sw.body.v.(*createBookingIn); !ok || sw.body.err != nil || in.ProviderID != "prv_us-east_1" {
		t.Fatalf("left for the handler: %+v", sw.body)
	}
	if b, _ := io.ReadAll(r.Body); string(b) != body {
		t.Errorf("Body reads %q, want the body", b)
	}
	if r.GetBody == nil {
		t.Fatal("GetBody not set: a relayed POST cannot be sent again")
	}
	for try := 1; try <= 2; try++ {
		rc, err := r.GetBody()
		if err != nil {
			t.Fatalf("GetBody #%d: %v", try, err)
		}
		if b, _ := io.ReadAll(rc); string(b) != body {
			t.Errorf("GetBody #%d reads %q, want the body", try, b)
		}
	}
}
