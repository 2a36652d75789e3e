// Command barberpro is the BarberPro Edge binary: it runs a node, a local demo
// cluster, load benchmarks and failover simulations. Every flag also reads from an
// environment variable: --data-dir ↔ BARBERPRO_DATA_DIR.
//
// Exit status: 0 success, 1 runtime failure, 2 bad usage.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// usageError marks an error as bad usage (exit status 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// noArgs and exactArgs are cobra's argument checks with bad usage as exit status 2.
var noArgs = exactArgs(0)

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "barberpro:", err)
		var u usageError
		if errors.As(err, &u) || strings.HasPrefix(err.Error(), "unknown command") {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "barberpro",
		Short:         "BarberPro Edge: the booking engine of a services marketplace",
		Long:          "barberpro runs a BarberPro Edge node, a local demo cluster, and the tools around them.\nEvery flag also reads from an environment variable, named in its help: --data-dir <-> BARBERPRO_DATA_DIR;\na flag whose name means something else to another command has a variable of its own (demo --data-dir <-> BARBERPRO_DEMO_DATA_DIR).",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newNodeCmd(), newCACmd(), newTokenCmd(), newKeysCmd(), newClusterCmd(), newBackupCmd(), newRestoreCmd(), newAuditCmd(), newResidencyCmd(), newDemoCmd(), newBenchCmd(), newSimCmd(), newVersionCmd())
	root.Version = Version // --version
	root.SetVersionTemplate("barberpro {{.Version}}\n")
	for _, c := range root.Commands() {
		strictGroup(c)
	}
	bindEnvAll(root)
	return root
}

// strictGroup makes a command that only groups others (cluster, ca, token,
// node) refuse what is not one of them: cobra would print its help and exit 0
// for `barberpro cluster bogus`. Without arguments it prints its help and exits 2.
func strictGroup(c *cobra.Command) {
	if !c.HasSubCommands() || c.Runnable() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
		}
		cmd.Help()
		return usagef("%s needs a command", cmd.CommandPath())
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of this binary",
		Example: "  barberpro version",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "barberpro", Version)
			return nil
		},
	}
}
