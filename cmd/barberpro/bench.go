package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/simulations/load"
)

func newBenchCmd() *cobra.Command {
	var (
		targets  string
		clients  []int
		duration time.Duration
		mode     string
		city     string
		asJSON   bool
		tokenDir string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Drive booking load at running nodes and report throughput and latency",
		Long: `Create load providers (open around the clock, 15-minute slots) through the first
target, then book distinct free slots from concurrent clients spread over the targets,
and report bookings/s and latency percentiles per client count. Every booking is a
real commit; nothing is faked.

Bench signs its own tokens with the cluster's token signing key (--token-dir, the
directory of ` + "`barberpro token init`" + `; the demo's is printed when it starts):
an operator's creates the providers, each client books as itself. Each simulated
client sends as fast as it is answered, far above a person's rate, and the first
request of each client's token is charged to the bench's IP: run the nodes with
--rate-limit inf --ip-rate-limit inf (BARBERPRO_RATE_LIMIT=inf,
BARBERPRO_IP_RATE_LIMIT=inf) or the runs measure 429s.`,
		Example: "  barberpro bench --target http://127.0.0.11:8080 --token-dir DIR/secrets/tokens --users 1,16,256 --duration 10s\n  barberpro bench --target http://127.0.0.11:8080 --token-dir DIR/secrets/tokens --mode hot",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if targets == "" {
				return usagef("--target is required")
			}
			if tokenDir == "" {
				return usagef("--token-dir is required: the directory holding the cluster's token signing key (barberpro token init --dir DIR)")
			}
			signer, err := auth.LoadSigner(tokenDir)
			if err != nil {
				return usagef("--token-dir: %v", err)
			}
			tokens := auth.NewTokenCache(signer, time.Hour)
			out := cmd.OutOrStdout()
			var results []load.Result
			for _, n := range clients {
				r, err := load.Run(cmd.Context(), load.Config{
					Targets: strings.Split(targets, ","), Clients: n, Duration: duration,
					Mode: load.Mode(mode), City: city, Tokens: tokens,
				})
				if err != nil {
					return err
				}
				results = append(results, r)
				if !asJSON {
					fmt.Fprintln(out, r)
				}
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(results)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&targets, "target", "", "comma-separated node URLs, e.g. http://127.0.0.11:8080")
	fl.IntSliceVar(&clients, "users", []int{1, 16, 256}, "concurrent simulated users (clients), one run per value")
	fl.DurationVar(&duration, "duration", 10*time.Second, "length of each run")
	fl.StringVar(&mode, "mode", "spread", "spread (each client its own provider) or hot (all on one provider)")
	fl.StringVar(&city, "city", "buenos-aires", "city of the load providers")
	fl.BoolVar(&asJSON, "json", false, "print the results as JSON")
	fl.StringVar(&tokenDir, "token-dir", "", "directory of the cluster's token signing key (barberpro token init --dir), to sign the load's tokens (required)")
	return cmd
}
