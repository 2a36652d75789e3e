// Command anchor runs etcd and barberpro side by side on this machine, in the
// layouts of issue 11 (1 member / 1 node; 3 members / 3 Argentine nodes), with
// the same closed-loop load shape and client counts, and prints one table with
// the ratios barberpro/etcd, and JSON. `make bench-vs-etcd` runs it; only ratios
// from one run compare (docs/PERFORMANCE.md).
//
// It is its own Go module so that etcd never enters the product's module graph.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the harness's command line.
type config struct {
	barberpro string        // barberpro binary
	profile   string        // barberpro's timing preset (BARBERPRO_PROFILE of its nodes)
	etcd      string        // etcd binary (cmd/etcd of this module)
	duration  time.Duration // length of each run
	clients   []int         // client counts of the write rows; reads and spread rows use the largest
	layouts   []int         // node counts: 1 and/or 3
	systems   []string      // "etcd", "barberpro"
	rounds    int           // times every row runs on each system
	jsonOut   string        // JSON report file; "-" stdout, "" none
}

// parseFlags reads the command line; usage and errors go to stderr.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var clients, layouts, systems string
	fs := flag.NewFlagSet("anchor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.barberpro, "barberpro", "../../bin/barberpro", "barberpro binary (make build)")
	fs.StringVar(&c.profile, "barberpro-profile", "lan", "barberpro's timing preset: lan (its default, as etcd runs its own) or local (the one for tests: a Raft snapshot, a copy of fsm.db, every 1024 entries)")
	fs.StringVar(&c.etcd, "etcd", "bin/etcd", "etcd binary (go build -o bin/etcd ./cmd/etcd in this module)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of each run (each row runs once per system)")
	fs.StringVar(&clients, "clients", "1,100", "client counts of the write rows; the read and spread rows use the largest")
	fs.StringVar(&layouts, "layouts", "1,3", "layouts to run: 1 (one member / one node) and/or 3 (three members / three ar nodes)")
	fs.StringVar(&systems, "systems", "etcd,barberpro", "systems to run (the other's cells say not run)")
	fs.IntVar(&c.rounds, "rounds", 1, "run every layout on both systems this many times, alternating which goes first; a row shows its median round (by ratio) and every round's ratio")
	fs.StringVar(&c.jsonOut, "json", "reports/bench-vs-etcd.json", `write the report as JSON to this file ("-": standard output after the table; "": none)`)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var err error
	if c.clients, err = intList(clients); err != nil {
		return c, fmt.Errorf("--clients: %w", err)
	}
	if c.layouts, err = intList(layouts); err != nil {
		return c, fmt.Errorf("--layouts: %w", err)
	}
	for _, n := range c.layouts {
		if n != 1 && n != 3 {
			return c, fmt.Errorf("--layouts: %d (want 1 or 3)", n)
		}
	}
	c.systems = strings.Split(systems, ",")
	for _, s := range c.systems {
		if s != "etcd" && s != "barberpro" {
			return c, fmt.Errorf("--systems: %q (want etcd and/or barberpro)", s)
		}
	}
	if c.profile != "lan" && c.profile != "local" {
		return c, fmt.Errorf("--barberpro-profile: %q (want lan or local)", c.profile)
	}
	if c.duration <= 0 {
		return c, errors.New("--duration must be positive")
	}
	if c.rounds < 1 {
		return c, errors.New("--rounds must be at least 1")
	}
	return c, nil
}

// intList parses "1,100" into positive ints.
func intList(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// plan is the table's rows, empty of figures: per layout, writes at each client
// count on the first node; on three nodes, writes at the largest count spread
// over the nodes; then reads at the largest count, first node (and spread).
func plan(layouts, clients []int) []Row {
	most := slices.Max(clients)
	var rows []Row
	for _, n := range layouts {
		name := "1 member / 1 node"
		if n > 1 {
			name = fmt.Sprintf("%d members / %d ar nodes", n, n)
		}
		row := func(load string, c int, spread bool) {
			rows = append(rows, Row{Layout: name, Nodes: n, Load: load, Clients: c, Spread: spread})
		}
		for _, c := range clients {
			row(loadWrites, c, false)
		}
		if n > 1 {
			row(loadWrites, most, true)
		}
		row(loadReads, most, false)
		if n > 1 {
			row(loadReads, most, true)
		}
	}
	return rows
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "anchor:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted: every process stopped, temp dirs removed")
		}
		fmt.Fprintln(os.Stderr, "anchor:", err)
		stop()
		os.Exit(1)
	}
}

