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

// bindEnvAll makes every flag of every command below root fall back to its
// environment variable when it is not given on the command line, and names that
// variable in the flag's help.
func bindEnvAll(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			f.Usage += " [$" + envName(f.Name) + "]"
		})
		prev := c.PreRunE
		c.PreRunE = func(cmd *cobra.Command, args []string) error {
			var err error
			cmd.Flags().VisitAll(func(f *pflag.Flag) {
				if err != nil || f.Changed {
					return
				}
				if v, ok := os.LookupEnv(envName(f.Name)); ok {
					if e := cmd.Flags().Set(f.Name, v); e != nil {
						err = usagef("$%s: %v", envName(f.Name), e)
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
