package report_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/simulations/history"
	"github.com/barberpro/edge/simulations/report"
	"github.com/barberpro/edge/simulations/traffic"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// synthetic: provider A books OK every 100ms except between 10s and 13.5s (the
// fault at 10s..12s; the first OK write sent after 10s returns at 13.5s);
// provider B is untouched.
func synthetic() ([]history.Op, []traffic.Sample) {
	var ops []history.Op
	var ss []traffic.Sample
	add := func(p string, call, ret float64, o history.Outcome, code string) {
		op := history.Op{ID: len(ops), Kind: history.Book, ProviderID: p, Call: at(call), Outcome: o, Code: code}
		if o != history.Unknown {
			op.Return = at(ret)
		}
		ops = append(ops, op)
		s := traffic.Sample{Kind: "book", Call: at(call), Return: at(ret), Outcome: o, Code: code}
		ss = append(ss, s)
	}
	for i := 0; i < 200; i++ {
		c := float64(i) / 10
		switch {
		case c >= 10 && c < 13:
			add("A", c, c+2, history.Unknown, "timeout")
		case c >= 13 && c < 13.4:
			add("A", c, c+0.5, history.Fail, "jurisdiction_unavailable")
		case c >= 13.4 && c < 13.5:
			add("A", c, 13.5, history.OK, "")
		default:
			add("A", c, c+0.01, history.OK, "")
		}
		add("B", c, c+0.02, history.OK, "")
	}
	return ops, ss
}

func TestBuild_FaultRecoveryAndRates(t *testing.T) {
	ops, ss := synthetic()
	f := report.FaultRecord{Name: "kill", Describe: "kill -9 ba-1 (leader)", Injected: at(10), InjectDone: at(10), Healed: at(12), Affected: []string{"A"}}
	r := report.Build(report.Input{Scenario: "s", Seed: 3, Start: t0, End: at(20), Ops: ops, Samples: ss, Faults: []report.FaultRecord{f}})
	if len(r.Faults) != 1 {
		t.Fatal(r.Faults)
	}
	rf := r.Faults[0]
	// First OK write of A sent at or after 10s returned at 13.5s.
	if rf.Recovery != 3500*time.Millisecond {
		t.Errorf("recovery %v, want 3.5s", rf.Recovery)
	}
	if rf.RecoveryAfterHeal != 1500*time.Millisecond {
		t.Errorf("recovery after heal %v, want 1.5s", rf.RecoveryAfterHeal)
	}
	if got := report.Recovery(ops, "B", at(10)); got != 20*time.Millisecond {
		t.Errorf("B recovery %v, want 20ms", got)
	}
	if got := report.Recovery(ops, "A", at(19.95)); got != -1 {
		t.Errorf("no write after 19.95s: %v, want -1", got)
	}
	// Before: all 200 requests of [0,10) OK. During [10,12): A's 20 unknown, B's 20 OK.
	if rf.Before.Stats.Requests != 200 || rf.Before.OKRate != 1 {
		t.Errorf("before %+v", rf.Before)
	}
	if rf.During.Stats.Requests != 40 || rf.During.Stats.OK != 20 || rf.During.Stats.Unknown != 20 || rf.During.OKRate != 0.5 {
		t.Errorf("during %+v", rf.During)
	}
	// After [12,20): A 10 unknown (12..13), 4 refused, 1 ok, 65 ok; B 80 ok.
	if a := rf.After.Stats; a.Requests != 160 || a.Unknown != 10 || a.Fail != 4 || a.OK != 146 {
		t.Errorf("after %+v", a)
	}
	if r.Errors["timeout"] != 30 || r.Errors["jurisdiction_unavailable"] != 4 {
		t.Errorf("errors %v", r.Errors)
	}
	if r.Totals.Requests != 400 || r.Totals.Unknown != 30 {
		t.Errorf("totals %+v", r.Totals)
	}
	// Series: 20 whole seconds; second 5 has 10 A + 10 B OK.
	if len(r.Series) != 20 || r.Series[5].OK != 20 || r.Series[5].Throughput != 20 {
		t.Fatalf("series %d entries, [5]=%+v", len(r.Series), r.Series[5])
	}
	if r.Series[5].P99 != 20*time.Millisecond || r.Series[5].P50 != 10*time.Millisecond {
		t.Errorf("second 5 latency p50 %v p99 %v", r.Series[5].P50, r.Series[5].P99)
	}

	dir := t.TempDir()
	if err := r.WriteJSON(filepath.Join(dir, "report.json")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil || back["scenario"] != "s" {
		t.Fatalf("report.json: %v %v", err, back["scenario"])
	}
	if err := r.WriteChart(filepath.Join(dir, "chart.png")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "chart.png")); err != nil || fi.Size() < 1000 {
		t.Fatalf("chart: %v", err)
	}
	sum := r.Summary()
	for _, want := range []string{"seed=3", "kill -9 ba-1 (leader)", "3.50s", "timeout 30"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
}
