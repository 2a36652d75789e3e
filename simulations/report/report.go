// Package report turns a simulation run into figures: per fault, the time until
// the affected providers accept writes again; error counts by code; latency
// p50/p99 and throughput per second; success rates before, during and after
// each fault; a JSON file with every figure, a PNG chart with the faults marked,
// and a one-screen summary.
package report

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/barberpro/edge/simulations/history"
	"github.com/barberpro/edge/simulations/load"
	"github.com/barberpro/edge/simulations/traffic"
)

// FaultRecord is what happened to one fault of the schedule.
type FaultRecord struct {
	Index    int               `json:"index"`
	Name     string            `json:"name"`
	Params   map[string]string `json:"params,omitempty"`
	Describe string            `json:"describe"`
	// Injected is when Inject began, InjectDone when it returned, Healed when
	// Heal returned.
	Injected   time.Time `json:"injected"`
	InjectDone time.Time `json:"inject_done"`
	Healed     time.Time `json:"healed"`
	// Affected are the hot providers the fault may make unavailable.
	Affected []string `json:"affected,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// Input is everything a run recorded.
type Input struct {
	Scenario    string
	Description string
	Seed        uint64
	Start, End  time.Time // the workload's
	Ops         []history.Op
	Samples     []traffic.Sample
	Faults      []FaultRecord
	Liveness    []traffic.ProbeResult
	LastHeal    time.Time
	Bound       time.Duration
}

// Report holds every figure of a run; it is what report.json contains.
type Report struct {
	Scenario    string        `json:"scenario"`
	Description string        `json:"description,omitempty"`
	Seed        uint64        `json:"seed"`
	Start       time.Time     `json:"start"`
	Duration    time.Duration `json:"duration_ns"`
	Passed      bool          `json:"passed"`

	Totals  Stats            `json:"totals"`
	PerKind map[string]Stats `json:"per_kind"`
	// Errors counts every request that did not succeed, by problem code (or
	// "timeout", "transport", "canceled" when there was no answer).
	Errors map[string]int `json:"errors"`
	// Series is one entry per second of the run.
	Series []Second `json:"series"`
	Faults []Fault  `json:"faults"`
	// Liveness is the after-heal probe of every hot provider.
	Liveness      []traffic.ProbeResult `json:"liveness,omitempty"`
	LivenessBound time.Duration         `json:"liveness_bound_ns"`

	// Checks is what the checkers found (filled in by the runner).
	Checks any `json:"checks,omitempty"`
	// Violations are the checkers' findings, one line each.
	Violations []string `json:"violations,omitempty"`
	// Notes are facts of the run worth reading (a fault that failed to inject...).
	Notes []string `json:"notes,omitempty"`
}

// Stats are counts and latency over a set of requests. Latency percentiles are
// over answered requests (a 2xx or a 4xx); unanswered ones have no latency.
type Stats struct {
	Requests int           `json:"requests"`
	OK       int           `json:"ok"`
	Fail     int           `json:"fail"`
	Unknown  int           `json:"unknown"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns"`
}

// OKRate is OK/Requests (0 when none).
func (s Stats) OKRate() float64 { return ratio(s.OK, s.Requests) }

