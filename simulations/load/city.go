package load

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
)

// DefaultThink is the mean pause of a person between two actions in City mode:
// 5 s, about the time to read a page of slots and choose. Pauses are drawn
// from an exponential distribution around it (capped at 10× the mean), so
// 10,000 people send about 2,000 actions per second.
const DefaultThink = 5 * time.Second

// availabilityDays is how many days ahead (from the day after tomorrow) a person
// looks for a slot: one day at a time, a day of the next two weeks.
const availabilityDays = 14

// CityShare is a city and its share of the people of a City run.
type CityShare struct {
	City  string  `json:"city"`
	Share float64 `json:"share"`
}

// CityShares are the seed's cities (package seed) and their shares of the
// people: Buenos Aires 60 %, Córdoba 20 %, Rosario 15 %, La Plata 5 %.
var CityShares = []CityShare{{"buenos-aires", 0.60}, {"cordoba", 0.20}, {"rosario", 0.15}, {"la-plata", 0.05}}

func validShares(s []CityShare) error {
	if len(s) == 0 {
		return fmt.Errorf("%w: no cities", ErrBadConfig)
	}
	for _, c := range s {
		if c.City == "" || !(c.Share > 0) || math.IsInf(c.Share, 0) {
			return fmt.Errorf("%w: city share %+v", ErrBadConfig, c)
		}
	}
	return nil
}

// Action is one step of a person in City mode.
type Action int

// The actions of City mode. Each is one or two requests, as a person's step
// in the app is.
const (
	// ListProviders: GET /v1/providers?city= of the person's city.
	ListProviders Action = iota
	// ReadAvailability: GET the availability of one of the city's providers,
	// one day of the next two weeks.
	ReadAvailability
	// MyBookings: GET /v1/clients/{me}/bookings.
	MyBookings
	// Book: ReadAvailability, then POST /v1/bookings of one of the free starts
	// it answered (a 409 when someone else took it in between).
	Book
	// Cancel: POST …/cancel of one of the person's own confirmed bookings
	// (MyBookings when the person has none).
	Cancel
	// Reschedule: ReadAvailability of one of the person's own bookings'
	// provider, then POST …/reschedule to a free start of it (MyBookings
	// when the person has none).
	Reschedule
	numActions
)

var actionNames = [numActions]string{"list", "availability", "my-bookings", "book", "cancel", "reschedule"}

// String names the action.
func (a Action) String() string {
	if a < 0 || a >= numActions {
		return fmt.Sprintf("action(%d)", int(a))
	}
	return actionNames[a]
}

// Mix weighs City mode's actions: each step of a person is action a with
// probability weight(a)/sum of the weights.
type Mix struct {
	List, Availability, MyBookings, Book, Cancel, Reschedule float64
}

// DefaultMix is mostly reads: 25 % provider listings, 50 % availability, 5 %
// own bookings; 12 % bookings, 4 % cancels and 4 % reschedules of one's own
// bookings. (A booking or reschedule reads availability first, so about 66 %
// of requests are availability reads.)
var DefaultMix = Mix{List: 25, Availability: 50, MyBookings: 5, Book: 12, Cancel: 4, Reschedule: 4}

func (m Mix) weights() [numActions]float64 {
	return [numActions]float64{m.List, m.Availability, m.MyBookings, m.Book, m.Cancel, m.Reschedule}
}

func (m Mix) validate() error {
	sum := 0.0
	for _, w := range m.weights() {
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("%w: mix %+v: weights must be finite and not negative", ErrBadConfig, m)
		}
		sum += w
	}
	if sum == 0 {
		return fmt.Errorf("%w: mix %+v: no action", ErrBadConfig, m)
	}
	return nil
}

