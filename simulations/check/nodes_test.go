package check

import (
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/simulations/history"
)

func TestNoCrash(t *testing.T) {
	exits := []Exit{
		{Node: "ba-1", At: at(1000), Started: at(0), Err: "signal: killed", Expected: true},
		{Node: "cba-1", At: at(3000), Started: at(0), Err: "signal: terminated", Expected: true},
		{Node: "ros-1", At: at(5000), Started: at(0), Err: "signal: killed", Expected: true}, // a crash failpoint it was started with
	}
	if res := NoCrash(exits); !res.OK() {
		t.Fatalf("want OK, got %v", res.Violations)
	}
	exits = append(exits, Exit{Node: "lp-1", At: at(7000), Started: at(2000), Err: "exit status 2",
		Panic: "panic: storage: apply: no space left on device", Log: "data/lp-1.log"})
	res := NoCrash(exits)
	wantViolation(t, res, CheckNoCrash, nil, "lp-1")
	for _, want := range []string{"exit status 2", "after running 5s", "no space left", "data/lp-1.log"} {
		if !strings.Contains(res.Violations[0].Detail, want) {
			t.Errorf("detail %q lacks %q", res.Violations[0].Detail, want)
		}
	}
}

func TestPlacement(t *testing.T) {
	ps := func(obs, prov, node string) PlacementSample {
		return PlacementSample{At: at(0), Observer: obs, Provider: prov, Node: node}
	}
	home := map[string]string{"p-ba": "ba-1", "p-cba": "cba-1"}
	agree := []PlacementSample{
		ps("ba-1", "p-ba", "ba-1"), ps("cba-1", "p-ba", "ba-1"), ps("ros-1", "p-ba", "ba-1"),
		ps("ba-1", "p-cba", "cba-1"), ps("cba-1", "p-cba", "cba-1"), ps("ros-1", "p-cba", "cba-1"),
	}
	if res := Placement(agree, home); !res.OK() {
		t.Fatalf("want OK, got %v", res.Violations)
	}
	tests := []struct {
		name    string
		samples []PlacementSample
		detail  string
		refs    []string
	}{
		{
			name: "split after a partition: two owners",
			samples: []PlacementSample{
				ps("ba-1", "p-ba", "ba-1"), ps("cba-1", "p-ba", "ros-1"), ps("ros-1", "p-ba", "ros-1"),
			},
			detail: "ba-1 according to ba-1; ros-1 according to cba-1, ros-1", refs: []string{"p-ba", "ba-1", "ros-1"},
		},
		{
			name:    "an observer without an answer",
			samples: []PlacementSample{ps("ba-1", "p-ba", "ba-1"), {Observer: "cba-1", Provider: "p-ba", Err: "503 unavailable"}},
			detail:  "no answer from cba-1: 503 unavailable", refs: []string{"p-ba"},
		},
		{
			name:    "agreed but not home",
			samples: []PlacementSample{ps("ba-1", "p-ba", "ros-1"), ps("cba-1", "p-ba", "ros-1")},
			detail:  "not on its home city's node ba-1", refs: []string{"p-ba", "ros-1", "ba-1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Placement(tt.samples, home)
			wantViolation(t, res, CheckPlacement, nil, tt.refs...)
			if !strings.Contains(res.Violations[0].Detail, tt.detail) {
				t.Fatalf("detail %q lacks %q", res.Violations[0].Detail, tt.detail)
			}
		})
	}
}

func TestHostsCalendars(t *testing.T) {
	nodes := []string{"ba-1", "cba-1", "ros-1"}
	if res := HostsCalendars(nodes, map[string]int{"ba-1": 1, "cba-1": 2, "ros-1": 1}); !res.OK() {
		t.Fatalf("want OK, got %v", res.Violations)
	}
	res := HostsCalendars(nodes, map[string]int{"ba-1": 3, "cba-1": 0})
	wantViolation(t, res, CheckHostsCalendars, nil, "cba-1")
	wantViolation(t, res, CheckHostsCalendars, nil, "ros-1")
}

