package main

import (
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envName is the environment variable a flag reads: --data-dir → BARBERPRO_DATA_DIR.
func envName(flag string) string {
	return "BARBERPRO_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// commandEnv names the variables of the flags whose name means different
// things to different commands ("top-level command flag" → variable): each gets
// a variable of its own, BARBERPRO_<COMMAND>_<FLAG>, so that a variable set for
// one command never changes what another does (BARBERPRO_DATA_DIR set for a node
// must not make `demo` write into that node's data dir). Flags that mean the
// same everywhere keep BARBERPRO_<FLAG>: --data-dir of node start and audit
// verify (a node's data dir), --city and --id of node start and ca issue (the
// node's), --addr, --token, --timeout, --json, --topology.
var commandEnv = map[string]string{
	"demo data-dir":    "BARBERPRO_DEMO_DATA_DIR", // where the demo keeps its nodes
	"bench city":       "BARBERPRO_BENCH_CITY",    // the load providers' city
	"bench duration":   "BARBERPRO_BENCH_DURATION",
	"bench seed":       "BARBERPRO_BENCH_SEED",       // sim --seed is a scenario's
	"bench gc-percent": "BARBERPRO_BENCH_GC_PERCENT", // a node's is BARBERPRO_GC_PERCENT
	"sim duration":     "BARBERPRO_SIM_DURATION",
	"ca dir":           "BARBERPRO_CA_DIR", // the CA's directory
	"ca out":           "BARBERPRO_CA_OUT", // the issued node's TLS dir
	"token dir":        "BARBERPRO_TOKEN_DIR",
	"keys out":         "BARBERPRO_KEYS_OUT",
}

// envNameFor is the environment variable flag of cmd reads: its commandEnv
// entry, else envName(flag).
func envNameFor(cmd *cobra.Command, flag string) string {
	top := cmd
	for top.HasParent() && top.Parent().HasParent() {
		top = top.Parent()
	}
	if v, ok := commandEnv[top.Name()+" "+flag]; ok {
		return v
	}
	return envName(flag)
}

// bindEnvAll makes every flag of every command below root fall back to its
// environment variable when it is not given on the command line, and names that
// variable in the flag's help.
func bindEnvAll(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			f.Usage += " [$" + envNameFor(c, f.Name) + "]"
		})
		prev := c.PreRunE
		c.PreRunE = func(cmd *cobra.Command, args []string) error {
			var err error
			cmd.Flags().VisitAll(func(f *pflag.Flag) {
				if err != nil || f.Changed {
					return
				}
				if v, ok := os.LookupEnv(envNameFor(cmd, f.Name)); ok {
					if e := cmd.Flags().Set(f.Name, v); e != nil {
						err = usagef("$%s: %v", envNameFor(cmd, f.Name), e)
					}
				}
			})
			if err == nil && prev != nil {
				err = prev(cmd, args)
			}
			return err
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