// Pick draws an action from the mix with r.
func (m Mix) Pick(r *rand.Rand) Action {
	w := m.weights()
	sum := 0.0
	for _, x := range w {
		sum += x
	}
	x := r.Float64() * sum
	for a, wa := range w {
		if x < wa {
			return Action(a)
		}
		x -= wa
	}
	for a := numActions - 1; a >= 0; a-- { // rounding: the last action with weight
		if w[a] > 0 {
			return a
		}
	}
	return ListProviders
}

// Apportion splits n over shares by the largest remainder: the counts sum to n
// and each is within one of n×share/total.
func Apportion(n int, shares []CityShare) []int {
	total := 0.0
	for _, s := range shares {
		total += s.Share
	}
	counts := make([]int, len(shares))
	rem := make([]float64, len(shares))
	left := n
	for i, s := range shares {
		exact := float64(n) * s.Share / total
		counts[i] = int(exact)
		rem[i] = exact - float64(counts[i])
		left -= counts[i]
	}
	order := make([]int, len(shares))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(rem[b], rem[a]) })
	for i := 0; i < left; i++ {
		counts[order[i%len(order)]]++
	}
	return counts
}

// PersonCities is the city of each of n people: contiguous blocks of the
// cities by Apportion (the first 60 % in Buenos Aires, ...).
func PersonCities(n int, shares []CityShare) []string {
	out := make([]string, 0, n)
	for i, c := range Apportion(n, shares) {
		for range c {
			out = append(out, shares[i].City)
		}
	}
	return out
}

// personRand is person i's random source under seed: the same seed gives every
// person the same choices.
func personRand(seed uint64, i int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(i)+1))
}

// cityRun is the state of one City run.
type cityRun struct {
	cfg       Config
	hc        *http.Client
	providers map[string][]target // by city
	targets   map[string][]string // node URLs by city
	start     time.Time
	prog      progress
	cut       atomic.Int64 // requests the run's end cut off (Result.Unfinished)

	mu    sync.Mutex
	stats map[statKey]*routeStat
}

// runCity is a City run: find each target's city, create the providers of each
// city through a node of it, then run Clients people until Duration.
func runCity(ctx context.Context, cfg Config) (Result, error) {
	hc, done := newHTTPClient(min(cfg.Clients, 256))
	defer done()
	opToken, err := cfg.Tokens.Token(auth.RoleOperator, "load-operator")
	if err != nil {
		return Result{}, fmt.Errorf("load: %w", err)
	}
	byCity, err := TargetCities(ctx, hc, opToken, cfg.Targets)
	if err != nil {
		return Result{}, err
	}
	run := &cityRun{cfg: cfg, hc: hc, targets: map[string][]string{}, providers: map[string][]target{}, stats: map[statKey]*routeStat{}}
	for _, s := range cfg.Shares {
		// A city without a node of its own is served by any node (relayed).
		run.targets[s.City] = cmpOr(byCity[s.City], cfg.Targets)
	}
	if err := run.createProviders(ctx, opToken); err != nil {
		return Result{}, err
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	run.start = time.Now()
	stop := run.prog.start(cfg, run.start)
	var wg sync.WaitGroup
	for i, city := range PersonCities(cfg.Clients, cfg.Shares) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run.person(runCtx, i, city)
		}()
	}
	wg.Wait()
	// Answers after the deadline are not counted: neither is the time after it.
	elapsed := min(time.Since(run.start), cfg.Duration)
	stop()
	r := run.result(elapsed)
	r.CityTargets = run.targets
	return r, nil
}

func cmpOr[T any](a, b []T) []T {
	if len(a) > 0 {
		return a
	}
	return b
}

