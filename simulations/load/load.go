// Package load drives load at one or more nodes over HTTP and measures it. It
// backs `barberpro bench` and the project's HTTP benchmarks. Four modes:
//
//   - City (the default of `barberpro bench`, city.go): a city's real traffic.
//     Clients are people, each an open-ended loop of an action and a think time,
//     spread over the cities by CityShares and over actions by DefaultMix, each
//     sent to a node of its own city. It reports per-route, per-city latency
//     percentiles and counts, 409s apart from errors.
//   - Spread and Hot: closed-loop bookings as fast as they are answered. Every
//     booking is of a distinct, valid slot, so a run measures the cost of
//     commits, not of conflicts: the load's providers work around the clock in
//     15-minute slots, and a shared counter hands each client the next free
//     (provider, slot) pair. Spread gives each client its own provider, Hot one
//     provider to all.
//   - Availability: closed-loop availability reads, each client of its own
//     provider.
//
// Every mode ends by reading each target's /metrics for its resident memory
// (NodeMemory).
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
)

// Mode says how bookings spread over providers.
type Mode string

const (
	// Spread gives each client its own provider (Providers defaults to Clients).
	Spread Mode = "spread"
	// Hot sends every client to one provider at a time, a hot calendar.
	Hot Mode = "hot"
	// Availability has each client read its own provider's availability as fast
	// as it is answered.
	Availability Mode = "availability"
	// City simulates people of the cities (see the package doc and city.go).
	City Mode = "city"
)

// Modes lists the modes, the default of `barberpro bench` first.
var Modes = []Mode{City, Spread, Hot, Availability}

// Config is one load run.
type Config struct {
	// Targets are node base URLs; clients are spread over them round-robin.
	Targets []string
	// Clients is the number of concurrent clients; in City mode, of simulated
	// people. Default 16.
	Clients int
	// Duration bounds the run. Default 10 s.
	Duration time.Duration
	// Requests, when positive, ends a Spread, Hot or Availability run after
	// that many requests.
	Requests int
	// Mode is Spread (default), Hot, Availability or City.
	Mode Mode
	// City homes the load's providers (not in City mode, whose providers are in
	// every city of Shares). Default buenos-aires.
	City string
	// Think is the mean of a person's pause between two actions in City mode,
	// drawn from an exponential distribution (capped at 10× the mean). 0 means
	// DefaultThink; a negative value, no pause at all.
	Think time.Duration
	// Seed makes City mode's draws (each person's actions, providers, days,
	// slots and pauses) repeatable: the same seed draws the same sequence for
	// each person (what a draw picks from, e.g. the free slots, comes from the
	// nodes). Default 1.
	Seed uint64
	// Mix is City mode's action mix. Default DefaultMix.
	Mix Mix
	// Shares are City mode's cities and their shares of the people. Default
	// CityShares.
	Shares []CityShare
	// Actions, when positive, ends each person of a City run after that many
	// actions (tests: a run of a known size however slow the machine).
	Actions int
	// Providers is how many providers City mode creates, over the cities by
	// Shares (at least one each). Default Clients/50, at least 2 per city.
	Providers int
	// Progress, when set, receives a progress line every ProgressEvery while a
	// City or Availability run goes: elapsed time, requests/s, errors, 409s,
	// requests in flight.
	Progress io.Writer
	// ProgressEvery is the interval of progress lines. Default 1 s.
	ProgressEvery time.Duration
	// Clock is the time source for slot choice. Default time.Now.
	Clock func() time.Time
	// Tokens issues the bearer tokens: an operator's creates the providers,
	// client i books as "load-client-i". Required.
	Tokens Tokens
}

// Tokens issues bearer tokens; *auth.TokenCache and *procs.Secrets satisfy it.
type Tokens interface {
	Token(role auth.Role, sub string) (string, error)
}

// ErrBadConfig is wrapped by configuration errors.
var ErrBadConfig = errors.New("load: bad config")

// slotsPerProvider is how many 15-minute slots of a provider a run may use: 300 days
// of 96 slots, well inside the 365-day horizon the load providers are created with.
const slotsPerProvider = 300 * 96

