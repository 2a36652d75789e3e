// Package check judges a simulation run afterwards: the recorded history of client
// operations (package history) and the final state of every node, against the
// invariants of the architecture brief.
//
// Each checker returns a Result; Merge combines them. A Result with any Violation
// fails the run (ExitCode 1), and every Violation names the operations involved
// (history.Op ids) and, where the final state is the evidence, the booking ids or
// nodes (Refs). The checkers:
//
//   - Linearizable: each provider's calendar, checked with porcupine against a
//     sequential model of bookings, cancels, reschedules and reads. Operations with
//     an indeterminate outcome (timeouts, 5xx, 503) are kept, with a return time at
//     infinity: they may have taken effect at any time after they were invoked, or
//     never. Retries with one idempotency key are one logical operation. Also
//     reports "idempotency" violations found while merging retries.
//   - NoDoubleBooking: no two non-cancelled bookings of a provider overlap, in any
//     replica's final state.
//   - ReplicasAgree: every node of a Raft group reports the same FSM digest.
//   - AckedPresent: every acknowledged booking, cancel and reschedule is in a
//     replica's final state.
//   - Residency: no psychology id or client id in any file (data dir or log) of
//     a node outside the home jurisdiction, with the same scan on the home nodes
//     as its control; and no sealed text (a note's marker) on any node at all,
//     plain or base64 (ResidencyScan). `barberpro residency check` scans with
//     the same code.
//   - LogPrivacy: no client id in any node's log, with a planted needle appended
//     to each scanned log as its control.
//   - Liveness: after the last fault heals, every provider accepts a booking within
//     a bound.
//
// A checker that could not decide (porcupine's timeout) reports an Inconclusive
// entry: neither a pass nor a violation. OK is false only on violations; the
// caller chooses what an inconclusive check means for the run (Clean is false on
// either).
package check

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/barberpro/edge/simulations/history"
)

// Check names, the values of Violation.Check.
const (
	CheckLinearizable     = "linearizable"
	CheckIdempotency      = "idempotency"
	CheckNoDoubleBooking  = "no-double-booking"
	CheckReplicasAgree    = "replicas-agree"
	CheckAckedPresent     = "acked-present"
	CheckResidency        = "residency"
	CheckResidencyControl = "residency-control"
	// CheckLogPrivacy: a personal id in a node's log; CheckLogPrivacyControl: the
	// log scan could not prove it reads the logs (see LogPrivacy).
	CheckLogPrivacy        = "log-privacy"
	CheckLogPrivacyControl = "log-privacy-control"
	CheckLiveness          = "liveness"
)

// Violation is one broken invariant.
type Violation struct {
	// Check is the checker that found it (one of the Check* constants).
	Check string `json:"check"`
	// Detail says what is wrong, in words, naming operations, bookings and nodes.
	Detail string `json:"detail"`
	// Ops are the ids (history.Op.ID) of the operations involved, ascending.
	Ops []int `json:"ops,omitempty"`
	// Refs are other things involved: booking ids, node names, needles, files.
	Refs []string `json:"refs,omitempty"`
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", v.Check, v.Detail)
	if len(v.Ops) > 0 {
		fmt.Fprintf(&b, " (ops %s)", joinInts(v.Ops))
	}
	return b.String()
}

// Result is what one or more checkers found.
type Result struct {
	// Violations broke an invariant: the run fails.
	Violations []Violation `json:"violations,omitempty"`
	// Inconclusive lists checks that could not decide (e.g. porcupine timed out on
	// a provider's history): not a pass, not a violation.
	Inconclusive []Violation `json:"inconclusive,omitempty"`
	// Checked counts what each check looked at, keyed "check.what" (e.g.
	// "linearizable.ops", "residency.files"), so that a pass over nothing shows.
	Checked map[string]int `json:"checked,omitempty"`
}

// OK reports whether no violation was found. Inconclusive checks do not count.
func (r Result) OK() bool { return len(r.Violations) == 0 }

// Clean reports whether no violation was found and every check was conclusive.
func (r Result) Clean() bool { return r.OK() && len(r.Inconclusive) == 0 }

// ExitCode is 1 when there is a violation, else 0.
func (r Result) ExitCode() int {
	if r.OK() {
		return 0
	}
	return 1
}

// Write prints the result: one line per violation and inconclusive check, then
// the counts.
func (r Result) Write(w io.Writer) error {
	var b strings.Builder
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "VIOLATION %s\n", v)
	}
	for _, v := range r.Inconclusive {
		fmt.Fprintf(&b, "UNKNOWN   %s\n", v)
	}
	keys := slices.Sorted(maps.Keys(r.Checked))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, r.Checked[k]))
	}
	verdict := "OK"
	switch {
	case !r.OK():
		verdict = fmt.Sprintf("FAIL: %d violation(s)", len(r.Violations))
	case !r.Clean():
		verdict = fmt.Sprintf("OK with %d inconclusive check(s)", len(r.Inconclusive))
	}
	fmt.Fprintf(&b, "checks %s; checked %s\n", verdict, strings.Join(parts, " "))
	_, err := io.WriteString(w, b.String())
	return err
}

// Merge combines results: violations and inconclusive entries in order, counts
// summed.
func Merge(rs ...Result) Result {
	var out Result
	for _, r := range rs {
		out.Violations = append(out.Violations, r.Violations...)
		out.Inconclusive = append(out.Inconclusive, r.Inconclusive...)
		for k, n := range r.Checked {
			out.count(k, n)
		}
	}
	return out
}

// WithOps names, for every violation, the operations that touched the bookings
// in its Refs (every op but a Get whose BookingID is a ref), so that violations
// found in the final state (a double booking, a lost booking, a booking id on a
// foreign disk) point back into the history.
func (r Result) WithOps(ops []history.Op) Result {
	byBooking := map[string][]int{}
	for _, op := range ops {
		if op.BookingID != "" && op.Kind != history.Get {
			byBooking[op.BookingID] = append(byBooking[op.BookingID], op.ID)
		}
	}
	fix := func(vs []Violation) []Violation {
		out := make([]Violation, len(vs))
		for i, v := range vs {
			ids := slices.Clone(v.Ops)
			for _, ref := range v.Refs {
				ids = append(ids, byBooking[ref]...)
			}
			v.Ops = sortedUnique(ids)
			out[i] = v
		}
		return out
	}
	r.Violations = fix(r.Violations)
	r.Inconclusive = fix(r.Inconclusive)
	return r
}

func (r *Result) count(key string, n int) {
	if r.Checked == nil {
		r.Checked = map[string]int{}
	}
	r.Checked[key] += n
}

func (r *Result) violate(check string, ops []int, refs []string, format string, args ...any) {
	r.Violations = append(r.Violations, Violation{
		Check: check, Detail: fmt.Sprintf(format, args...), Ops: sortedUnique(ops), Refs: refs,
	})
}

func sortedUnique(ids []int) []int {
	if len(ids) == 0 {
		return nil
	}
	out := slices.Clone(ids)
	sort.Ints(out)
	return slices.Compact(out)
}

func joinInts(ids []int) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, ",")
}
