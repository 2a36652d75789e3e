package check

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/barberpro/edge/simulations/history"
)

// Exit is one end of a node process during a run.
type Exit struct {
	Node string
	// At is when it ended; Started when that process had started.
	At, Started time.Time
	// Err is how it ended ("exit status 2", "signal: killed").
	Err string
	// Expected is true when the harness ended it (kill -9, SIGTERM) or started
	// it to die (a crash failpoint).
	Expected bool
	// Log is the node's log file, for the detail.
	Log string
	// Panic is the first line of a Go panic in the log, if one was found.
	Panic string
}

// NoCrash checks that no node process ended unless the harness ended it: a
// node that panics on a full disk, or exits on an error it should survive, is
// a violation.
func NoCrash(exits []Exit) Result {
	var res Result
	res.count("no-crash.exits", len(exits))
	for _, e := range exits {
		if e.Expected {
			continue
		}
		how := e.Err
		if how == "" {
			how = "exit status 0"
		}
		detail := fmt.Sprintf("node %s ended by itself at %s (%s) after running %v", e.Node,
			e.At.UTC().Format("15:04:05.000"), how, e.At.Sub(e.Started).Round(time.Millisecond))
		if e.Panic != "" {
			detail += "; log: " + e.Panic
		}
		if e.Log != "" {
			detail += " (log " + e.Log + ")"
		}
		res.violate(CheckNoCrash, nil, []string{e.Node}, "%s", detail)
	}
	return res
}

// PlacementSample is one node's answer to GET /v1/providers/{id}/placement.
type PlacementSample struct {
	At       time.Time `json:"at"`
	Observer string    `json:"observer"`
	Provider string    `json:"provider"`
	// Node is the owner the observer named; Err its error when it did not
	// answer one.
	Node string `json:"node,omitempty"`
	Err  string `json:"err,omitempty"`
}

// Placement checks one round of placement answers: for every provider every
// observer must name the same owner (two owners are two activations of one
// calendar), and when home names the provider's home-city node that owner
// must be it (calendars return to their city's node once it is back). An
// observer that could not answer counts as a disagreement.
func Placement(samples []PlacementSample, home map[string]string) Result {
	var res Result
	byProvider := map[string][]PlacementSample{}
	for _, s := range samples {
		byProvider[s.Provider] = append(byProvider[s.Provider], s)
	}
	res.count("placement.providers", len(byProvider))
	res.count("placement.answers", len(samples))
	for _, p := range slices.Sorted(maps.Keys(byProvider)) {
		owners := map[string][]string{} // owner → observers
		var failed []string
		for _, s := range byProvider[p] {
			if s.Err != "" || s.Node == "" {
				failed = append(failed, fmt.Sprintf("%s: %s", s.Observer, s.Err))
				continue
			}
			owners[s.Node] = append(owners[s.Node], s.Observer)
		}
		var parts []string
		for _, o := range slices.Sorted(maps.Keys(owners)) {
			parts = append(parts, fmt.Sprintf("%s according to %s", o, strings.Join(owners[o], ", ")))
		}
		switch {
		case len(owners) > 1 || len(failed) > 0:
			if len(failed) > 0 {
				parts = append(parts, "no answer from "+strings.Join(failed, "; "))
			}
			res.violate(CheckPlacement, nil, append([]string{p}, slices.Sorted(maps.Keys(owners))...),
				"provider %s: the nodes disagree on where its calendar lives: %s", p, strings.Join(parts, "; "))
		case len(owners) == 1 && home[p] != "":
			for o := range owners {
				if o != home[p] {
					res.violate(CheckPlacement, nil, []string{p, o, home[p]},
						"provider %s: its calendar lives on %s, not on its home city's node %s", p, o, home[p])
				}
			}
		}
	}
	return res
}

// HostsCalendars checks that every node in nodes hosts at least one calendar
// actor (active counts them per node, from its barberpro_calendar_actors_active
// gauge; a node missing from active could not be asked).
func HostsCalendars(nodes []string, active map[string]int) Result {
	var res Result
	res.count("hosts-calendars.nodes", len(nodes))
	for _, n := range nodes {
		a, ok := active[n]
		switch {
		case !ok:
			res.violate(CheckHostsCalendars, nil, []string{n}, "node %s: its calendar actor count could not be read", n)
		case a == 0:
			res.violate(CheckHostsCalendars, nil, []string{n}, "node %s hosts no calendar actor", n)
		}
	}
	return res
}

// DiskWindow is when a node's data dir was full and when it had room again.
type DiskWindow struct {
	Node string
	// Full is when the disk was seen full (zero: it never filled); Grown when
	// it was given room again; Ready when the node answered /readyz 200 after
	// that (zero: not within the fault's bound).
	Full, Grown, Ready time.Time
	// Restarted is true when the node had died and the harness started it
	// again (the no-crash check reports the death).
	Restarted bool
}

// codeStorageUnavailable is the problem code of a node that cannot write.
const codeStorageUnavailable = "storage_unavailable"

