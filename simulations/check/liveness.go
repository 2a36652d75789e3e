package check

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/barberpro/edge/simulations/history"
)

// Liveness checks that after the last fault healed (healedAt) every provider in
// providers accepted a booking within bound: some Book of it invoked at or after
// healedAt was answered OK by healedAt+bound. A provider that did not is a
// violation naming its Book attempts in that window (and saying when, if ever, a
// later one succeeded); one the workload did not try to book in the window is a
// violation too, since nothing shows it recovered: the scenario must keep booking
// every provider after the heal.
func Liveness(ops []history.Op, providers []string, healedAt time.Time, bound time.Duration) Result {
	var res Result
	res.count("liveness.providers", len(providers))
	deadline := healedAt.Add(bound)
	byProvider := map[string][]history.Op{}
	for _, op := range ops {
		if op.Kind == history.Book && !op.Call.Before(healedAt) {
			byProvider[op.ProviderID] = append(byProvider[op.ProviderID], op)
		}
	}
	for _, provider := range slices.Sorted(slices.Values(providers)) {
		var inWindow []int
		outcomes := map[string]int{}
		var firstLate time.Time
		ok := false
		for _, op := range byProvider[provider] {
			res.count("liveness.books", 1)
			acked := effectiveOutcome(op) == history.OK && !op.Return.IsZero()
			if acked && !op.Return.After(deadline) {
				ok = true
				break
			}
			if acked && (firstLate.IsZero() || op.Return.Before(firstLate)) {
				firstLate = op.Return
			}
			if op.Call.After(deadline) {
				continue
			}
			inWindow = append(inWindow, op.ID)
			outcomes[outcomeLabel(op)]++
		}
		if ok {
			continue
		}
		if len(inWindow) == 0 {
			res.violate(CheckLiveness, nil, []string{provider},
				"provider %s: no booking was attempted within %v of the heal at %s, so nothing shows it accepts bookings again",
				provider, bound, healedAt.UTC().Format(time.RFC3339Nano))
			continue
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(outcomes)) {
			parts = append(parts, fmt.Sprintf("%d %s", outcomes[k], k))
		}
		later := "and none succeeded later"
		if !firstLate.IsZero() {
			later = fmt.Sprintf("the first success came %v after the heal", firstLate.Sub(healedAt).Round(time.Millisecond))
		}
		attempts := len(inWindow)
		if len(inWindow) > 20 {
			inWindow = inWindow[:20]
		}
		res.violate(CheckLiveness, inWindow, []string{provider},
			"provider %s: no booking accepted within %v of the heal: %d attempts (%s); %s",
			provider, bound, attempts, strings.Join(parts, ", "), later)
	}
	return res
}

// RecoveryTime is how long after healedAt provider first accepted a booking
// invoked at or after healedAt (the answer's return time), and false if it never
// did. For the report's per-fault figures.
func RecoveryTime(ops []history.Op, provider string, healedAt time.Time) (time.Duration, bool) {
	var best time.Time
	for _, op := range ops {
		if op.Kind != history.Book || op.ProviderID != provider || op.Call.Before(healedAt) ||
			effectiveOutcome(op) != history.OK || op.Return.IsZero() {
			continue
		}
		if best.IsZero() || op.Return.Before(best) {
			best = op.Return
		}
	}
	if best.IsZero() {
		return 0, false
	}
	return best.Sub(healedAt), true
}

func outcomeLabel(op history.Op) string {
	switch {
	case op.Outcome == history.Unknown:
		return "unanswered"
	case op.Code != "":
		return fmt.Sprintf("%d %s", op.Status, op.Code)
	default:
		return fmt.Sprintf("%s %d", op.Outcome, op.Status)
	}
}