// AnsweredRate is (OK+Fail)/Requests: the share that got a definite answer.
func (s Stats) AnsweredRate() float64 { return ratio(s.OK+s.Fail, s.Requests) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Second is one second of the run, by the time requests returned.
type Second struct {
	T          int           `json:"t"` // seconds since the start
	Requests   int           `json:"requests"`
	OK         int           `json:"ok"`
	Fail       int           `json:"fail"`
	Unknown    int           `json:"unknown"`
	Throughput float64       `json:"ok_per_second"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
}

// Window is a span of the run and its request figures.
type Window struct {
	From         time.Duration `json:"from_ns"` // since the start
	To           time.Duration `json:"to_ns"`
	Stats        Stats         `json:"stats"`
	OKRate       float64       `json:"ok_rate"`
	AnsweredRate float64       `json:"answered_rate"`
}

// Fault is one fault's figures.
type Fault struct {
	FaultRecord
	InjectedAt time.Duration `json:"injected_at_ns"` // since the start
	HealedAt   time.Duration `json:"healed_at_ns"`
	// Recovery is, over the affected providers, the longest time from injection
	// until a write (book, cancel, reschedule) sent after injection succeeded:
	// how long those providers did not accept writes. -1 if one never did.
	Recovery time.Duration `json:"recovery_ns"`
	// RecoveryAfterHeal is the same, counted from the heal.
	RecoveryAfterHeal time.Duration `json:"recovery_after_heal_ns"`
	// PerProvider is the recovery of each affected provider (-1: none).
	PerProvider map[string]time.Duration `json:"per_provider_ns,omitempty"`
	Before      Window                   `json:"before"`
	During      Window                   `json:"during"`
	After       Window                   `json:"after"`
}

// Build computes every figure of in.
func Build(in Input) *Report {
	r := &Report{Scenario: in.Scenario, Description: in.Description, Seed: in.Seed, Start: in.Start,
		Duration: in.End.Sub(in.Start), Errors: map[string]int{}, PerKind: map[string]Stats{},
		Liveness: in.Liveness, LivenessBound: in.Bound}
	r.Totals = stats(in.Samples)
	byKind := map[string][]traffic.Sample{}
	for _, s := range in.Samples {
		byKind[s.Kind] = append(byKind[s.Kind], s)
		if s.Outcome != history.OK {
			code := s.Code
			if code == "" {
				code = fmt.Sprintf("http_%d", s.Status)
			}
			r.Errors[code]++
		}
	}
	for k, ss := range byKind {
		r.PerKind[k] = stats(ss)
	}
	r.Series = Series(in.Samples, in.Start, in.End)
	for i, f := range in.Faults {
		next := in.End
		if i+1 < len(in.Faults) {
			next = in.Faults[i+1].Injected
		}
		prev := in.Start
		if i > 0 {
			prev = in.Faults[i-1].Healed
		}
		r.Faults = append(r.Faults, buildFault(f, in, prev, next))
	}
	return r
}

func buildFault(f FaultRecord, in Input, prev, next time.Time) Fault {
	out := Fault{FaultRecord: f, InjectedAt: f.Injected.Sub(in.Start), HealedAt: f.Healed.Sub(in.Start)}
	out.PerProvider = map[string]time.Duration{}
	out.Recovery, out.RecoveryAfterHeal = 0, 0
	for _, p := range f.Affected {
		d := Recovery(in.Ops, p, f.Injected)
		out.PerProvider[p] = d
		out.Recovery = worst(out.Recovery, d)
		out.RecoveryAfterHeal = worst(out.RecoveryAfterHeal, Recovery(in.Ops, p, f.Healed))
	}
	if prev.After(f.Injected) {
		prev = in.Start
	}
	if next.Before(f.Healed) {
		next = in.End
	}
	out.Before = window(in.Samples, in.Start, prev, f.Injected)
	out.During = window(in.Samples, in.Start, f.Injected, f.Healed)
	out.After = window(in.Samples, in.Start, f.Healed, next)
	return out
}

// worst combines recoveries: -1 (never) wins, then the longest.
func worst(a, b time.Duration) time.Duration {
	if a < 0 || b < 0 {
		return -1
	}
	return max(a, b)
}

// Recovery is how long after t provider's first successful write sent at or
// after t was answered; -1 if none was.
func Recovery(ops []history.Op, provider string, t time.Time) time.Duration {
	best := time.Duration(-1)
	for _, op := range ops {
		if op.ProviderID != provider || op.Outcome != history.OK || op.Call.Before(t) {
			continue
		}
		if op.Kind != history.Book && op.Kind != history.Cancel && op.Kind != history.Reschedule {
			continue
		}
		if d := op.Return.Sub(t); best < 0 || d < best {
			best = d
		}
	}
	return best
}

func window(ss []traffic.Sample, start, from, to time.Time) Window {
	var in []traffic.Sample
	for _, s := range ss {
		if !s.Call.Before(from) && s.Call.Before(to) {
			in = append(in, s)
		}
	}
	st := stats(in)
	return Window{From: from.Sub(start), To: to.Sub(start), Stats: st, OKRate: st.OKRate(), AnsweredRate: st.AnsweredRate()}
}

func stats(ss []traffic.Sample) Stats {
	var st Stats
	var lat []time.Duration
	for _, s := range ss {
		st.Requests++
		switch s.Outcome {
		case history.OK:
			st.OK++
			lat = append(lat, s.Return.Sub(s.Call))
		case history.Fail:
			st.Fail++
			lat = append(lat, s.Return.Sub(s.Call))
		default:
			st.Unknown++
		}
	}
	slices.Sort(lat)
	st.P50, st.P99 = load.Percentile(lat, 0.50), load.Percentile(lat, 0.99)
	if len(lat) > 0 {
		st.Max = lat[len(lat)-1]
	}
	return st
}

// Series buckets samples by the (whole) second they returned in.
func Series(ss []traffic.Sample, start, end time.Time) []Second {
	n := int(end.Sub(start) / time.Second) // whole seconds only: a partial last one would read as a drop
	if n < 1 {
		n = 1
	}
	buckets := make([][]traffic.Sample, n)
	for _, s := range ss {
		i := int(s.Return.Sub(start) / time.Second)
		if i < 0 || i >= n {
			continue
		}
		buckets[i] = append(buckets[i], s)
	}
	out := make([]Second, n)
	for i, b := range buckets {
		st := stats(b)
		out[i] = Second{T: i, Requests: st.Requests, OK: st.OK, Fail: st.Fail, Unknown: st.Unknown,
			Throughput: float64(st.OK), P50: st.P50, P99: st.P99}
	}
	return out
}

// WriteJSON writes r as indented JSON to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func ms(d time.Duration) string {
	switch {
	case d < 0:
		return "never"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func pct(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) }

// Summary is the one-screen summary of r.
func (r *Report) Summary() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Passed {
		verdict = "FAIL"
	}
	secs := r.Duration.Seconds()
	fmt.Fprintf(&b, "== %s  seed=%d  %s  (%.1fs)\n", r.Scenario, r.Seed, verdict, secs)
	if r.Description != "" {
		fmt.Fprintf(&b, "   %s\n", r.Description)
	}
	t := r.Totals
	thr := 0.0
	if secs > 0 {
		thr = float64(t.OK) / secs
	}
	fmt.Fprintf(&b, "requests %d: ok %d (%s), refused %d, unknown %d; %.0f ok/s; latency p50 %s p99 %s max %s\n",
		t.Requests, t.OK, pct(t.OKRate()), t.Fail, t.Unknown, thr, ms(t.P50), ms(t.P99), ms(t.Max))
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(r.PerKind)) {
		s := r.PerKind[k]
		kinds = append(kinds, fmt.Sprintf("%s %d/%d p99 %s", k, s.OK, s.Requests, ms(s.P99)))
	}
	fmt.Fprintf(&b, "by kind (ok/all): %s\n", strings.Join(kinds, ", "))
	codes := slices.SortedFunc(maps.Keys(r.Errors), func(a, b string) int { return r.Errors[b] - r.Errors[a] })
	var es []string
	for _, c := range codes {
		es = append(es, fmt.Sprintf("%s %d", c, r.Errors[c]))
	}
	if len(es) == 0 {
		es = []string{"none"}
	}
	fmt.Fprintf(&b, "errors: %s\n", strings.Join(es, ", "))
	if len(r.Faults) > 0 {
		fmt.Fprintf(&b, "%-52s %7s %7s %9s %9s  %s\n", "fault", "at", "healed", "recovery", "post-heal", "ok% before/during/after")
		for _, f := range r.Faults {
			d := f.Describe
			if d == "" {
				d = f.Name
			}
			if len(d) > 52 {
				d = d[:49] + "..."
			}
			fmt.Fprintf(&b, "%-52s %6.1fs %6.1fs %9s %9s  %s/%s/%s\n", d, f.InjectedAt.Seconds(), f.HealedAt.Seconds(),
				ms(f.Recovery), ms(f.RecoveryAfterHeal), pct(f.Before.OKRate), pct(f.During.OKRate), pct(f.After.OKRate))
			if f.Error != "" {
				fmt.Fprintf(&b, "   fault error: %s\n", f.Error)
			}
		}
	}
	if len(r.Liveness) > 0 {
		ok, worst := 0, time.Duration(0)
		for _, l := range r.Liveness {
			if l.OK {
				ok++
				worst = max(worst, l.After)
			}
		}
		fmt.Fprintf(&b, "liveness: %d/%d hot providers accepted a booking within %s of the last heal (slowest %s)\n",
			ok, len(r.Liveness), ms(r.LivenessBound), ms(worst))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if len(r.Violations) > 0 {
		fmt.Fprintf(&b, "VIOLATIONS (%d):\n", len(r.Violations))
		for i, v := range r.Violations {
			if i == 10 {
				fmt.Fprintf(&b, "  ... %d more in report.json\n", len(r.Violations)-10)
				break
			}
			if len(v) > 300 {
				v = v[:297] + "..."
			}
			fmt.Fprintf(&b, "  %s\n", v)
		}
	}
	return b.String()
}
