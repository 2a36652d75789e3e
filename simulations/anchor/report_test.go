package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func measure(ops float64, p50, p99 time.Duration) Measure {
	return Measure{OK: int(ops * 10), OpsPerSecond: ops, P50: p50, P99: p99}
}

func TestRow_Ratios(t *testing.T) {
	cases := []struct {
		name       string
		etcd, bp   Measure
		ratio, p50 float64
		ok         bool
	}{
		{"both measured", measure(2000, 500*time.Microsecond, time.Millisecond), measure(1000, time.Millisecond, 3*time.Millisecond), 0.5, 2, true},
		{"barberpro faster", measure(12266, 8*time.Millisecond, 21*time.Millisecond), measure(24532, 4*time.Millisecond, 10*time.Millisecond), 2, 0.5, true},
		{"barberpro not supported", measure(2000, time.Millisecond, time.Millisecond), Measure{Note: "not supported by this build"}, 0, 0, false},
		{"etcd answered nothing", Measure{Errors: 7}, measure(1000, time.Millisecond, time.Millisecond), 0, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Row{Etcd: c.etcd, BarberPro: c.bp}
			ratio, ok := r.Ratio()
			p50, ok2 := r.P50Ratio()
			if ok != c.ok || ok2 != c.ok || ratio != c.ratio || p50 != c.p50 {
				t.Fatalf("Ratio() = %v, %v; P50Ratio() = %v, %v; want %v, %v, %v", ratio, ok, p50, ok2, c.ratio, c.p50, c.ok)
			}
		})
	}
}

