// Package scenario reads failover simulation scenarios: YAML files naming a
// topology, a workload, a fault schedule, a duration, a liveness bound and a
// seed. The same seed gives the same workload choices and the same fault
// schedule (times and picks), through a seeded math/rand/v2.
package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/barberpro/edge/simulations/failpoint"
)

// Scenario is one simulation, as its file says.
type Scenario struct {
	// Name identifies the scenario (the file's base name in the library).
	Name string `yaml:"name"`
	// Description is one line on what it does to the cluster.
	Description string `yaml:"description"`
	// Seed drives the workload's and the schedule's random choices. 0 means
	// "pick one at random" (the run prints it).
	Seed uint64 `yaml:"seed"`
	// Duration is how long the workload runs.
	Duration time.Duration `yaml:"duration"`
	// CI marks the scenario as part of the short selection (`sim --ci`).
	CI bool `yaml:"ci"`
	// Topology is the cluster.
	Topology Topology `yaml:"topology"`
	// Workload is what the clients do.
	Workload Workload `yaml:"workload"`
	// Faults is the fault schedule.
	Faults []FaultSpec `yaml:"faults"`
	// Liveness is the bound within which every hot provider must accept a
	// booking after the last fault heals.
	Liveness Liveness `yaml:"liveness"`
	// Checks adds checks to the standard set.
	Checks Checks `yaml:"checks"`
}

// Checks are the optional checks of a scenario (the history, final-state,
// fork and crash checks always run).
type Checks struct {
	// PlacementAfter, when set, is how long after the last heal every node of a
	// hot provider's jurisdiction is asked where its calendar lives: they must
	// all name the same node (no duplicate activation), that node must be the
	// provider's home city's node, and every node of the jurisdiction must host
	// a calendar actor.
	PlacementAfter time.Duration `yaml:"placement_after"`
}

// Topology is the cluster layout.
type Topology struct {
	// Layout is the node layout; only "five-cities" (procs.FiveCities:
	// ba-1, cba-1, ros-1, lp-1 in ar and us-1 in us) exists. Default five-cities.
	Layout string `yaml:"layout"`
	// IPBase is the last octet of the first node's loopback address (127.0.0.IPBase
	// .. IPBase+4). Scenarios use distinct bases so they never collide. Required,
	// 2..250.
	IPBase int `yaml:"ip_base"`
}

// Workload is what the simulated clients do.
type Workload struct {
	// Clients is the number of concurrent clients. Default 8.
	Clients int `yaml:"clients"`
	// HotProviders is how many providers the clients contend on. Default 5.
	HotProviders int `yaml:"hot_providers"`
	// Verticals the hot providers cycle through. Default barber, psychology,
	// beauty, fitness.
	Verticals []string `yaml:"verticals"`
	// WindowSlots is how many 15-minute starts of each hot provider the clients
	// choose from (small: contention). Default 24.
	WindowSlots int `yaml:"window_slots"`
	// Mix weighs the operations: book, cancel, reschedule, get, availability,
	// and on psychology providers series, session, notes. Default
	// 50/15/10/15/10/4/4/6.
	Mix Mix `yaml:"mix"`
	// ThinkTime is the mean pause between a client's operations (uniform in
	// [ThinkTime/2, 3·ThinkTime/2)). Default 40ms.
	ThinkTime time.Duration `yaml:"think_time"`
	// RequestTimeout bounds one HTTP request. Default 2s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Retries is how many times a client retries a write whose outcome it does
	// not know, with the same Idempotency-Key. Default 3.
	Retries *int `yaml:"retries"`
	// Preload books this many distinct slots of a background provider before the
	// workload starts (to grow the Raft log past its snapshot threshold). Default 0.
	Preload int `yaml:"preload"`
	// USProvider adds a hot provider homed in us-east (jurisdiction us). Default true.
	USProvider *bool `yaml:"us_provider"`
}

// Mix weighs the operation kinds; only ratios matter.
type Mix struct {
	Book         int `yaml:"book"`
	Cancel       int `yaml:"cancel"`
	Reschedule   int `yaml:"reschedule"`
	Get          int `yaml:"get"`
	Availability int `yaml:"availability"`
	// Series, Session and Notes act on the psychology providers: a series of
	// sessions, a session's moves by its provider, notes written and read back.
	Series  int `yaml:"series"`
	Session int `yaml:"session"`
	Notes   int `yaml:"notes"`
}

// Total is the sum of the weights.
func (m Mix) Total() int {
	return m.Book + m.Cancel + m.Reschedule + m.Get + m.Availability + m.Series + m.Session + m.Notes
}

