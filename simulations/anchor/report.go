package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Measure is what one system did in one row of the table.
type Measure struct {
	OK           int            `json:"ok"`
	Errors       int            `json:"errors"`
	Codes        map[string]int `json:"codes,omitempty"`
	OpsPerSecond float64        `json:"ops_per_second"`
	P50          time.Duration  `json:"p50_ns"`
	P99          time.Duration  `json:"p99_ns"`
	// Note, when set, says why the row has no figures for this system (not
	// supported by this build, the run failed, not asked for).
	Note string `json:"note,omitempty"`
}

// measured reports whether m holds figures to compare.
func (m Measure) measured() bool { return m.Note == "" && m.OK > 0 }

// Load kinds of a Row.
const (
	loadWrites = "writes" // etcd put of a 256-byte value vs a barberpro booking
	loadReads  = "reads"  // etcd linearizable range vs barberpro availability
)

// Row is one line of the table: a layout, a load kind and a client count, run on
// both systems.
type Row struct {
	// Layout names the layout, e.g. "3 members / 3 ar nodes".
	Layout string `json:"layout"`
	// Nodes is the number of etcd members and of barberpro nodes.
	Nodes int `json:"nodes"`
	// Load is loadWrites or loadReads.
	Load    string `json:"load"`
	Clients int    `json:"clients"`
	// Spread: clients round-robin over every node, else all on the first.
	Spread bool `json:"spread"`
	// Etcd and BarberPro are the two systems' figures: of the round whose
	// ratio is the median of the rounds' (the lower middle one of an even
	// number), so the row's cells and ratio come from one pair of runs.
	Etcd      Measure `json:"etcd"`
	BarberPro Measure `json:"barberpro"`
	// Rounds holds every round's pair of figures, in order (--rounds).
	Rounds []Round `json:"rounds,omitempty"`
}

// Round is one round's figures of a row: the two systems ran back to back
// (in one order in even rounds, the other in odd ones).
type Round struct {
	Etcd      Measure `json:"etcd"`
	BarberPro Measure `json:"barberpro"`
}

// endRound keeps the row's figures of the round that ended as one of its
// Rounds and makes the row's cells those of the median round so far.
func (r *Row) endRound() {
	r.Rounds = append(r.Rounds, Round{Etcd: r.Etcd, BarberPro: r.BarberPro})
	type ranked struct {
		i     int
		ratio float64
	}
	var rs []ranked
	for i, rd := range r.Rounds {
		if v, ok := (Row{Etcd: rd.Etcd, BarberPro: rd.BarberPro}).Ratio(); ok {
			rs = append(rs, ranked{i, v})
		}
	}
	pick := len(r.Rounds) - 1 // no round compares: the last one's cells
	if len(rs) > 0 {
		slices.SortStableFunc(rs, func(a, b ranked) int { return cmp.Compare(a.ratio, b.ratio) })
		pick = rs[(len(rs)-1)/2].i
	}
	r.Etcd, r.BarberPro = r.Rounds[pick].Etcd, r.Rounds[pick].BarberPro
}

// roundRatios is the rounds' ratios in order, "0.64, 0.71, 0.60" ("—" for a
// round without one).
func (r Row) roundRatios() string {
	cells := make([]string, len(r.Rounds))
	for i, rd := range r.Rounds {
		cells[i] = ratioCell(Row{Etcd: rd.Etcd, BarberPro: rd.BarberPro}.Ratio())
	}
	return strings.Join(cells, ", ")
}

// Setup is the row's first column, e.g. "3 members / 3 ar nodes, 100 clients,
// spread over the 3 nodes".
func (r Row) Setup() string {
	s := fmt.Sprintf("%s, %d client", r.Layout, r.Clients)
	if r.Clients != 1 {
		s += "s"
	}
	if r.Spread {
		s += fmt.Sprintf(", spread over the %d nodes", r.Nodes)
	}
	return s
}

// Ratio is barberpro's throughput over etcd's (above 1: barberpro does more per
// second); false when either side has no figures.
func (r Row) Ratio() (float64, bool) {
	if !r.Etcd.measured() || !r.BarberPro.measured() || r.Etcd.OpsPerSecond == 0 {
		return 0, false
	}
	return r.BarberPro.OpsPerSecond / r.Etcd.OpsPerSecond, true
}

// P50Ratio is barberpro's median latency over etcd's (below 1: barberpro answers
// sooner); false when either side has no figures.
func (r Row) P50Ratio() (float64, bool) {
	if !r.Etcd.measured() || !r.BarberPro.measured() || r.Etcd.P50 == 0 {
		return 0, false
	}
	return float64(r.BarberPro.P50) / float64(r.Etcd.P50), true
}