// DiskFull checks what the writes sent to a node whose disk was full got, and
// what they got once it had room again:
//   - while full (from Full to Grown), the node must have said so: at least one
//     write answered 503 storage_unavailable, unless every write found it
//     unreachable (the no-crash check judges a node that died); and no write
//     may get a 5xx other than 503 (an unhandled storage error);
//   - after Grown it must be ready again (Ready) and accept a write sent to it
//     within bound.
//
// A window that never filled, or with no write sent while full, is
// inconclusive.
func DiskFull(ops []history.Op, windows []DiskWindow, bound time.Duration) Result {
	var res Result
	res.count("disk-full.nodes", len(windows))
	isWrite := func(op history.Op) bool {
		return op.Kind == history.Book || op.Kind == history.Cancel || op.Kind == history.Reschedule
	}
	for _, w := range windows {
		if w.Full.IsZero() {
			res.Inconclusive = append(res.Inconclusive, Violation{Check: CheckDiskFull, Refs: []string{w.Node},
				Detail: fmt.Sprintf("node %s: its disk never filled", w.Node)})
			continue
		}
		var full, unreachable, said, bad []int
		classes := map[string]int{}
		for _, op := range ops {
			if op.Node != w.Node || !isWrite(op) || op.Call.Before(w.Full) || (!w.Grown.IsZero() && !op.Call.Before(w.Grown)) {
				continue
			}
			full = append(full, op.ID)
			classes[answerLabel(op)]++
			switch {
			case op.Code == codeStorageUnavailable:
				said = append(said, op.ID)
			case op.Code == "unreachable":
				unreachable = append(unreachable, op.ID)
			case op.Status >= 500 && op.Status != 503:
				bad = append(bad, op.ID)
			}
		}
		res.count("disk-full.writes_while_full", len(full))
		res.count("disk-full.storage_unavailable", len(said))
		summary := summarize(classes)
		switch {
		case len(full) == 0:
			res.Inconclusive = append(res.Inconclusive, Violation{Check: CheckDiskFull, Refs: []string{w.Node},
				Detail: fmt.Sprintf("node %s: no write was sent to it while its disk was full", w.Node)})
		case len(said) == 0 && len(unreachable) < len(full):
			res.violate(CheckDiskFull, firstN(full, 20), []string{w.Node},
				"node %s never answered 503 %s while its disk was full (%v): its %d writes got %s",
				w.Node, codeStorageUnavailable, windowLen(w), len(full), summary)
		}
		if len(bad) > 0 {
			res.violate(CheckDiskFull, firstN(bad, 20), []string{w.Node},
				"node %s answered %d writes with a 5xx other than 503 while its disk was full (writes: %s)", w.Node, len(bad), summary)
		}
		if w.Grown.IsZero() {
			res.violate(CheckDiskFull, nil, []string{w.Node}, "node %s: its disk was never given room again", w.Node)
			continue
		}
		switch {
		case w.Restarted:
			res.violate(CheckDiskFull, nil, []string{w.Node}, "node %s had died while its disk was full and had to be restarted", w.Node)
		case w.Ready.IsZero():
			res.violate(CheckDiskFull, nil, []string{w.Node}, "node %s was not ready again after its disk was grown at %s",
				w.Node, w.Grown.UTC().Format("15:04:05.000"))
		}
		deadline := w.Grown.Add(bound)
		var after []int
		afterClasses := map[string]int{}
		took := false
		for _, op := range ops {
			if op.Node != w.Node || !isWrite(op) || op.Call.Before(w.Grown) || op.Call.After(deadline) {
				continue
			}
			if effectiveOutcome(op) == history.OK && !op.Return.IsZero() && !op.Return.After(deadline) {
				took = true
				break
			}
			after = append(after, op.ID)
			afterClasses[answerLabel(op)]++
		}
		if !took {
			if len(after) == 0 {
				res.violate(CheckDiskFull, nil, []string{w.Node},
					"node %s: no write was sent to it within %v of its disk being grown, so nothing shows it takes writes again", w.Node, bound)
			} else {
				res.violate(CheckDiskFull, firstN(after, 20), []string{w.Node},
					"node %s took no write within %v of its disk being grown: %d attempts got %s", w.Node, bound, len(after), summarize(afterClasses))
			}
		}
	}
	return res
}

// answerLabel names what an operation got: "ok", "503 storage_unavailable",
// "unreachable", "timeout".
func answerLabel(op history.Op) string {
	switch {
	case op.Outcome == history.OK:
		return "ok"
	case op.Status != 0 && op.Code != "":
		return fmt.Sprintf("%d %s", op.Status, op.Code)
	case op.Status != 0:
		return fmt.Sprintf("%d", op.Status)
	case op.Code != "":
		return op.Code
	}
	return "unanswered"
}

func windowLen(w DiskWindow) time.Duration {
	if w.Grown.IsZero() {
		return 0
	}
	return w.Grown.Sub(w.Full).Round(100 * time.Millisecond)
}

func summarize(classes map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(classes)) {
		parts = append(parts, fmt.Sprintf("%d %s", classes[k], k))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func firstN(ids []int, n int) []int {
	if len(ids) > n {
		return ids[:n]
	}
	return ids
}
