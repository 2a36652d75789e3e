// Package load drives booking load at one or more nodes over HTTP and measures it:
// throughput and latency percentiles of successful bookings, and errors by problem
// code. It backs `barberpro bench` and the project's HTTP benchmarks.
//
// Every booking is of a distinct, valid slot, so a run measures the cost of commits,
// not of conflicts: the load's providers work around the clock in 15-minute slots,
// and a shared counter hands each client the next free (provider, slot) pair.
package load

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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
)

// Config is one load run.
type Config struct {
	// Targets are node base URLs; clients are spread over them round-robin.
	Targets []string
	// Clients is the number of concurrent clients. Default 16.
	Clients int
	// Duration bounds the run. Default 10 s.
	Duration time.Duration
	// Requests, when positive, ends the run after that many bookings.
	Requests int
	// Mode is Spread (default) or Hot.
	Mode Mode
	// City homes the load's providers. Default buenos-aires.
	City string
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

// Result is what a run measured.
type Result struct {
	Clients    int            `json:"clients"`
	Mode       Mode           `json:"mode"`
	OK         int            `json:"ok"`
	Errors     int            `json:"errors"`
	Codes      map[string]int `json:"codes,omitempty"`
	Elapsed    time.Duration  `json:"elapsed_ns"`
	Throughput float64        `json:"bookings_per_second"`
	P50        time.Duration  `json:"p50_ns"`
	P90        time.Duration  `json:"p90_ns"`
	P99        time.Duration  `json:"p99_ns"`
	Max        time.Duration  `json:"max_ns"`
}

// String is a one-line summary.
func (r Result) String() string {
	return fmt.Sprintf("%-6s clients=%-4d ok=%-7d errors=%-5d %8.0f bookings/s  p50=%v p90=%v p99=%v max=%v",
		r.Mode, r.Clients, r.OK, r.Errors, r.Throughput, r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond),
		r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
}

func (c *Config) defaults() error {
	if len(c.Targets) == 0 {
		return fmt.Errorf("%w: no targets", ErrBadConfig)
	}
	if c.Tokens == nil {
		return fmt.Errorf("%w: no Tokens", ErrBadConfig)
	}
	if c.Clients <= 0 {
		c.Clients = 16
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Mode == "" {
		c.Mode = Spread
	}
	if c.Mode != Spread && c.Mode != Hot {
		return fmt.Errorf("%w: mode %q (want spread or hot)", ErrBadConfig, c.Mode)
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

// Run creates the load's providers through the first target, then books until the
// duration or request count is reached or ctx ends.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	tr := &http.Transport{MaxIdleConns: cfg.Clients * 2, MaxIdleConnsPerHost: cfg.Clients * 2, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
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
		loc, err := time.LoadLocation(p.Timezone)
		if err != nil {
			return Result{}, fmt.Errorf("load: provider zone: %w", err)
		}
		now := cfg.Clock().In(loc)
		targets[i] = target{provider: *p, base: time.Date(now.Year(), now.Month(), now.Day()+2, 0, 0, 0, 0, loc)}
	}

	var (
		next     atomic.Int64
		mu       sync.Mutex
		lat      []time.Duration
		codes    = map[string]int{}
		failures int
		wg       sync.WaitGroup
	)
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	for w := 0; w < cfg.Clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cid := fmt.Sprintf("load-client-%d", w)
			tok, err := cfg.Tokens.Token(auth.RoleClient, cid)
			if err != nil {
				mu.Lock()
				codes["token"]++
				failures++
				mu.Unlock()
				return
			}
			c := client.New(cfg.Targets[w%len(cfg.Targets)], hc).WithToken(tok)
			var mine []time.Duration
			defer func() { mu.Lock(); lat = append(lat, mine...); mu.Unlock() }()
			for runCtx.Err() == nil {
				n := int(next.Add(1) - 1)
				if cfg.Requests > 0 && n >= cfg.Requests {
					return
				}
				var t target
				var k int
				if cfg.Mode == Hot {
					t, k = targets[n/slotsPerProvider%len(targets)], n%slotsPerProvider
				} else {
					t, k = targets[n%len(targets)], n/len(targets)%slotsPerProvider
				}
				req := client.BookingRequest{
					ProviderID: t.provider.ID,
					ServiceID:  t.provider.Services[0].ID,
					ClientID:   cid,
					Start:      t.base.Add(time.Duration(k) * 15 * time.Minute).Format(time.RFC3339),
				}
				t0 := time.Now()
				_, err := c.Book(runCtx, req, fmt.Sprintf("load-%d-%d", start.UnixNano(), n))
				d := time.Since(t0)
				if err != nil {
					if runCtx.Err() != nil {
						return
					}
					code := client.Code(err)
					if code == "" {
						code = "transport"
					}
					mu.Lock()
					codes[code]++
					failures++
					mu.Unlock()
					continue
				}
				mine = append(mine, d)
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	return summarize(cfg, lat, failures, codes, elapsed), nil
}

func summarize(cfg Config, lat []time.Duration, failures int, codes map[string]int, elapsed time.Duration) Result {
	slices.Sort(lat)
	r := Result{Clients: cfg.Clients, Mode: cfg.Mode, OK: len(lat), Errors: failures, Codes: codes, Elapsed: elapsed}
	if elapsed > 0 {
		r.Throughput = float64(len(lat)) / elapsed.Seconds()
	}
	r.P50, r.P90, r.P99 = Percentile(lat, 0.50), Percentile(lat, 0.90), Percentile(lat, 0.99)
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
