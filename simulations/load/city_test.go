package load

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/barberpro/edge/edge"
	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/edge/edgetest"
	"github.com/barberpro/edge/topology"
)

// TestMix_PickHonoursTheShares: 200,000 draws of DefaultMix land within half a
// percentage point of each action's share, and the same seed draws the same
// actions.
func TestMix_PickHonoursTheShares(t *testing.T) {
	const n = 200_000
	var got [numActions]int
	r := personRand(7, 0)
	for range n {
		got[DefaultMix.Pick(r)]++
	}
	w := DefaultMix.weights()
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	for a := range numActions {
		share, want := float64(got[a])/n, w[a]/sum
		if math.Abs(share-want) > 0.005 {
			t.Errorf("%s: %.4f of the draws, want %.4f", a, share, want)
		}
	}
	a, b := personRand(7, 3), personRand(7, 3)
	other := personRand(8, 3)
	same := true
	for range 1000 {
		x, y := DefaultMix.Pick(a), DefaultMix.Pick(b)
		if x != y {
			t.Fatal("the same seed drew different actions")
		}
		same = same && x == DefaultMix.Pick(other)
	}
	if same {
		t.Fatal("another seed drew the same 1000 actions")
	}
	if got := (Mix{Cancel: 1}).Pick(rand.New(rand.NewPCG(1, 1))); got != Cancel {
		t.Fatalf("a mix of cancels only drew %s", got)
	}
}

// TestPersonCities_TheSeedsShares: people are apportioned exactly by the
// cities' shares, whatever their number.
func TestPersonCities_TheSeedsShares(t *testing.T) {
	count := func(cities []string) map[string]int {
		m := map[string]int{}
		for _, c := range cities {
			m[c]++
		}
		return m
	}
	got := count(PersonCities(10000, CityShares))
	want := map[string]int{"buenos-aires": 6000, "cordoba": 2000, "rosario": 1500, "la-plata": 500}
	for c, n := range want {
		if got[c] != n {
			t.Errorf("%s: %d people, want %d", c, got[c], n)
		}
	}
	for _, n := range []int{1, 7, 19, 101} {
		cs := Apportion(n, CityShares)
		total := 0
		for i, c := range cs {
			total += c
			if exact := float64(n) * CityShares[i].Share; math.Abs(float64(c)-exact) >= 1 {
				t.Errorf("%d people: %s gets %d, exact share %.2f", n, CityShares[i].City, c, exact)
			}
		}
		if total != n {
			t.Errorf("%d people apportioned as %v", n, cs)
		}
	}
}

// TestCityRun_PercentilesPerRouteAndCity: the figures of each route in each
// city are its own (nearest-rank p50/p95/p99 of its answered requests), 409s
// are counted apart from errors, and the "all" row of a route sums its cities.
func TestCityRun_PercentilesPerRouteAndCity(t *testing.T) {
	run := &cityRun{cfg: Config{Clients: 2, Shares: CityShares, Seed: 1, Think: time.Second}, stats: map[statKey]*routeStat{}}
	for i := 1; i <= 100; i++ {
		run.record(routeAvailability, "buenos-aires", time.Duration(i)*time.Millisecond, nil)
		run.record(routeAvailability, "cordoba", time.Duration(1000+i)*time.Millisecond, nil)
	}
	taken := &client.Problem{Status: 409, Code: "slot_unavailable"}
	limited := &client.Problem{Status: 429, Code: "rate_limited"}
	run.record(routeBook, "rosario", 3*time.Millisecond, nil)
	run.record(routeBook, "rosario", 4*time.Millisecond, taken)
	run.record(routeBook, "rosario", 5*time.Millisecond, limited)
	run.record(routeBook, "rosario", 0, errors.New("connection refused"))
	run.record(routeBook, "rosario", 0, context.DeadlineExceeded)
	r := run.result(time.Second)
	row := func(route, city string) RouteStats {
		t.Helper()
		i := slices.IndexFunc(r.Routes, func(s RouteStats) bool { return s.Route == route && s.City == city })
		if i < 0 {
			t.Fatalf("no row for %s in %s: %+v", route, city, r.Routes)
		}
		return r.Routes[i]
	}
	ba := row(routeAvailability, "buenos-aires")
	if ba.Requests != 100 || ba.OK != 100 || ba.P50 != 50*time.Millisecond || ba.P95 != 95*time.Millisecond || ba.P99 != 99*time.Millisecond {
		t.Errorf("availability in Buenos Aires: %+v", ba)
	}
	if cba := row(routeAvailability, "cordoba"); cba.P50 != 1050*time.Millisecond || cba.P99 != 1099*time.Millisecond {
		t.Errorf("availability in Córdoba: %+v", cba)
	}
	if all := row(routeAvailability, AllCities); all.Requests != 200 || all.P50 != 100*time.Millisecond || all.P99 != 1098*time.Millisecond {
		t.Errorf("availability over the cities: %+v", all)
	}
	book := row(routeBook, "rosario")
	if book.Requests != 5 || book.OK != 1 || book.Conflicts != 1 || book.Errors != 3 ||
		book.Codes["409 slot_unavailable"] != 1 || book.Codes["429 rate_limited"] != 1 || book.Codes["transport"] != 1 || book.Codes["timeout"] != 1 {
		t.Errorf("bookings in Rosario: %+v", book)
	}
	if book.Max != 5*time.Millisecond { // three answered; the transport failure and timeout have no latency
		t.Errorf("bookings in Rosario: max %v, want 5ms", book.Max)
	}
	if r.OK != 201 || r.Conflicts != 1 || r.Errors != 3 {
		t.Errorf("totals: ok %d, 409s %d, errors %d", r.OK, r.Conflicts, r.Errors)
	}
	if !strings.Contains(r.String(), "429 rate_limited: the nodes enforce rate limits") {
		t.Errorf("a result with 429s does not say what they mean:\n%s", r)
	}
}