// run runs every row on each system, one system and one layout at a time (the
// other's processes stopped), then prints the table and writes the JSON.
func run(ctx context.Context, cfg config, stdout, progress io.Writer) error {
	for _, s := range cfg.systems {
		bin := map[string]string{"etcd": cfg.etcd, "barberpro": cfg.barberpro}[s]
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s binary: %w (make bench-vs-etcd builds both)", s, err)
		}
	}
	dir, err := os.MkdirTemp("", "anchor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	rep := Report{Started: time.Now(), RowDuration: cfg.duration, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(),
		LoadStart: loadAverage(), EtcdVersion: "not run", BarberProVersion: "not run", BarberProProfile: cfg.profile, Rows: plan(cfg.layouts, cfg.clients)}
	for i := range rep.Rows {
		rep.Rows[i].Etcd.Note, rep.Rows[i].BarberPro.Note = "not run", "not run"
	}
	if slices.Contains(cfg.systems, "etcd") {
		rep.EtcdVersion = etcdVersion(ctx, cfg.etcd)
	}
	if slices.Contains(cfg.systems, "barberpro") {
		rep.BarberProVersion = barberproVersion(ctx, cfg.barberpro)
	}
	for round := range cfg.rounds {
		if cfg.rounds > 1 {
			fmt.Fprintf(progress, "round %d of %d\n", round+1, cfg.rounds)
		}
		for _, n := range cfg.layouts {
			var rows []*Row
			for i := range rep.Rows {
				if rep.Rows[i].Nodes == n {
					rows = append(rows, &rep.Rows[i])
				}
			}
			for _, s := range roundOrder(cfg.systems, round) {
				dir := filepath.Join(dir, fmt.Sprintf("%s-%d-%d", s, n, round))
				runSystem := map[string]func(context.Context, config, string, int, []*Row, io.Writer) error{
					"etcd": runEtcd, "barberpro": runBarberPro}[s]
				err := runSystem(ctx, cfg, dir, n, rows, progress)
				_ = os.RemoveAll(dir) // its processes are stopped: rounds do not pile up data dirs
				if err != nil {
					return err
				}
			}
		}
		for i := range rep.Rows {
			rep.Rows[i].endRound()
		}
	}
	rep.LoadEnd = loadAverage()

	fmt.Fprintln(stdout)
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	return writeJSON(cfg.jsonOut, stdout, rep)
}

// roundOrder is the order the systems run in a round: as given in even
// rounds, reversed in odd ones, so neither always runs on a machine the other
// just warmed (or loaded).
func roundOrder(systems []string, round int) []string {
	out := slices.Clone(systems)
	if round%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// runEtcd starts the n-member layout and fills the etcd side of rows. A layout
// that does not start marks its rows failed; only the end of ctx stops the run.
func runEtcd(ctx context.Context, cfg config, dir string, n int, rows []*Row, progress io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(progress, "etcd: starting %d member(s)\n", n)
	c, err := startEtcd(ctx, cfg.etcd, dir, n)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintln(progress, "etcd:", err)
		for _, r := range rows {
			r.Etcd = Measure{Note: "did not start"}
		}
		return nil
	}
	defer c.stop()
	for _, r := range rows {
		op := opPut
		if r.Load == loadReads {
			op = opRange
		}
		m, err := etcdLoad{Endpoints: c.endpoints, Spread: r.Spread, Clients: r.Clients, Duration: cfg.duration, Op: op}.run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			fmt.Fprintln(progress, "etcd:", err)
			m = Measure{Note: "failed"}
		}
		r.Etcd = m
		fmt.Fprintf(progress, "etcd      %-60s %-12s %s\n", r.Setup(), op, m.cell())
	}
	return nil
}

// runBarberPro starts the n-node layout and fills the barberpro side of rows, one
// `barberpro bench` per load kind and spread, at that group's client counts.
func runBarberPro(ctx context.Context, cfg config, dir string, n int, rows []*Row, progress io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(progress, "barberpro: starting %d node(s)\n", n)
	c, err := startBarberPro(ctx, cfg.barberpro, cfg.profile, dir, n)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintln(progress, "barberpro:", err)
		for _, r := range rows {
			r.BarberPro = Measure{Note: "did not start"}
		}
		return nil
	}
	defer c.stop()
	reads := benchSupports(ctx, cfg.barberpro, "availability")
	for _, g := range groupRows(rows) {
		mode := "spread"
		if g[0].Load == loadReads {
			mode = "availability"
			if !reads {
				for _, r := range g {
					r.BarberPro = Measure{Note: "not supported by this build"}
				}
				continue
			}
		}
		users := make([]int, len(g))
		for i, r := range g {
			users[i] = r.Clients
		}
		ms, err := c.bench(ctx, mode, users, g[0].Spread, cfg.duration)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for i, r := range g {
			if err != nil {
				r.BarberPro = Measure{Note: "failed"}
			} else {
				r.BarberPro = ms[i]
			}
			fmt.Fprintf(progress, "barberpro %-60s %-12s %s\n", r.Setup(), mode, r.BarberPro.cell())
		}
		if err != nil {
			fmt.Fprintln(progress, "barberpro:", err)
		}
	}
	return nil
}

// groupRows groups rows of one load kind and spread, in order of first appearance.
func groupRows(rows []*Row) [][]*Row {
	var groups [][]*Row
	for _, r := range rows {
		i := slices.IndexFunc(groups, func(g []*Row) bool { return g[0].Load == r.Load && g[0].Spread == r.Spread })
		if i < 0 {
			groups = append(groups, []*Row{r})
		} else {
			groups[i] = append(groups[i], r)
		}
	}
	return groups
}

// writeJSON writes rep, indented, to path ("-": w; "": nowhere).
func writeJSON(path string, w io.Writer, rep Report) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = w.Write(b)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nJSON: %s\n", path)
	return nil
}

// loadAverage is the machine's 1-minute load average (/proc/loadavg), 0 where
// there is none: a run's figures move with what else the machine runs.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), " ")
	f, _ := strconv.ParseFloat(first, 64)
	return f
}
