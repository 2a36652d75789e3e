package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/barberpro/edge/simulations/failpoint"
	"github.com/barberpro/edge/simulations/lazyfs"
	"github.com/barberpro/edge/simulations/runner"
	"github.com/barberpro/edge/simulations/scenario"
	"github.com/barberpro/edge/simulations/scenarios"
)

// errViolations is the error of a simulation that found violations (exit 1).
var errViolations = errors.New("simulation found violations")

func newSimCmd() *cobra.Command {
	var (
		seed      uint64
		reportDir string
		list, ci  bool
		duration  time.Duration
		binary    string
		fpBinary  string
	)
	cmd := &cobra.Command{
		Use:   "sim [SCENARIO|FILE.yaml ...]",
		Short: "Run failover simulations: a real 5-node cluster, a workload, faults, checked history and a report",
		Long: `Run failover simulations. Each scenario starts five real node processes on its own
loopback IPs, drives a booking workload through every node, injects and heals its
faults (kill -9, SIGSTOP, iptables partitions, wiped disk, rolling restart,
flapping, a wiped founder, a wiped voter then a leader crash, a crash while
installing a snapshot, a full disk, a power cut that loses every write not
fsynced), then checks the recorded history and every
node's final state (linearizability, no double booking, replicas agree,
acknowledged writes present, residency, liveness), that no Raft group forked (two
cluster ids, or two leaders of one term, in any node's status during the run) and
that no node crashed, and writes a report (report.json, chart.png, history.jsonl,
status.jsonl).

With no arguments it runs every scenario of the embedded library; --ci runs the
short selection. A failing run keeps its data dirs and node logs. Exit status 1
when any scenario finds a violation. Partitions need root and iptables; disk-full
mounts a tmpfs (root); power-loss mounts lazy FUSE file systems (root, /dev/fuse). A scenario whose faults cannot run on this machine is
skipped, saying why; a run that skipped any is not a pass: exit status 2. --node-binary runs the
cluster with another build of barberpro (a release, or an old commit to show a
scenario fails on it); snapshot-install-crash uses the failpoints build (make
build-failpoints: bin/barberpro-failpoints, found next to the node binary).`,
		Example: `  barberpro sim --list
  barberpro sim leader-kill
  barberpro sim leader-kill --seed 42 --report /tmp/r
  barberpro sim --ci
  barberpro sim ./my-scenario.yaml
  barberpro sim wiped-founder --node-binary /tmp/barberpro-a629ac8`,
		RunE: func(cmd *cobra.Command, args []string) error {
			lib, err := scenario.LoadFS(scenarios.FS)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if list {
				w := 0
				for _, s := range lib {
					w = max(w, len(s.Name))
				}
				for _, s := range lib {
					ciMark := ""
					if s.CI {
						ciMark = " [ci]"
					}
					fmt.Fprintf(out, "%-*s %5v%s  %s\n    faults: %s\n", w, s.Name, s.Duration, ciMark, s.Description, s.Summary())
				}
				fmt.Fprintf(out, "\nfaults:\n")
				w = 0
				for _, n := range failpoint.Names() {
					w = max(w, len(n))
				}
				for _, n := range failpoint.Names() {
					fmt.Fprintf(out, "  %-*s %s\n", w, n, failpoint.Doc(n))
				}
				return nil
			}
			var run []*scenario.Scenario
			switch {
			case len(args) > 0:
				for _, a := range args {
					s, err := pickScenario(lib, a)
					if err != nil {
						return usageError{err}
					}
					run = append(run, s)
				}
			case ci:
				for _, s := range lib {
					if s.CI {
						run = append(run, s)
					}
				}
			default:
				run = lib
			}
			if binary == "" {
				if binary, err = os.Executable(); err != nil {
					return err
				}
			}
			if fpBinary == "" {
				// The failpoints build beside the node binary, if made.
				if c := filepath.Join(filepath.Dir(binary), "barberpro-failpoints"); fileExists(c) {
					fpBinary = c
				}
			} else if !fileExists(fpBinary) {
				return usagef("--failpoint-binary: %s does not exist", fpBinary)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var failed, skipped []string
			for i, s := range run {
				if ctx.Err() != nil {
					break
				}
				dir := ""
				if reportDir != "" {
					dir = reportDir
					if len(run) > 1 {
						dir = filepath.Join(reportDir, s.Name)
					}
				}
				if i > 0 {
					fmt.Fprintln(out)
				}
				res, err := runner.Run(ctx, runner.Options{Scenario: s, Seed: seed, Duration: duration, Binary: binary,
					FailpointBinary: fpBinary, ReportDir: dir, Out: out, Progress: cmd.ErrOrStderr()})
				if errors.Is(err, failpoint.ErrSkip) {
					fmt.Fprintf(out, "== %s: SKIPPED: %v\n", s.Name, err)
					skipped = append(skipped, s.Name)
					continue
				}
				if err != nil {
					fmt.Fprintf(out, "== %s: could not run: %v\n", s.Name, err)
					failed = append(failed, s.Name+" (error)")
					continue
				}
				if !res.Passed() {
					failed = append(failed, fmt.Sprintf("%s (seed %d, %s)", s.Name, res.Seed, res.ReportDir))
				}
			}
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted")
			}
			if len(run) > 1 {
				fmt.Fprintf(out, "\n%d scenario(s), %d failed", len(run), len(failed))
				if len(skipped) > 0 {
					fmt.Fprintf(out, ", %d skipped (%s)", len(skipped), strings.Join(skipped, ", "))
				}
				fmt.Fprintln(out)
			}
			if len(failed) > 0 {
				return fmt.Errorf("%w: %s", errViolations, strings.Join(failed, "; "))
			}
			if len(skipped) > 0 {
				return usagef("%d scenario(s) skipped, not run: %s (see why above)", len(skipped), strings.Join(skipped, ", "))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.Uint64Var(&seed, "seed", 0, "seed of the workload and fault schedule (0: each scenario's own)")
	fl.StringVar(&reportDir, "report", "", "report directory (default ./sim-reports/<scenario>-<seed>-<time>; one subdirectory per scenario when several run)")
	fl.BoolVar(&list, "list", false, "list the scenario library and the faults, and exit")
	fl.BoolVar(&ci, "ci", false, "run the short CI selection of the library (when no scenario is named)")
	fl.DurationVar(&duration, "duration", 0, "override each scenario's duration (faults past it are dropped)")
	fl.StringVar(&binary, "node-binary", "", "barberpro binary the nodes run, e.g. a release or an older build (default: this one)")
	fl.StringVar(&binary, "binary", "", "same as --node-binary")
	fl.StringVar(&fpBinary, "failpoint-binary", "", "barberpro built with -tags failpoints, for the faults that crash a node at a failpoint (default: barberpro-failpoints beside the node binary, if there)")
	cmd.AddCommand(newSimLazyFSCmd())
	return cmd
}

// newSimLazyFSCmd is the server process of a power-loss fault's lazy file
// system (simulations/lazyfs): hidden, the simulation runs it.
func newSimLazyFSCmd() *cobra.Command {
	var under, mount string
	cmd := &cobra.Command{
		Use:    "lazyfs --under DIR --mount DIR",
		Short:  "Serve a lazy FUSE file system of --under at --mount until SIGTERM (power-loss fault)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if under == "" || mount == "" {
				return usagef("--under and --mount are required")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return lazyfs.Serve(ctx, under, mount)
		},
	}
	cmd.Flags().StringVar(&under, "under", "", "the directory holding the files (the disk)")
	cmd.Flags().StringVar(&mount, "mount", "", "where to mount the lazy file system")
	return cmd
}

// pickScenario resolves a scenario name of the library or a YAML file path.
func pickScenario(lib []*scenario.Scenario, arg string) (*scenario.Scenario, error) {
	if strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") || strings.ContainsRune(arg, os.PathSeparator) {
		return scenario.Load(arg)
	}
	var names []string
	for _, s := range lib {
		if s.Name == arg {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return nil, fmt.Errorf("no scenario %q (library: %s; or give a .yaml path)", arg, strings.Join(names, ", "))
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}