// Result is what a run measured. OK counts the requests answered with success,
// Conflicts those answered 409, Errors every other answer and every request
// without one (Codes says which: "409 slot_unavailable", "429 rate_limited",
// "transport", ...). The latencies are of the successful requests in Spread,
// Hot and Availability mode, of every answered request in City mode.
type Result struct {
	Clients int  `json:"clients"`
	Mode    Mode `json:"mode"`
	OK      int  `json:"ok"`
	// Conflicts counts 409 answers (a slot taken by someone else), which are
	// not Errors.
	Conflicts int            `json:"conflicts"`
	Errors    int            `json:"errors"`
	Codes     map[string]int `json:"codes,omitempty"`
	// Unfinished counts the requests whose wait the run's end cut off (at
	// most one per closed-loop client or person; a busy closed loop ends
	// with one in flight per client), counted in neither OK nor Errors: a
	// node that takes requests and never answers shows here with few or no
	// OKs, not as fewer OKs alone.
	Unfinished int           `json:"unfinished"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	// Throughput is OK (City: answered) requests per second, in every mode.
	Throughput float64 `json:"ops_per_second"`
	// BookingsPerSecond is Throughput of a Spread or Hot run (nil otherwise),
	// the name scripts read.
	BookingsPerSecond *float64      `json:"bookings_per_second,omitempty"`
	P50               time.Duration `json:"p50_ns"`
	P90               time.Duration `json:"p90_ns"`
	P95               time.Duration `json:"p95_ns"`
	P99               time.Duration `json:"p99_ns"`
	Max               time.Duration `json:"max_ns"`
	// City mode only: the mean think time, the seed, the cities' targets, and
	// the figures of every route in every city.
	Think       time.Duration       `json:"think_ns,omitempty"`
	Seed        uint64              `json:"seed,omitempty"`
	CityTargets map[string][]string `json:"city_targets,omitempty"`
	Routes      []RouteStats        `json:"routes,omitempty"`
	// Nodes is each target's memory at the end of the run.
	Nodes []NodeMemory `json:"nodes,omitempty"`
}

// String is a one-line summary (City: a table, see Table), with a line per
// node's memory.
func (r Result) String() string {
	var b strings.Builder
	if r.Mode == City {
		r.Table(&b)
	} else {
		unit := "bookings/s"
		if r.Mode == Availability {
			unit = "reads/s"
		}
		fmt.Fprintf(&b, "%-6s clients=%-4d ok=%-7d errors=%-5d %8.0f %s  p50=%v p90=%v p99=%v max=%v",
			r.Mode, r.Clients, r.OK, r.Errors, r.Throughput, unit, r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond),
			r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
		if r.Unfinished > 0 {
			fmt.Fprintf(&b, "  unfinished=%d", r.Unfinished)
		}
		if len(r.Codes) > 0 {
			fmt.Fprintf(&b, "  codes=%v", r.Codes)
		}
		b.WriteByte('\n')
	}
	writeNodes(&b, r.Nodes)
	if hint := r.rateLimitHint(); hint != "" {
		b.WriteString(hint + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// rateLimitHint says what 429 answers in a result mean.
func (r Result) rateLimitHint() string {
	n := 0
	for code, c := range r.Codes {
		if strings.HasPrefix(code, "429") || code == "rate_limited" {
			n += c
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("note: %d answers were 429 rate_limited: the nodes enforce rate limits, so this run measured them; "+
		"run the nodes with --rate-limit inf --ip-rate-limit inf (`barberpro demo --no-rate-limits`)", n)
}

func (c *Config) defaults() error {
	if len(c.Targets) == 0 {
		return fmt.Errorf("%w: no targets", ErrBadConfig)
	}
	if c.Tokens == nil {
		return fmt.Errorf("%w: no Tokens", ErrBadConfig)
	}
	if c.Clients < 0 || c.Duration < 0 || c.Requests < 0 || c.Providers < 0 || c.Actions < 0 {
		return fmt.Errorf("%w: negative clients, duration, requests, actions or providers", ErrBadConfig)
	}
	if c.Clients == 0 {
		c.Clients = 16
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Mode == "" {
		c.Mode = Spread
	}
	if !slices.Contains(Modes, c.Mode) {
		return fmt.Errorf("%w: mode %q (want city, spread, hot or availability)", ErrBadConfig, c.Mode)
	}
	if c.Mode != City {
		for _, u := range c.Targets {
			if !strings.HasPrefix(u, "http://") {
				// Refused here, not by every request: they would fail at once, in a loop.
				return fmt.Errorf("%w: target %q: the closed loops speak plain http:// (oneConn)", ErrBadConfig, u)
			}
		}
	}
	if c.Think == 0 {
		c.Think = DefaultThink
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix
	}
	if err := c.Mix.validate(); err != nil {
		return err
	}
	if c.Shares == nil {
		c.Shares = CityShares
	}
	if err := validShares(c.Shares); err != nil {
		return err
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = time.Second
	}
	if c.City == "" {
		c.City = "buenos-aires"
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return nil
}

// LoadProvider is the provider a run books: open around the clock, a 15-minute
// service without buffer, no minimum notice, a year of horizon.
func LoadProvider(city string, i int) client.Provider {
	all := []client.HoursRange{{Start: "00:00", End: "24:00"}}
	zero, year := 0, 365
	return client.Provider{
		Name:     fmt.Sprintf("Load provider %d", i),
		Vertical: "barber",
		City:     city,
		Services: []client.Service{{Name: "Corte", DurationMinutes: 15, Price: client.Money{Amount: "1000.00", Currency: "ARS"}}},
		WeeklyHours: map[string][]client.HoursRange{
			"monday": all, "tuesday": all, "wednesday": all, "thursday": all,
			"friday": all, "saturday": all, "sunday": all,
		},
		MinNoticeMinutes: &zero,
		HorizonDays:      &year,
	}
}

type target struct {
	provider client.Provider
	base     time.Time // local midnight two days from now, in the provider's zone
}

// newTarget is a created provider and the day its slots start from.
func newTarget(p *client.Provider, now time.Time) (target, error) {
	loc, err := time.LoadLocation(p.Timezone)
	if err != nil {
		return target{}, fmt.Errorf("load: provider zone: %w", err)
	}
	now = now.In(loc)
	return target{provider: *p, base: time.Date(now.Year(), now.Month(), now.Day()+2, 0, 0, 0, 0, loc)}, nil
}

// newHTTPClient is the HTTP client of a run: up to idle kept-alive connections
// per node.
func newHTTPClient(idle int) (*http.Client, func()) {
	tr := &http.Transport{MaxIdleConns: idle * 2, MaxIdleConnsPerHost: idle, IdleConnTimeout: time.Minute}
	return &http.Client{Transport: tr, Timeout: requestTimeout}, tr.CloseIdleConnections
}

// Run creates the load's providers, then drives the load until the duration or
// request count is reached or ctx ends, and reads the targets' memory.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	var (
		r   Result
		err error
	)
	if cfg.Mode == City {
		r, err = runCity(ctx, cfg)
	} else {
		r, err = runClosed(ctx, cfg)
	}
	if err != nil {
		return r, err
	}
	hc, done := newHTTPClient(len(cfg.Targets))
	defer done()
	opToken, err := cfg.Tokens.Token(auth.RoleOperator, "load-operator")
	if err != nil {
		return r, fmt.Errorf("load: %w", err)
	}
	r.Nodes = ReadNodesMemory(ctx, hc, opToken, cfg.Targets)
	return r, nil
}

// runClosed is a Spread, Hot or Availability run: Clients closed loops, each
// sending its next request as soon as the last one is answered.
func runClosed(ctx context.Context, cfg Config) (Result, error) {
	hc, done := newHTTPClient(cfg.Clients)
	defer done()
	opToken, err := cfg.Tokens.Token(auth.RoleOperator, "load-operator")
	if err != nil {
		return Result{}, fmt.Errorf("load: %w", err)
	}
	admin := client.New(cfg.Targets[0], hc).WithToken(opToken)

	nProviders := cfg.Clients
	if cfg.Mode == Hot {
		nProviders = 1
		if cfg.Requests > slotsPerProvider {
			nProviders = (cfg.Requests + slotsPerProvider - 1) / slotsPerProvider
		}
	}
	targets := make([]target, nProviders)
	for i := range targets {
		p, err := admin.CreateProvider(ctx, LoadProvider(cfg.City, i), "")
		if err != nil {
			return Result{}, fmt.Errorf("load: create provider: %w", err)
		}
		if targets[i], err = newTarget(p, cfg.Clock()); err != nil {
			return Result{}, err
		}
	}

	var (
		next     atomic.Int64
		mu       sync.Mutex
		lat      []time.Duration
		codes    = map[string]int{}
		failures int
		cut      atomic.Int64 // requests the run's end cut off
		wg       sync.WaitGroup
		prog     progress
	)
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	stopProgress := prog.start(cfg, start)
	defer stopProgress()
	fail := func(code string) {
		mu.Lock()
		codes[code]++
		failures++
		mu.Unlock()
	}
	for w := 0; w < cfg.Clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cid := fmt.Sprintf("load-client-%d", w)
			tok, err := cfg.Tokens.Token(auth.RoleClient, cid)
			if err != nil {
				fail("token")
				return
			}
			// Each closed loop has its own connection (oneConn), written
			// and read on this goroutine.
			conn := &http.Client{Transport: &oneConn{}}
			defer conn.CloseIdleConnections()
			c := client.New(cfg.Targets[w%len(cfg.Targets)], conn).WithToken(tok)
			var mine []time.Duration
			defer func() { mu.Lock(); lat = append(lat, mine...); mu.Unlock() }()
			for runCtx.Err() == nil {
				n := int(next.Add(1) - 1)
				if cfg.Requests > 0 && n >= cfg.Requests {
					return
				}
				t0 := time.Now()
				prog.inFlight.Add(1)
				var err error
				if cfg.Mode == Availability {
					t := targets[w%len(targets)]
					// Checked to be framed as JSON, not decoded: the answer is
					// not used, and decoding it cost this process more CPU
					// than the node spent answering (the two share the cores).
					_, err = c.AvailabilityJSON(runCtx, t.provider.ID, t.provider.Services[0].ID, t.base.Format(time.DateOnly), 1)
				} else {
					// Likewise the booking answer: framed, not decoded.
					_, err = c.BookJSON(runCtx, closedBooking(cfg, targets, cid, n), newKey())
				}
				d := time.Since(t0)
				prog.inFlight.Add(-1)
				if err != nil {
					if runCtx.Err() != nil {
						cut.Add(1)
						return
					}
					prog.errors.Add(1)
					fail(codeOf(err))
					continue
				}
				prog.done.Add(1)
				mine = append(mine, d)
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	r := summarize(cfg, lat, failures, codes, elapsed)
	r.Unfinished = int(cut.Load())
	return r, nil
}

// closedBooking is the n-th booking of a Spread or Hot run: the next free
// (provider, slot) pair.
func closedBooking(cfg Config, targets []target, cid string, n int) client.BookingRequest {
	var t target
	var k int
	if cfg.Mode == Hot {
		t, k = targets[n/slotsPerProvider%len(targets)], n%slotsPerProvider
	} else {
		t, k = targets[n%len(targets)], n/len(targets)%slotsPerProvider
	}
	return client.BookingRequest{
		ProviderID: t.provider.ID,
		ServiceID:  t.provider.Services[0].ID,
		ClientID:   cid,
		Start:      t.base.Add(time.Duration(k) * 15 * time.Minute).Format(time.RFC3339),
	}
}

// codeOf names the failure of a request: "STATUS code" for a problem answer
// ("409 slot_unavailable"), "timeout" for none within the HTTP client's
// timeout, else "transport".
func codeOf(err error) string {
	var p *client.Problem
	if errors.As(err, &p) {
		return fmt.Sprintf("%d %s", p.Status, p.Code)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	return "transport"
}

func summarize(cfg Config, lat []time.Duration, failures int, codes map[string]int, elapsed time.Duration) Result {
	slices.Sort(lat)
	r := Result{Clients: cfg.Clients, Mode: cfg.Mode, OK: len(lat), Errors: failures, Codes: codes, Elapsed: elapsed}
	if elapsed > 0 {
		r.Throughput = float64(len(lat)) / elapsed.Seconds()
	}
	if cfg.Mode == Spread || cfg.Mode == Hot {
		tp := r.Throughput
		r.BookingsPerSecond = &tp
	}
	r.P50, r.P90, r.P95, r.P99 = Percentile(lat, 0.50), Percentile(lat, 0.90), Percentile(lat, 0.95), Percentile(lat, 0.99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	return r
}

// Percentile returns the q-quantile (0..1) of sorted durations by nearest rank, or 0
// for none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// newKey is a new idempotency key: a random (version 4) UUID, as client apps
// send. Keys in order (a counter) would flatter the store, which keeps a
// record per key: such keys land on few pages, random ones on a page each.
func newKey() string { return uuid.NewString() }
