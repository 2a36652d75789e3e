package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/simulations/load"
	"github.com/barberpro/edge/storage/durable"
)

// Defaults of bench that depend on its mode.
const (
	benchCityUsers    = 10000
	benchCityDuration = 60 * time.Second
	benchDuration     = 10 * time.Second
)

var benchClosedUsers = []int{1, 16, 256}

func newBenchCmd() *cobra.Command {
	var (
		targets    string
		users      []int
		duration   time.Duration
		mode       string
		city       string
		asJSON     bool
		jsonFile   string
		quiet      bool
		tokenDir   string
		cpuProfile string
		think      time.Duration
		seed       uint64
		providers  int
		gcPercent  int
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Drive load at running nodes and report throughput, latency and the nodes' memory",
		Long: `Drive load at running nodes over their HTTP API and report what it measured; every
booking is a real commit, nothing is faked. Four modes (--mode):

  city (default)  a city's real traffic: --users people (default 10,000, for 60 s), each
                  an open-ended loop of an action and a pause (--think, the mean of an
                  exponential pause, default 5 s: 10,000 people send ~2,000 actions/s).
                  People are spread over the seed's cities as Buenos Aires 60 %, Córdoba
                  20 %, Rosario 15 %, La Plata 5 %, and each calls a node of its own city
                  (bench asks each --target which node and city it is: GET
                  /v1/cluster/status and /v1/cluster/members; a city without a node of its
                  own is served by any target). The action mix: 25 % provider listings of
                  the city, 50 % availability (a day of the next two weeks of one of the
                  city's providers), 5 % own bookings, 12 % bookings (availability, then
                  a free start of it), 4 % cancels and 4 % reschedules of the person's own
                  bookings (own bookings instead while the person has none). Setup creates
                  --providers load providers (default users/50) over the cities, through a
                  node of each. A progress line goes to stderr every second (not with
                  --json or --quiet). At the end: per route and city, requests, ok, 409s
                  (a slot someone else took: not errors), errors by status and code, and
                  p50/p95/p99/max of every answered request (fast 409s included, which
                  pull a busy route's p50 down). --seed makes every choice
                  repeatable.
  spread          closed loop: concurrent clients (--users, default 1,16,256, one run per
                  value, 10 s each) book distinct free slots as fast as they are answered,
                  each client on its own provider; bookings/s and p50/p90/p99.
  hot             the same, every client on one provider.
  availability    closed loop: each client reads its own provider's availability as fast
                  as it is answered; reads/s and p50/p90/p99.

Every run ends by reading each target's /metrics (public) for its resident memory
(process_resident_memory_bytes) and Go heap, reported per node. --json prints the
results as JSON: clients, mode, ok, conflicts, errors, codes, unfinished (requests
whose wait the run's end cut off: a node that never answers shows there),
ops_per_second (every mode), bookings_per_second (spread and hot), p50_ns, p90_ns, p95_ns, p99_ns, max_ns;
city runs add think_ns, seed, city_targets and routes (each route and city, and each
route over "all" cities); every run adds nodes (target, rss_bytes, heap_inuse_bytes,
heap_alloc_bytes). --json-file FILE writes the same JSON to FILE (once every run
ended, through a temporary file beside it: its directory must take a new file;
a failed or interrupted run leaves FILE as it was) and keeps the progress line
and the table on screen (unless --json).

Bench signs its own tokens with the cluster's token signing key (--token-dir, the
directory of ` + "`barberpro token init`" + `; the demo's is printed when it starts):
an operator's creates the providers, each client or person books as itself (its
token signed once and cached). The first request of each token a node has not seen
is charged to the bench's IP, and closed-loop clients send far above a person's
rate: run the nodes with --rate-limit inf --ip-rate-limit inf
(BARBERPRO_RATE_LIMIT=inf, BARBERPRO_IP_RATE_LIMIT=inf; ` + "`barberpro demo --no-rate-limits`" + `)
or the runs measure 429s (bench says so when it saw any).`,
		Example: "  barberpro bench --target http://127.0.0.11:8080,http://127.0.0.12:8080,http://127.0.0.13:8080,http://127.0.0.14:8080 --token-dir DIR/secrets/tokens --users 10000 --duration 60s\n" +
			"  barberpro bench --mode spread --target http://127.0.0.11:8080 --token-dir DIR/secrets/tokens --users 1,16,256 --duration 10s\n" +
			"  barberpro bench --mode availability --target http://127.0.0.11:8080 --token-dir DIR/secrets/tokens --users 100 --json",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			setGCPercent(gcPercent) // first: even a refused run has set it (TestGCPercentFlags)
			m := load.Mode(mode)
			if !slices.Contains(load.Modes, m) {
				return usagef("--mode %q: want city, spread, hot or availability", mode)
			}
			if targets == "" {
				return usagef("--target is required")
			}
			urls := strings.Split(targets, ",")
			for _, u := range urls {
				if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
					return usagef("--target %q: want a node URL, e.g. http://127.0.0.11:8080", u)
				}
			}
			if tokenDir == "" {
				return usagef("--token-dir is required: the directory holding the cluster's token signing key (barberpro token init --dir DIR)")
			}
			if !cmd.Flags().Changed("users") {
				users = benchClosedUsers
				if m == load.City {
					users = []int{benchCityUsers}
				}
			}
			for _, n := range users {
				if n <= 0 {
					return usagef("--users %d: want at least 1", n)
				}
			}
			if !cmd.Flags().Changed("duration") {
				duration = benchDuration
				if m == load.City {
					duration = benchCityDuration
				}
			}
			if duration <= 0 {
				return usagef("--duration %v: want more than 0", duration)
			}
			if think < 0 {
				return usagef("--think %v: want 0 (no pause) or more", think)
			}
			if providers < 0 {
				return usagef("--providers %d: want 0 (users/50) or more", providers)
			}
			signer, err := auth.LoadSigner(tokenDir)
			if err != nil {
				return usagef("--token-dir: %v", err)
			}
			if jsonFile != "" {
				if jsonFile, err = resultsPath(jsonFile); err != nil {
					return usagef("--json-file: %v", err)
				}
			}
			cfg := load.Config{
				Targets: urls, Duration: duration, Mode: m, City: city, Tokens: auth.NewTokenCache(signer, time.Hour),
				Think: think, Seed: seed, Providers: providers,
			}
			if think == 0 {
				cfg.Think = -1 // no pause
			}
			if !asJSON && !quiet {
				cfg.Progress = cmd.ErrOrStderr()
			}
			if cpuProfile != "" {
				// The bench shares the machine with the nodes it drives: what it
				// costs per request is part of every figure it prints.
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					f.Close()
					return err
				}
				err = runBench(cmd, cfg, users, asJSON, jsonFile)
				pprof.StopCPUProfile()
				if cerr := f.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("--cpuprofile: %w", cerr)
				}
				return err
			}
			return runBench(cmd, cfg, users, asJSON, jsonFile)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&targets, "target", "", "comma-separated node URLs, e.g. http://127.0.0.11:8080,http://127.0.0.12:8080 (city: give a node of each city)")
	fl.IntSliceVar(&users, "users", nil, "simulated people (city, default 10000) or concurrent clients (other modes, default 1,16,256); one run per value")
	fl.DurationVar(&duration, "duration", 0, "length of each run (default 60s for city, 10s for the other modes)")
	fl.StringVar(&mode, "mode", string(load.City), "city (a city's real traffic), spread (each client books its own provider), hot (all book one provider) or availability (each client reads its own provider's availability)")
	fl.StringVar(&city, "city", "buenos-aires", "city of the load providers (spread, hot, availability; city mode uses the seed's four)")
	fl.DurationVar(&think, "think", load.DefaultThink, "city: mean pause of a person between two actions (exponential; 0: none)")
	fl.Uint64Var(&seed, "seed", 1, "city: seed of every person's draws (actions, providers, days, slots, pauses)")
	fl.IntVar(&providers, "providers", 0, "city: load providers to create over the cities (0: users/50, at least 2 per city)")
	fl.BoolVar(&asJSON, "json", false, "print the results as JSON (no progress line)")
	fl.StringVar(&jsonFile, "json-file", "", "also write the results as JSON to this file (the progress line and the table stay on screen)")
	fl.BoolVar(&quiet, "quiet", false, "no progress line on stderr")
	fl.StringVar(&cpuProfile, "cpuprofile", "", "write the bench process's own CPU profile to this file (go tool pprof FILE)")
	gcPercentFlag(fl, &gcPercent, "the bench (it shares the cores with the nodes it drives)")
	fl.StringVar(&tokenDir, "token-dir", "", "directory of the cluster's token signing key (barberpro token init --dir), to sign the load's tokens (required)")
	return cmd
}

