package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/barberpro/edge/storage/seal"
)

func newKeysCmd() *cobra.Command {
	keys := &cobra.Command{
		Use:   "keys",
		Short: "Make the key-encryption key that seals a jurisdiction's health data at rest",
		Long: `Health data (a psychology session's notes) is sealed with AES-256-GCM under a
per-client data key, itself wrapped by the jurisdiction's key-encryption key (KEK).
Give the KEK file to the nodes of that jurisdiction (node start --kek-file FILE) and
to no other node. Its erasure ledger (FILE.erasures, made next to it on first load)
records every client whose health data was erased: keep both together, outside the
data dirs and their backups.`,
	}
	keys.AddCommand(newKeysInitCmd())
	return keys
}

func newKeysInitCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a new key-encryption key to FILE (mode 0600) and print its id",
		Long: `Write a new random 256-bit key-encryption key to FILE (JSON {"id","key"}, mode
0600; keep it secret) and print its id, never the key. Refuses to overwrite an
existing file.`,
		Example: "  barberpro keys init --out /etc/barberpro/kek-ar.json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out is required")
			}
			id, err := seal.InitKEK(out)
			if err != nil {
				if errors.Is(err, seal.ErrKEKExists) {
					return usageError{err}
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key-encryption key %s\nfile               %s (node start --kek-file)\n", id, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the key-encryption key to (required)")
	return cmd
}