func TestReport_WriteTable(t *testing.T) {
	rep := Report{
		Started: time.Date(2026, 11, 28, 2, 0, 0, 0, time.UTC), RowDuration: 10 * time.Second, CPUs: 2,
		GoVersion: "go1.26.8", LoadStart: 0.5, LoadEnd: 13.76, EtcdVersion: "3.6.14", BarberProVersion: "abc123", BarberProProfile: "lan",
		Rows: []Row{
			{Layout: "1 member / 1 node", Nodes: 1, Load: loadWrites, Clients: 1,
				Etcd: measure(2018, 500*time.Microsecond, 1234*time.Microsecond), BarberPro: measure(843, 1150*time.Microsecond, 2*time.Millisecond)},
			{Layout: "3 members / 3 ar nodes", Nodes: 3, Load: loadWrites, Clients: 100, Spread: true,
				Etcd:      measure(6278, 15*time.Millisecond, 37*time.Millisecond),
				BarberPro: Measure{OK: 19320, Errors: 3, Codes: map[string]int{"transport": 1, "503 jurisdiction_unavailable": 2}, OpsPerSecond: 1932, P50: 40 * time.Millisecond, P99: 101 * time.Millisecond}},
			{Layout: "3 members / 3 ar nodes", Nodes: 3, Load: loadReads, Clients: 100,
				Etcd: measure(16500, 5*time.Millisecond, 20*time.Millisecond), BarberPro: Measure{Note: "not supported by this build"}},
		},
	}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"etcd 3.6.14 vs barberpro abc123 (profile lan), go1.26.8, 2 CPUs (load average 0.50 at the start, 13.76 at the end), 10s per run, started 2026-11-28T02:00:00Z",
		"| 1 member / 1 node, 1 client | put / booking | 2,018/s, p50 0.50 ms, p99 1.23 ms | 843/s, p50 1.15 ms, p99 2.00 ms | 0.42 | 2.30 |",
		"| 3 members / 3 ar nodes, 100 clients, spread over the 3 nodes | put / booking | 6,278/s, p50 15.0 ms, p99 37.0 ms | 1,932/s, p50 40.0 ms, p99 101 ms, 3 errors (503 jurisdiction_unavailable: 2, transport: 1) | 0.31 | 2.67 |",
		"| 3 members / 3 ar nodes, 100 clients | range / availability | 16,500/s, p50 5.00 ms, p99 20.0 ms | not supported by this build | — | — |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestReport_JSON(t *testing.T) {
	rep := Report{Rows: []Row{
		{Layout: "1 member / 1 node", Nodes: 1, Load: loadWrites, Clients: 100,
			Etcd: measure(4000, time.Millisecond, time.Millisecond), BarberPro: measure(5000, time.Millisecond, time.Millisecond)},
		{Layout: "1 member / 1 node", Nodes: 1, Load: loadReads, Clients: 100,
			Etcd: measure(4000, time.Millisecond, time.Millisecond), BarberPro: Measure{Note: "not supported by this build"}},
	}}
	var b bytes.Buffer
	if err := writeJSON("-", &b, rep); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Rows []struct {
			Setup     string   `json:"setup"`
			Ratio     *float64 `json:"ratio"`
			P50Ratio  *float64 `json:"p50_ratio"`
			Clients   int      `json:"clients"`
			BarberPro Measure  `json:"barberpro"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	if len(got.Rows) != 2 {
		t.Fatalf("%d rows, want 2", len(got.Rows))
	}
	r0, r1 := got.Rows[0], got.Rows[1]
	if r0.Setup != "1 member / 1 node, 100 clients" || r0.Clients != 100 || r0.Ratio == nil || *r0.Ratio != 1.25 || r0.P50Ratio == nil || *r0.P50Ratio != 1 {
		t.Errorf("row 0 = %+v", r0)
	}
	if r1.Ratio != nil || r1.P50Ratio != nil || r1.BarberPro.Note != "not supported by this build" {
		t.Errorf("row 1 = %+v, want no ratios and the note", r1)
	}
}

func TestPlan_Rows(t *testing.T) {
	var got []string
	for _, r := range plan([]int{1, 3}, []int{1, 100}) {
		got = append(got, r.Load+" "+r.Setup())
	}
	want := []string{
		"writes 1 member / 1 node, 1 client",
		"writes 1 member / 1 node, 100 clients",
		"reads 1 member / 1 node, 100 clients",
		"writes 3 members / 3 ar nodes, 1 client",
		"writes 3 members / 3 ar nodes, 100 clients",
		"writes 3 members / 3 ar nodes, 100 clients, spread over the 3 nodes",
		"reads 3 members / 3 ar nodes, 100 clients",
		"reads 3 members / 3 ar nodes, 100 clients, spread over the 3 nodes",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSummarize_NearestRank(t *testing.T) {
	lat := []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	m := summarize(lat, 2, 2*time.Second)
	if m.OK != 10 || m.Errors != 2 || m.OpsPerSecond != 5 || m.P50 != 5 || m.P99 != 10 {
		t.Errorf("summarize = %+v", m)
	}
	if m := summarize(nil, 0, time.Second); m.P50 != 0 || m.OpsPerSecond != 0 {
		t.Errorf("summarize(none) = %+v", m)
	}
}

// TestRow_RoundsShowTheMedianRound: with rounds, a row's cells are the two
// figures of its median round by ratio (the lower middle of an even count;
// rounds without a ratio left out), the table gains a column of every
// round's ratio, and the JSON keeps every round.
func TestRow_RoundsShowTheMedianRound(t *testing.T) {
	ms := time.Millisecond
	r := Row{Layout: "1 member / 1 node", Nodes: 1, Load: loadWrites, Clients: 100}
	for _, rd := range []Round{
		{measure(4000, ms, ms), measure(2000, 2*ms, ms)}, // 0.50
		{measure(5000, ms, ms), measure(4500, 3*ms, ms)}, // 0.90
		{measure(4000, ms, ms), Measure{Note: "failed"}}, // none
		{measure(3000, ms, ms), measure(2100, 4*ms, ms)}, // 0.70
	} {
		r.Etcd, r.BarberPro = rd.Etcd, rd.BarberPro
		r.endRound()
	}
	if got, ok := r.Ratio(); !ok || got != 0.7 || r.BarberPro.P50 != 4*ms {
		t.Fatalf("row after 4 rounds: ratio %v, %v, barberpro p50 %v; want 0.70 of the fourth round", got, ok, r.BarberPro.P50)
	}
	if got := r.roundRatios(); got != "0.50, 0.90, —, 0.70" {
		t.Errorf("roundRatios = %q", got)
	}
	var b bytes.Buffer
	if err := (Report{Rows: []Row{r}}).WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| ratio of each round |") || !strings.Contains(b.String(), "| 0.70 | 4.00 | 0.50, 0.90, —, 0.70 |") {
		t.Errorf("table:\n%s", b.String())
	}
	j, err := json.Marshal(r)
	if err != nil || strings.Count(string(j), `"barberpro":`) != 5 {
		t.Errorf("JSON keeps the row's and each round's figures: %s, %v", j, err)
	}
	// One round: the table has no rounds column.
	one := Row{Layout: "1 member / 1 node", Nodes: 1, Load: loadWrites, Clients: 1, Etcd: measure(100, ms, ms), BarberPro: measure(100, ms, ms)}
	one.endRound()
	b.Reset()
	if err := (Report{Rows: []Row{one}}).WriteTable(&b); err != nil || strings.Contains(b.String(), "each round") {
		t.Errorf("one round:\n%s %v", b.String(), err)
	}
}

func TestRoundOrder_Alternates(t *testing.T) {
	s := []string{"etcd", "barberpro"}
	if got := roundOrder(s, 0); !slices.Equal(got, s) {
		t.Errorf("round 0: %v", got)
	}
	if got := roundOrder(s, 1); !slices.Equal(got, []string{"barberpro", "etcd"}) || !slices.Equal(s, []string{"etcd", "barberpro"}) {
		t.Errorf("round 1: %v (given %v)", got, s)
	}
}

func TestParseFlags_Rounds(t *testing.T) {
	var stderr bytes.Buffer
	if c, err := parseFlags(nil, &stderr); err != nil || c.rounds != 1 {
		t.Errorf("default rounds = %d, %v; want 1", c.rounds, err)
	}
	if c, err := parseFlags([]string{"--rounds", "3"}, &stderr); err != nil || c.rounds != 3 {
		t.Errorf("--rounds 3 = %d, %v", c.rounds, err)
	}
	if _, err := parseFlags([]string{"--rounds", "0"}, &stderr); err == nil {
		t.Error("--rounds 0 accepted")
	}
}

// TestRunEtcd_RoundThatDidNotStartKeepsNoOldFigures: after endRound a row's
// Measure holds the median round's figures; a later round whose layout does
// not start must not keep them (in Rounds and the JSON's rounds[]) beside the
// note "did not start". The etcd binary does not exist: nothing is started.
func TestRunEtcd_RoundThatDidNotStartKeepsNoOldFigures(t *testing.T) {
	ms := time.Millisecond
	r := Row{Layout: "1 member / 1 node", Nodes: 1, Load: loadWrites, Clients: 100}
	r.Etcd, r.BarberPro = measure(4000, ms, ms), measure(2000, 2*ms, ms)
	r.endRound()
	cfg := config{etcd: filepath.Join(t.TempDir(), "no-such-etcd"), duration: time.Second}
	if err := runEtcd(context.Background(), cfg, t.TempDir(), 1, []*Row{&r}, io.Discard); err != nil {
		t.Fatal(err)
	}
	r.BarberPro = measure(2500, 2*ms, ms)
	r.endRound()
	if got := r.Rounds[1].Etcd; got.Note != "did not start" || got.OK != 0 || got.OpsPerSecond != 0 {
		t.Errorf("round 2's etcd = %+v; want only the note, not round 1's figures", got)
	}
}

// TestParseFlags_Profile: barberpro runs its production preset unless told,
// as etcd runs its defaults; only the two presets node start knows pass.
func TestParseFlags_Profile(t *testing.T) {
	var stderr bytes.Buffer
	if c, err := parseFlags(nil, &stderr); err != nil || c.profile != "lan" {
		t.Errorf("default profile = %q, %v; want lan", c.profile, err)
	}
	if c, err := parseFlags([]string{"--barberpro-profile", "local"}, &stderr); err != nil || c.profile != "local" {
		t.Errorf("--barberpro-profile local = %q, %v", c.profile, err)
	}
	if _, err := parseFlags([]string{"--barberpro-profile", "fast"}, &stderr); err == nil {
		t.Error("--barberpro-profile fast accepted")
	}
}