// runBench runs cfg once per value of users and prints the results: as a
// table, or as JSON with asJSON; and as JSON to the file jsonFile when it is
// not empty (durably: a crash or a failed write leaves its earlier content).
func runBench(cmd *cobra.Command, cfg load.Config, users []int, asJSON bool, jsonFile string) error {
	out := cmd.OutOrStdout()
	var results []load.Result
	for _, n := range users {
		cfg.Clients = n
		r, err := load.Run(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		results = append(results, r)
		if !asJSON {
			fmt.Fprintln(out, r)
		}
	}
	if asJSON {
		// First: a file that fails to take the results loses neither.
		if err := writeJSON(out, results); err != nil {
			return err
		}
	}
	if jsonFile != "" {
		if err := durable.WriteFile(jsonFile, 0o644, func(w io.Writer) error { return writeJSON(w, results) }); err != nil {
			return fmt.Errorf("--json-file: %w", err)
		}
	}
	return nil
}

// resultsPath checks --json-file's FILE before the runs, so that a path the
// results could not be written to is refused before a minute of load, not
// after it: not a directory, in a directory that takes a new file (the
// results are written beside FILE and renamed over it: durable.WriteFile).
// It returns the path to write: FILE, or where FILE links to (a link is
// followed, as os.Create would, not replaced).
func resultsPath(name string) (string, error) {
	switch target, err := filepath.EvalSymlinks(name); {
	case err == nil:
		name = target
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	if fi, err := os.Stat(name); err == nil && fi.IsDir() {
		return "", fmt.Errorf("%s is a directory", name)
	}
	probe, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".probe-*")
	if err != nil {
		return "", err
	}
	_ = probe.Close()
	return name, os.Remove(probe.Name())
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
