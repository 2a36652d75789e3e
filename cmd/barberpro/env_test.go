package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestCLI_EnvVarsMeanOneThing: an environment variable read by several
// commands' flags means the same to all of them. BARBERPRO_DATA_DIR,
// BARBERPRO_CITY and BARBERPRO_DURATION meant a node's data dir or the demo's,
// a node's city or the bench providers', a bench run's length or a scenario's.
func TestCLI_EnvVarsMeanOneThing(t *testing.T) {
	// The variables shared on purpose, with the commands that share them.
	shared := map[string][]string{
		"BARBERPRO_DATA_DIR":     {"audit verify", "node start", "restore"}, // a node's data dir
		"BARBERPRO_CITY":         {"ca issue", "node start", "restore"},     // the node's city
		"BARBERPRO_ID":           {"ca issue", "node start", "restore"},     // the node's id
		"BARBERPRO_JURISDICTION": {"audit verify", "backup"},                // the jurisdiction whose data
		"BARBERPRO_ADDR":         nil,                                       // a node's API URL, everywhere
		"BARBERPRO_TOKEN":        nil,
		"BARBERPRO_TIMEOUT":      nil,
		"BARBERPRO_JSON":         nil,
		"BARBERPRO_TOPOLOGY":     nil,
		"BARBERPRO_HELP":         nil,
		"BARBERPRO_CA_DIR":       nil,                       // the CA's directory (ca init, ca issue)
		"BARBERPRO_TOKEN_DIR":    nil,                       // the token keys' directory (token *, bench --token-dir)
		"BARBERPRO_CA":           nil,                       // the CA certificate trusted for a node's HTTPS API
		"BARBERPRO_KEK_FILE":     {"node start", "restore"}, // the jurisdiction's key-encryption key
	}
	users := map[string][]string{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(c.CommandPath(), "barberpro ")
		c.Flags().VisitAll(func(f *pflag.Flag) {
			env := envNameFor(c, f.Name)
			if !strings.Contains(f.Usage, "[$"+env+"]") {
				t.Errorf("%s --%s: help does not name $%s: %q", path, f.Name, env, f.Usage)
			}
			if !slices.Contains(users[env], path) {
				users[env] = append(users[env], path)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	for env, cmds := range users {
		if len(cmds) < 2 {
			continue
		}
		want, ok := shared[env]
		slices.Sort(cmds)
		if !ok || (want != nil && !slices.Equal(cmds, want)) {
			t.Errorf("$%s is read by %v, which give it different meanings", env, cmds)
		}
	}
	for _, env := range []string{"BARBERPRO_DEMO_DATA_DIR", "BARBERPRO_BENCH_CITY", "BARBERPRO_BENCH_DURATION", "BARBERPRO_BENCH_GC_PERCENT", "BARBERPRO_SIM_DURATION"} {
		if len(users[env]) != 1 {
			t.Errorf("$%s read by %v, want one command", env, users[env])
		}
	}
}