func TestDiskFull(t *testing.T) {
	on := func(op history.Op, node string) history.Op { op.Node = node; return op }
	unreachable := func(op history.Op, call int) history.Op {
		return fail(op, call, call+1, 0, "unreachable")
	}
	w := DiskWindow{Node: "ba-1", Full: at(1000), Grown: at(5000), Ready: at(5500)}
	bound := 3 * time.Second
	good := hist(
		on(ok(book(0, 30, "k0"), 500, 600, "A"), "ba-1"),                                   // 0: before: not judged
		on(fail(book(30, 60, "k1"), 1200, 1300, 503, codeStorageUnavailable), "ba-1"),      // 1: said so
		on(fail(cancelOf("A"), 1400, 1500, 503, codeStorageUnavailable), "ba-1"),           // 2
		on(ok(get("A"), 1600, 1700, ""), "ba-1"),                                           // 3: a read: not judged
		on(fail(book(30, 60, "k2"), 2000, 2100, 503, codeJurisdictionUnavailable), "ba-1"), // 4: no leader: allowed
		on(ok(book(60, 90, "k3"), 2000, 2100, "B"), "cba-1"),                               // 5: another node
		on(ok(book(90, 120, "k4"), 6000, 6100, "C"), "ba-1"),                               // 6: took a write again
	)
	if res := DiskFull(good, []DiskWindow{w}, bound); !res.Clean() {
		t.Fatalf("want clean, got %v %v", res.Violations, res.Inconclusive)
	}
	// The old code: a panic, the node gone.
	crashed := hist(
		on(lost(book(30, 60, "k1"), 1200), "ba-1"),
		on(unreachable(book(30, 60, "k1"), 1500), "ba-1"),
		on(unreachable(book(60, 90, "k2"), 1600), "ba-1"),
		on(ok(book(90, 120, "k4"), 6000, 6100, "C"), "ba-1"),
	)
	res := DiskFull(crashed, []DiskWindow{w}, bound)
	wantViolation(t, res, CheckDiskFull, []int{0, 1, 2}, "ba-1")
	if !strings.Contains(res.Violations[0].Detail, "never answered 503 storage_unavailable") {
		t.Errorf("detail %q", res.Violations[0].Detail)
	}
	// A full disk reported as a missing leader is not said.
	noLeader := hist(
		on(fail(book(30, 60, "k1"), 1200, 1300, 503, codeJurisdictionUnavailable), "ba-1"),
		on(ok(book(90, 120, "k4"), 6000, 6100, "C"), "ba-1"),
	)
	noLeader[0].Outcome = history.Unknown
	res = DiskFull(noLeader, []DiskWindow{w}, bound)
	wantViolation(t, res, CheckDiskFull, []int{0}, "ba-1")
	if !strings.Contains(res.Violations[0].Detail, "1 503 jurisdiction_unavailable") {
		t.Errorf("detail %q", res.Violations[0].Detail)
	}
	// Dead the whole time: unreachable only is the no-crash check's business,
	// but a node the harness had to restart did not resume by itself.
	if res := DiskFull(crashed[1:], []DiskWindow{w}, bound); !res.OK() {
		t.Fatalf("unreachable only: want OK, got %v", res.Violations)
	}
	restarted := w
	restarted.Restarted, restarted.Ready = true, time.Time{}
	res = DiskFull(crashed[1:], []DiskWindow{restarted}, bound)
	if len(res.Violations) != 1 || !strings.Contains(res.Violations[0].Detail, "had to be restarted") {
		t.Fatalf("restarted: %v", res.Violations)
	}
	// A 500 while full, and no write taken after the grow.
	broken := hist(
		on(fail(book(30, 60, "k1"), 1200, 1300, 503, codeStorageUnavailable), "ba-1"),
		on(fail(book(60, 90, "k2"), 1300, 1400, 500, "internal"), "ba-1"),
		on(fail(book(90, 120, "k3"), 6000, 6100, 503, codeStorageUnavailable), "ba-1"),
		on(ok(book(90, 120, "k4"), 9000, 9100, "C"), "ba-1"), // too late
	)
	res = DiskFull(broken, []DiskWindow{{Node: "ba-1", Full: at(1000), Grown: at(5000)}}, bound)
	wantViolation(t, res, CheckDiskFull, []int{1}, "ba-1")
	wantViolation(t, res, CheckDiskFull, []int{2}, "ba-1")
	found := false
	for _, v := range res.Violations {
		found = found || strings.Contains(v.Detail, "not ready again")
	}
	if !found {
		t.Errorf("no violation for a node not ready again: %v", res.Violations)
	}
	// Never filled, or nothing sent while full: inconclusive, not a pass.
	res = DiskFull(good, []DiskWindow{{Node: "ba-1"}, {Node: "lp-1", Full: at(1000), Grown: at(5000), Ready: at(5100)}}, bound)
	if len(res.Inconclusive) != 2 || res.Clean() {
		t.Fatalf("want 2 inconclusive, got %v / %v", res.Inconclusive, res.Violations)
	}
}