// FaultSpec is one entry of the fault schedule.
type FaultSpec struct {
	// At is when the fault is injected, after the workload starts.
	At time.Duration `yaml:"at"`
	// Jitter adds a seeded random 0..Jitter to At.
	Jitter time.Duration `yaml:"jitter"`
	// Fault is the registry name (failpoint.Names).
	Fault string `yaml:"fault"`
	// Params are the fault's parameters.
	Params map[string]string `yaml:"params"`
	// HealAfter is how long after injection it is healed (a fault whose
	// injection takes longer is healed as soon as it is done).
	HealAfter time.Duration `yaml:"heal_after"`
}

// Liveness is the after-heal bound.
type Liveness struct {
	// Bound: every hot provider must accept a booking within it after the last
	// heal. Default 20s.
	Bound time.Duration `yaml:"bound"`
}

// ErrInvalid wraps every reason a scenario file is rejected.
var ErrInvalid = errors.New("invalid scenario")

// Parse reads a scenario from YAML. source names the file in errors. Unknown
// fields are errors; defaults are filled in; the result is validated.
func Parse(data []byte, source string) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, source, err)
	}
	s.defaults()
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, source, err)
	}
	return &s, nil
}

// Load reads the scenario file at path.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b, path)
}

// LoadFS reads every *.yaml of fsys, sorted by name.
func LoadFS(fsys fs.FS) ([]*Scenario, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []*Scenario
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		s, err := Parse(b, n)
		if err != nil {
			return nil, err
		}
		if want := strings.TrimSuffix(filepath.Base(n), ".yaml"); s.Name != want {
			return nil, fmt.Errorf("%w: %s: name %q differs from the file name", ErrInvalid, n, s.Name)
		}
		out = append(out, s)
	}
	return out, nil
}

func (s *Scenario) defaults() {
	if s.Topology.Layout == "" {
		s.Topology.Layout = "five-cities"
	}
	w := &s.Workload
	if w.Clients == 0 {
		w.Clients = 8
	}
	if w.HotProviders == 0 {
		w.HotProviders = 5
	}
	if len(w.Verticals) == 0 {
		w.Verticals = []string{"barber", "psychology", "beauty", "fitness"}
	}
	if w.WindowSlots == 0 {
		w.WindowSlots = 24
	}
	if w.Mix == (Mix{}) {
		w.Mix = Mix{Book: 50, Cancel: 15, Reschedule: 10, Get: 15, Availability: 10, Series: 4, Session: 4, Notes: 6}
	}
	if w.ThinkTime == 0 {
		w.ThinkTime = 40 * time.Millisecond
	}
	if w.RequestTimeout == 0 {
		w.RequestTimeout = 2 * time.Second
	}
	if w.Retries == nil {
		r := 3
		w.Retries = &r
	}
	if w.USProvider == nil {
		t := true
		w.USProvider = &t
	}
	if s.Liveness.Bound == 0 {
		s.Liveness.Bound = 20 * time.Second
	}
}

var knownVerticals = []string{"barber", "beauty", "fitness", "psychology"}