// cityNodes starts one edge node per city of CityShares over the edgetest
// doubles (one store, as one jurisdiction's), each naming itself and the others
// as cluster members. seen[city] lists the ?city= of the provider listings
// the node of city served.
type cityNodes struct {
	urls   []string
	tokens *auth.TokenCache
	mu     sync.Mutex
	seen   map[string][]string
}

func startCityNodes(t *testing.T) *cityNodes {
	t.Helper()
	keys := edgetest.NewTokens(t)
	signer, err := auth.LoadSigner(keys.Dir)
	if err != nil {
		t.Fatal(err)
	}
	st := edgetest.NewStore()
	cals := edgetest.NewCalendars(st, time.Now)
	var members []edge.Member
	for i, c := range CityShares {
		members = append(members, edge.Member{ID: "n" + string(rune('1'+i)), City: c.City, Jurisdiction: "ar", Status: "alive"})
	}
	n := &cityNodes{tokens: auth.NewTokenCache(signer, time.Hour), seen: map[string][]string{}}
	for _, m := range members {
		cfg := edge.DefaultConfig()
		cfg.NodeID, cfg.City, cfg.Topology, cfg.Store, cfg.Calendars = m.ID, m.City, topology.Default(), st, cals
		cfg.Placement = func(context.Context, string) (edge.Placement, error) { return edge.Placement{}, nil }
		cfg.Members = func() []edge.Member { return members }
		cfg.Auth = keys.Verifier
		cfg.Limits = edge.Limits{PerSubject: rate.Inf, PerIP: rate.Inf}
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		srv, err := edge.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		h := srv.Handler()
		city := m.City
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && r.URL.Path == "/v1/providers" {
				n.mu.Lock()
				n.seen[city] = append(n.seen[city], r.URL.Query().Get("city"))
				n.mu.Unlock()
			}
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(hs.Close)
		n.urls = append(n.urls, hs.URL)
	}
	return n
}

