package load

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/barberpro/edge/edge/client"
)

// The routes a City run calls, as the node's route table names them.
const (
	routeList         = "GET /v1/providers"
	routeAvailability = "GET /v1/providers/{id}/availability"
	routeMine         = "GET /v1/clients/{client_id}/bookings"
	routeBook         = "POST /v1/bookings"
	routeCancel       = "POST /v1/bookings/{id}/cancel"
	routeReschedule   = "POST /v1/bookings/{id}/reschedule"
	// routeToken counts a person whose token could not be signed.
	routeToken = "(sign token)"
)

// routeOrder is the order of routes in a City run's report.
var routeOrder = []string{routeList, routeAvailability, routeMine, routeBook, routeCancel, routeReschedule, routeToken}

// AllCities is the City of a RouteStats that sums a route over the cities.
const AllCities = "all"

// RouteStats are the figures of one route in one city (or AllCities). The
// percentiles are of every answered request (success, 409 or another error
// status); a request without an answer (timeout, transport) counts in Errors
// only.
type RouteStats struct {
	Route     string         `json:"route"`
	City      string         `json:"city"`
	Requests  int            `json:"requests"`
	OK        int            `json:"ok"`
	Conflicts int            `json:"conflicts"`
	Errors    int            `json:"errors"`
	Codes     map[string]int `json:"codes,omitempty"`
	P50       time.Duration  `json:"p50_ns"`
	P95       time.Duration  `json:"p95_ns"`
	P99       time.Duration  `json:"p99_ns"`
	Max       time.Duration  `json:"max_ns"`
}

type statKey struct{ route, city string }

type routeStat struct {
	lat                  []time.Duration
	ok, conflicts, fails int
	codes                map[string]int
}

// add counts one request of the route: d is its latency, err its failure.
func (s *routeStat) add(d time.Duration, err error) {
	var p *client.Problem
	answered := err == nil || errors.As(err, &p)
	switch {
	case err == nil:
		s.ok++
	case p != nil && p.Status == 409:
		s.conflicts++
	default:
		s.fails++
	}
	if err != nil {
		if s.codes == nil {
			s.codes = map[string]int{}
		}
		s.codes[codeOf(err)]++
	}
	if answered {
		s.lat = append(s.lat, d)
	}
}

func (s *routeStat) merge(o *routeStat) {
	s.lat = append(s.lat, o.lat...)
	s.ok, s.conflicts, s.fails = s.ok+o.ok, s.conflicts+o.conflicts, s.fails+o.fails
	for k, v := range o.codes {
		if s.codes == nil {
			s.codes = map[string]int{}
		}
		s.codes[k] += v
	}
}

func (s *routeStat) figures(route, city string) RouteStats {
	slices.Sort(s.lat)
	r := RouteStats{Route: route, City: city, Requests: s.ok + s.conflicts + s.fails, OK: s.ok, Conflicts: s.conflicts,
		Errors: s.fails, Codes: s.codes,
		P50: Percentile(s.lat, 0.50), P95: Percentile(s.lat, 0.95), P99: Percentile(s.lat, 0.99)}
	if len(s.lat) > 0 {
		r.Max = s.lat[len(s.lat)-1]
	}
	return r
}

// record counts one request of route in city.
func (run *cityRun) record(route, city string, d time.Duration, err error) {
	var p *client.Problem
	switch {
	case err == nil:
		run.prog.done.Add(1)
	case errors.As(err, &p) && p.Status == 409:
		run.prog.conflicts.Add(1)
	default:
		run.prog.errors.Add(1)
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	k := statKey{route, city}
	s := run.stats[k]
	if s == nil {
		s = &routeStat{}
		run.stats[k] = s
	}
	s.add(d, err)
}

// result sums the run's figures: per route and city, per route over the
// cities, and overall.
func (run *cityRun) result(elapsed time.Duration) Result {
	run.mu.Lock()
	defer run.mu.Unlock()
	r := Result{Clients: run.cfg.Clients, Mode: City, Elapsed: elapsed, Think: run.cfg.Think, Seed: run.cfg.Seed,
		Unfinished: int(run.cut.Load())}
	all := &routeStat{}
	for _, route := range routeOrder {
		sum := &routeStat{}
		for _, c := range run.cfg.Shares {
			if s := run.stats[statKey{route, c.City}]; s != nil {
				r.Routes = append(r.Routes, s.figures(route, c.City))
				sum.merge(s)
			}
		}
		if n := sum.ok + sum.conflicts + sum.fails; n > 0 {
			r.Routes = append(r.Routes, sum.figures(route, AllCities))
			all.merge(sum)
		}
	}
	tot := all.figures("", AllCities)
	r.OK, r.Conflicts, r.Errors, r.Codes = tot.OK, tot.Conflicts, tot.Errors, tot.Codes
	r.P50, r.P95, r.P99, r.Max = tot.P50, tot.P95, tot.P99, tot.Max
	r.P90 = Percentile(all.lat, 0.90)
	if elapsed > 0 {
		r.Throughput = float64(len(all.lat)) / elapsed.Seconds()
	}
	return r
}

// Table prints a City run's figures: a header, then a row per route and city.
func (r Result) Table(w io.Writer) {
	fmt.Fprintf(w, "city   people=%d think=%v seed=%d  %.0f s: %.0f requests/s answered, ok=%d 409s=%d errors=%d unfinished=%d\n",
		r.Clients, r.Think, r.Seed, r.Elapsed.Seconds(), r.Throughput, r.OK, r.Conflicts, r.Errors, r.Unfinished)
	cities := make([]string, 0, len(r.CityTargets))
	for c := range r.CityTargets {
		cities = append(cities, c)
	}
	slices.Sort(cities)
	for _, c := range cities {
		fmt.Fprintf(w, "  %s → %s\n", c, strings.Join(r.CityTargets[c], ", "))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "route\tcity\trequests\tok\t409\terrors\tp50\tp95\tp99\tmax\t")
	for _, s := range r.Routes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", s.Route, s.City, s.Requests, s.OK, s.Conflicts, s.Errors,
			ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max))
	}
	tw.Flush()
	if len(r.Codes) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Codes)) {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, r.Codes[k]))
		}
		fmt.Fprintf(w, "not ok: %s\n", strings.Join(parts, ", "))
	}
}

// ms formats d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