// Validate reports the first problem with s, naming the field.
func (s *Scenario) Validate() error {
	w := s.Workload
	switch {
	case s.Name == "":
		return errors.New("name is required")
	case strings.ContainsAny(s.Name, " /\\"):
		return fmt.Errorf("name %q: no spaces or slashes", s.Name)
	case s.Duration <= 0:
		return errors.New("duration is required and must be positive (e.g. 30s)")
	case s.Duration > time.Hour:
		return fmt.Errorf("duration %v: at most 1h", s.Duration)
	case s.Topology.Layout != "five-cities":
		return fmt.Errorf("topology.layout %q: only five-cities exists", s.Topology.Layout)
	case s.Topology.IPBase < 2 || s.Topology.IPBase > 250:
		return fmt.Errorf("topology.ip_base %d: want 2..250 (the nodes take 127.0.0.ip_base..ip_base+4)", s.Topology.IPBase)
	case w.Clients < 1 || w.Clients > 256:
		return fmt.Errorf("workload.clients %d: want 1..256", w.Clients)
	case w.HotProviders < 1 || w.HotProviders > 64:
		return fmt.Errorf("workload.hot_providers %d: want 1..64", w.HotProviders)
	case w.WindowSlots < 2 || w.WindowSlots > 96:
		return fmt.Errorf("workload.window_slots %d: want 2..96 (15-minute starts within one day)", w.WindowSlots)
	case w.Mix.Book < 0 || w.Mix.Cancel < 0 || w.Mix.Reschedule < 0 || w.Mix.Get < 0 || w.Mix.Availability < 0 ||
		w.Mix.Series < 0 || w.Mix.Session < 0 || w.Mix.Notes < 0:
		return errors.New("workload.mix: weights must not be negative")
	case w.Mix.Book == 0:
		return errors.New("workload.mix.book must be positive: the other operations act on bookings")
	case w.ThinkTime < 0:
		return errors.New("workload.think_time must not be negative")
	case w.RequestTimeout < 10*time.Millisecond:
		return fmt.Errorf("workload.request_timeout %v: at least 10ms", w.RequestTimeout)
	case *w.Retries < 0 || *w.Retries > 20:
		return fmt.Errorf("workload.retries %d: want 0..20", *w.Retries)
	case w.Preload < 0 || w.Preload > 100000:
		return fmt.Errorf("workload.preload %d: want 0..100000", w.Preload)
	case s.Liveness.Bound < 0:
		return errors.New("liveness.bound must not be negative")
	case s.Checks.PlacementAfter < 0:
		return errors.New("checks.placement_after must not be negative")
	}
	for _, v := range w.Verticals {
		if !slices.Contains(knownVerticals, v) {
			return fmt.Errorf("workload.verticals: unknown vertical %q (known: %s)", v, strings.Join(knownVerticals, ", "))
		}
	}
	for i, f := range s.Faults {
		where := fmt.Sprintf("faults[%d] (%s)", i, f.Fault)
		if f.Fault == "" {
			return fmt.Errorf("faults[%d]: fault is required (one of %s)", i, strings.Join(failpoint.Names(), ", "))
		}
		if _, err := failpoint.New(f.Fault, f.Params, 0); err != nil {
			return fmt.Errorf("faults[%d]: %v", i, err)
		}
		switch {
		case f.At <= 0:
			return fmt.Errorf("%s: at must be positive (time after the workload starts)", where)
		case f.Jitter < 0:
			return fmt.Errorf("%s: jitter must not be negative", where)
		case f.HealAfter <= 0:
			return fmt.Errorf("%s: heal_after is required and must be positive: every fault is healed", where)
		case f.At+f.Jitter+f.HealAfter >= s.Duration:
			return fmt.Errorf("%s: at+jitter+heal_after = %v must end before duration %v, so liveness can be checked",
				where, f.At+f.Jitter+f.HealAfter, s.Duration)
		case s.Checks.PlacementAfter > 0 && f.At+f.Jitter+f.HealAfter+s.Checks.PlacementAfter >= s.Duration:
			return fmt.Errorf("%s: at+jitter+heal_after+checks.placement_after = %v must end before duration %v",
				where, f.At+f.Jitter+f.HealAfter+s.Checks.PlacementAfter, s.Duration)
		}
	}
	return nil
}

// Event is one fault of the schedule as a seed resolves it.
type Event struct {
	// Index is the fault's position in the scenario file.
	Index int
	// At is the injection time after the workload starts (At plus the seeded jitter).
	At time.Duration
	// HealAfter is copied from the file.
	HealAfter time.Duration
	// Fault and Params name the fault.
	Fault  string
	Params map[string]string
	// Pick is the seeded random number the fault chooses its target with.
	Pick uint64
}

// Rand is the seeded source of stream stream of the scenario: the same (seed,
// name, stream) always gives the same numbers. Stream 0 is the fault schedule;
// the workload uses others.
func (s *Scenario) Rand(seed uint64, stream uint64) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(s.Name))
	return rand.New(rand.NewPCG(seed, h.Sum64()^(stream*0x9e3779b97f4a7c15)))
}

// Schedule resolves the fault schedule for seed, ordered by injection time.
func (s *Scenario) Schedule(seed uint64) []Event {
	r := s.Rand(seed, 0)
	ev := make([]Event, len(s.Faults))
	for i, f := range s.Faults {
		at := f.At
		if f.Jitter > 0 {
			at += time.Duration(r.Int64N(int64(f.Jitter) + 1)).Truncate(time.Millisecond)
		}
		ev[i] = Event{Index: i, At: at, HealAfter: f.HealAfter, Fault: f.Fault, Params: f.Params, Pick: r.Uint64()}
	}
	slices.SortStableFunc(ev, func(a, b Event) int { return int(a.At - b.At) })
	return ev
}

// Summary is a one-line description of the fault schedule.
func (s *Scenario) Summary() string {
	var parts []string
	for _, f := range s.Faults {
		var ps []string
		for _, k := range slices.Sorted(maps.Keys(f.Params)) {
			ps = append(ps, k+"="+f.Params[k])
		}
		p := ""
		if len(ps) > 0 {
			p = "(" + strings.Join(ps, ",") + ")"
		}
		parts = append(parts, fmt.Sprintf("%s%s@%v+%v", f.Fault, p, f.At, f.HealAfter))
	}
	if len(parts) == 0 {
		return "no faults"
	}
	return strings.Join(parts, "; ")
}