// TestRun_CityAgainstFourNodes: a City run against a node of each city sends
// each person to its city's node, calls every route of the mix, counts no
// error, and reports its figures and the nodes' memory in the JSON shape
// scripts read.
func TestRun_CityAgainstFourNodes(t *testing.T) {
	nodes := startCityNodes(t)
	const people = 40
	r, err := Run(context.Background(), Config{
		Targets: nodes.urls, Clients: people, Duration: 5 * time.Minute, Actions: 20, Mode: City,
		Think: time.Millisecond, Seed: 3, Tokens: nodes.tokens,
		// Writes enough that every person soon has bookings to cancel and
		// reschedule, also on a slow machine.
		Mix: Mix{List: 2, Availability: 2, MyBookings: 1, Book: 4, Cancel: 1, Reschedule: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 {
		t.Fatalf("%d errors: %v\n%s", r.Errors, r.Codes, r)
	}
	for _, c := range CityShares {
		if got := r.CityTargets[c.City]; len(got) != 1 || got[0] != nodes.urls[slices.IndexFunc(CityShares, func(s CityShare) bool { return s == c })] {
			t.Errorf("%s's people were sent to %v", c.City, got)
		}
		nodes.mu.Lock()
		seen := nodes.seen[c.City]
		nodes.mu.Unlock()
		if len(seen) == 0 {
			t.Errorf("the node of %s served no provider listing", c.City)
		}
		for _, q := range seen {
			if q != c.City {
				t.Fatalf("the node of %s served a listing of %s: a person went to another city's node", c.City, q)
			}
		}
	}
	// Every route of the mix was called, and each city's share of the
	// availability reads is near its share of the people.
	all := map[string]RouteStats{}
	byCity := map[string]int{}
	for _, s := range r.Routes {
		if s.City == AllCities {
			all[s.Route] = s
		} else if s.Route == routeAvailability {
			byCity[s.City] = s.Requests
		}
	}
	for _, route := range routeOrder[:6] {
		if all[route].Requests == 0 {
			t.Errorf("no request of %s:\n%s", route, r)
		}
	}
	for _, c := range CityShares {
		if share := float64(byCity[c.City]) / float64(all[routeAvailability].Requests); math.Abs(share-c.Share) > 0.06 {
			t.Errorf("%s: %.2f of the availability reads, its people are %.2f", c.City, share, c.Share)
		}
	}

	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"clients", "mode", "ok", "conflicts", "errors", "ops_per_second", "p50_ns", "p95_ns", "p99_ns",
		"think_ns", "seed", "city_targets", "routes", "nodes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("the JSON has no %q: %s", k, raw)
		}
	}
	if _, ok := got["bookings_per_second"]; ok {
		t.Errorf("a city run has bookings_per_second: %s", raw)
	}
	if got["mode"] != "city" || got["clients"] != float64(people) {
		t.Errorf("mode %v clients %v", got["mode"], got["clients"])
	}
	route := got["routes"].([]any)[0].(map[string]any)
	for _, k := range []string{"route", "city", "requests", "ok", "conflicts", "errors", "p50_ns", "p95_ns", "p99_ns"} {
		if _, ok := route[k]; !ok {
			t.Errorf("a route's JSON has no %q: %v", k, route)
		}
	}
	if len(r.Nodes) != len(nodes.urls) {
		t.Fatalf("memory of %d nodes, want %d", len(r.Nodes), len(nodes.urls))
	}
	for _, m := range r.Nodes {
		if m.Error != "" || m.RSSBytes <= 0 || m.HeapInuseBytes <= 0 {
			t.Errorf("node memory %+v", m)
		}
	}
	if !strings.Contains(r.String(), routeAvailability) {
		t.Errorf("the table has no availability row:\n%s", r)
	}
}

// TestRun_ClosedModesJSON: spread keeps bookings_per_second; availability
// reports reads as ops_per_second; both with the fields scripts read.
func TestRun_ClosedModesJSON(t *testing.T) {
	nodes := startCityNodes(t)
	for _, mode := range []Mode{Spread, Availability} {
		r, err := Run(context.Background(), Config{Targets: nodes.urls[:1], Clients: 4, Requests: 40, Duration: time.Minute,
			Mode: mode, Tokens: nodes.tokens})
		if err != nil {
			t.Fatal(err)
		}
		if r.OK != 40 || r.Errors != 0 || r.Throughput <= 0 {
			t.Fatalf("%s: %+v", mode, r)
		}
		raw, _ := json.Marshal(r)
		var got map[string]any
		json.Unmarshal(raw, &got)
		for _, k := range []string{"clients", "ok", "errors", "p50_ns", "p99_ns", "ops_per_second", "nodes"} {
			if _, ok := got[k]; !ok {
				t.Errorf("%s: the JSON has no %q: %s", mode, k, raw)
			}
		}
		_, hasBookings := got["bookings_per_second"]
		if hasBookings != (mode == Spread) || (mode == Spread && got["bookings_per_second"] != got["ops_per_second"]) {
			t.Errorf("%s: bookings_per_second %v, ops_per_second %v", mode, got["bookings_per_second"], got["ops_per_second"])
		}
	}
}