// TargetCities maps node URLs to their cities: each target names itself (GET
// /v1/cluster/status, operator) and its member entry (GET
// /v1/cluster/members) gives its city.
func TargetCities(ctx context.Context, hc *http.Client, opToken string, targets []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, t := range targets {
		c := client.New(t, hc).WithToken(opToken)
		st, err := c.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("load: which node is %s (GET /v1/cluster/status): %w", t, err)
		}
		ms, err := c.Members(ctx)
		if err != nil {
			return nil, fmt.Errorf("load: the city of %s (GET /v1/cluster/members): %w", t, err)
		}
		i := slices.IndexFunc(ms.Items, func(m client.Member) bool { return m.ID == st.Node })
		if i < 0 {
			return nil, fmt.Errorf("load: %s (node %s) is not among its own members", t, st.Node)
		}
		out[ms.Items[i].City] = append(out[ms.Items[i].City], t)
	}
	return out, nil
}

// createProviders creates cfg.Providers load providers over the cities by
// their shares (at least one each), each through a node of its city, a few at
// a time.
func (run *cityRun) createProviders(ctx context.Context, opToken string) error {
	n := run.cfg.Providers
	if n == 0 {
		n = max(2*len(run.cfg.Shares), run.cfg.Clients/50)
	}
	type job struct {
		city string
		i    int
	}
	var jobs []job
	for ci, c := range Apportion(n, run.cfg.Shares) {
		for i := range max(c, 1) {
			jobs = append(jobs, job{run.cfg.Shares[ci].City, i})
		}
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan job)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				admin := client.New(run.targets[j.city][j.i%len(run.targets[j.city])], run.hc).WithToken(opToken)
				p, err := admin.CreateProvider(ctx, LoadProvider(j.city, j.i), "")
				var t target
				if err == nil {
					t, err = newTarget(p, run.cfg.Clock())
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("load: create a provider in %s: %w", j.city, err))
				} else {
					run.providers[j.city] = append(run.providers[j.city], t)
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, ts := range run.providers { // a repeatable order for the seeded choices
		slices.SortFunc(ts, func(a, b target) int { return cmp.Compare(a.provider.Name, b.provider.Name) })
	}
	return nil
}

// own is a booking of a person, as the person last saw it.
type own struct {
	id   string
	prov target
}

// person is one simulated person: a pause, then actions and pauses until ctx
// ends.
func (run *cityRun) person(ctx context.Context, i int, city string) {
	rng := personRand(run.cfg.Seed, i)
	if !run.think(ctx, rng) { // arrivals spread over the first pause
		return
	}
	cid := fmt.Sprintf("load-user-%d", i)
	tok, err := run.cfg.Tokens.Token(auth.RoleClient, cid)
	if err != nil {
		run.record(routeToken, city, 0, err)
		return
	}
	nodes := run.targets[city]
	p := &personState{
		run: run, rng: rng, city: city, id: cid, n: i,
		c: client.New(nodes[i%len(nodes)], run.hc).WithToken(tok),
	}
	for n := 0; ctx.Err() == nil && (run.cfg.Actions == 0 || n < run.cfg.Actions); n++ {
		p.act(ctx, run.cfg.Mix.Pick(rng))
		if !run.think(ctx, rng) {
			return
		}
	}
}

// maxPause bounds one pause: a huge --think would overflow the duration.
const maxPause = 24 * time.Hour