// MarshalJSON adds the setup and the ratios (null when there are none).
func (r Row) MarshalJSON() ([]byte, error) {
	type plain Row
	out := struct {
		plain
		Setup    string   `json:"setup"`
		Ratio    *float64 `json:"ratio"`
		P50Ratio *float64 `json:"p50_ratio"`
	}{plain: plain(r), Setup: r.Setup()}
	if v, ok := r.Ratio(); ok {
		out.Ratio = &v
	}
	if v, ok := r.P50Ratio(); ok {
		out.P50Ratio = &v
	}
	return json.Marshal(out)
}

// Report is one run of the harness: the table's rows and what they ran on.
type Report struct {
	Started     time.Time     `json:"started"`
	RowDuration time.Duration `json:"row_duration_ns"`
	CPUs        int           `json:"cpus"`
	GoVersion   string        `json:"go_version"`
	// LoadStart and LoadEnd are the machine's 1-minute load average before the
	// first run and after the last (0: unknown).
	LoadStart        float64 `json:"load_average_start"`
	LoadEnd          float64 `json:"load_average_end"`
	EtcdVersion      string  `json:"etcd_version"`
	BarberProVersion string  `json:"barberpro_version"`
	// BarberProProfile is the nodes' timing preset (lan, local).
	BarberProProfile string `json:"barberpro_profile"`
	Rows             []Row  `json:"rows"`
}

// WriteTable writes the report as a Markdown table, with a line saying what ran.
func (rep Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	profile := ""
	if rep.BarberProProfile != "" {
		profile = " (profile " + rep.BarberProProfile + ")"
	}
	fmt.Fprintf(&b, "etcd %s vs barberpro %s%s, %s, %d CPUs (load average %.2f at the start, %.2f at the end), %v per run, started %s\n\n",
		rep.EtcdVersion, rep.BarberProVersion, profile, rep.GoVersion, rep.CPUs, rep.LoadStart, rep.LoadEnd, rep.RowDuration,
		rep.Started.UTC().Format(time.RFC3339))
	rounds := slices.ContainsFunc(rep.Rows, func(r Row) bool { return len(r.Rounds) > 1 })
	b.WriteString("| setup | load | etcd | barberpro | ratio | p50 ratio |")
	if rounds {
		b.WriteString(" ratio of each round |\n|---|---|---|---|---|---|---|\n")
	} else {
		b.WriteString("\n|---|---|---|---|---|---|\n")
	}
	for _, r := range rep.Rows {
		load := "put / booking"
		if r.Load == loadReads {
			load = "range / availability"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |", r.Setup(), load,
			r.Etcd.cell(), r.BarberPro.cell(), ratioCell(r.Ratio()), ratioCell(r.P50Ratio()))
		if rounds {
			fmt.Fprintf(&b, " %s |", r.roundRatios())
		}
		b.WriteString("\n")
	}
	b.WriteString("\nratio: barberpro's ops/s over etcd's (above 1 is faster); p50 ratio: barberpro's median latency over etcd's (below 1 is faster).\n")
	if rounds {
		b.WriteString("With rounds, a row's figures are those of its median round (by ratio); the last column has every round's ratio.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cell is a measure in the table: "12,266/s, p50 0.50 ms, p99 21 ms".
func (m Measure) cell() string {
	if m.Note != "" {
		return m.Note
	}
	if m.OK == 0 {
		return fmt.Sprintf("no request answered, %d errors%s", m.Errors, m.codes())
	}
	s := fmt.Sprintf("%s/s, p50 %s, p99 %s", thousands(m.OpsPerSecond), millis(m.P50), millis(m.P99))
	if m.Errors > 0 {
		s += fmt.Sprintf(", %d errors%s", m.Errors, m.codes())
	}
	return s
}

// codes lists the error codes and their counts, e.g. " (503 jurisdiction_unavailable: 22)".
func (m Measure) codes() string {
	if len(m.Codes) == 0 {
		return ""
	}
	var cs []string
	for _, c := range slices.Sorted(maps.Keys(m.Codes)) {
		cs = append(cs, fmt.Sprintf("%s: %d", c, m.Codes[c]))
	}
	return " (" + strings.Join(cs, ", ") + ")"
}

// ratioCell is a ratio with two decimals, or "—".
func ratioCell(v float64, ok bool) string {
	if !ok {
		return "—"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// thousands rounds f to an integer with comma thousands separators.
func thousands(f float64) string {
	s := strconv.FormatInt(int64(f+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// millis is d in milliseconds with about three significant digits.
func millis(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return strconv.FormatFloat(ms, 'f', 2, 64) + " ms"
	case ms < 100:
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	}
}