// think sleeps a person's pause; false when ctx ended first.
func (run *cityRun) think(ctx context.Context, rng *rand.Rand) bool {
	if run.cfg.Think < 0 {
		return ctx.Err() == nil
	}
	d := time.Duration(min(min(rng.ExpFloat64(), 10)*float64(run.cfg.Think), float64(maxPause)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// personState is what one person knows: its client, city and own bookings.
type personState struct {
	run  *cityRun
	rng  *rand.Rand
	c    *client.Client
	city string
	id   string
	n    int // the person's index
	mine []own
}

// act does one action; an answer cut by the end of the run is not counted.
func (p *personState) act(ctx context.Context, a Action) {
	if (a == Cancel || a == Reschedule) && len(p.mine) == 0 {
		a = MyBookings
	}
	switch a {
	case ListProviders:
		p.do(ctx, routeList, func() error {
			// The page is checked to be framed as JSON, not decoded: the
			// person picks from the run's providers (pickProvider), and
			// decoding 50 of them was 46 % of the load generator's CPU
			// (ProvidersJSON).
			_, err := p.c.ProvidersJSON(ctx, client.ProvidersQuery{City: p.city})
			return err
		})
	case ReadAvailability:
		_, _ = p.readAvailability(ctx, p.pickProvider(), false)
	case MyBookings:
		p.do(ctx, routeMine, func() error {
			_, err := p.c.ClientBookings(ctx, p.id, "", 20)
			return err
		})
	case Book:
		t := p.pickProvider()
		start, ok := p.availability(ctx, t)
		if !ok {
			return
		}
		var b *client.Booking
		err := p.do(ctx, routeBook, func() (err error) {
			b, err = p.c.Book(ctx, client.BookingRequest{ProviderID: t.provider.ID, ServiceID: t.provider.Services[0].ID,
				ClientID: p.id, Start: start}, p.key())
			return err
		})
		if err == nil {
			p.mine = append(p.mine, own{id: b.ID, prov: t})
		}
	case Cancel:
		k := p.rng.IntN(len(p.mine))
		if p.do(ctx, routeCancel, func() error {
			_, err := p.c.Cancel(ctx, p.mine[k].id)
			return err
		}) == nil {
			p.mine = slices.Delete(p.mine, k, k+1)
		}
	case Reschedule:
		b := p.mine[p.rng.IntN(len(p.mine))]
		start, ok := p.availability(ctx, b.prov)
		if !ok {
			return
		}
		p.do(ctx, routeReschedule, func() error {
			_, err := p.c.Reschedule(ctx, b.id, start, p.key())
			return err
		})
	}
}

// key is a new idempotency key of the person: a random UUID, as a client
// app sends (the store's cost depends on the keys' order: newKey).
func (p *personState) key() string { return newKey() }

func (p *personState) pickProvider() target {
	ts := p.run.providers[p.city]
	return ts[p.rng.IntN(len(ts))]
}

// availability reads one day of t's availability, a day of the next two weeks,
// and returns one of its free starts (false: none, or the read failed).
func (p *personState) availability(ctx context.Context, t target) (string, bool) {
	av, err := p.readAvailability(ctx, t, true)
	if err != nil || len(av.Slots) == 0 {
		return "", false
	}
	return av.Slots[p.rng.IntN(len(av.Slots))].Start, true
}

// readAvailability reads one day of t's availability, a day of the next two
// weeks, and records it. Only a person about to book needs its slots
// (decode); any other read is checked for its frame, not decoded
// (AvailabilityJSON): decoding them was a large share of the load
// generator's CPU, on the cores of the nodes it measures.
func (p *personState) readAvailability(ctx context.Context, t target, decode bool) (*client.Availability, error) {
	day := t.base.AddDate(0, 0, p.rng.IntN(availabilityDays)).Format(time.DateOnly)
	var av *client.Availability
	err := p.do(ctx, routeAvailability, func() (err error) {
		if decode {
			av, err = p.c.Availability(ctx, t.provider.ID, t.provider.Services[0].ID, day, 1)
		} else {
			_, err = p.c.AvailabilityJSON(ctx, t.provider.ID, t.provider.Services[0].ID, day, 1)
		}
		return err
	})
	return av, err
}

// do times one request and records it (not when ctx ended: the run is over).
func (p *personState) do(ctx context.Context, route string, f func() error) error {
	p.run.prog.inFlight.Add(1)
	t0 := time.Now()
	err := f()
	d := time.Since(t0)
	p.run.prog.inFlight.Add(-1)
	if ctx.Err() != nil {
		if err != nil { // its wait was cut off (an answer just after the end is dropped, not counted)
			p.run.cut.Add(1)
		}
		return ctx.Err()
	}
	p.run.record(route, p.city, d, err)
	return err
}
