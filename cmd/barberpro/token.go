package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/barberpro/edge/edge/auth"
)

func newTokenCmd() *cobra.Command {
	token := &cobra.Command{
		Use:   "token",
		Short: "Make the signing key and key set of people's bearer tokens, and issue tokens",
		Long: `People call the API with "Authorization: Bearer TOKEN": a JWT signed with EdDSA
(Ed25519) carrying sub, role (client, provider or operator), iss, iat and exp, with
its key's kid in the header. Nodes verify tokens against a public key set
(node start --token-keys DIR/keys.json); an outside identity provider may issue
them instead.`,
	}
	token.AddCommand(newTokenInitCmd(), newTokenIssueCmd(), newTokenRotateCmd())
	return token
}

func newTokenInitCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a new signing key (DIR/signing.jwk, 0600) and its public key set (DIR/keys.json)",
		Long: `Write a new Ed25519 signing key to DIR/signing.jwk (mode 0600; keep it secret: it
makes tokens) and its public key set to DIR/keys.json (give that file to every node:
node start --token-keys DIR/keys.json). Refuses to overwrite an existing key.`,
		Example: "  barberpro token init --dir ./data/tokens",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef("--dir is required")
			}
			if err := auth.Init(dir); err != nil {
				if errors.Is(err, auth.ErrKeyExists) {
					return usageError{err}
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signing key %s\nkey set     %s (node start --token-keys)\n",
				filepath.Join(dir, auth.SigningKeyFile), filepath.Join(dir, auth.KeySetFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory of the token keys (required)")
	return cmd
}

func newTokenIssueCmd() *cobra.Command {
	var (
		dir, role, sub string
		ttl            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Print a token for a subject in a role, signed with DIR/signing.jwk",
		Long: `Print a token for --sub in --role, valid for --ttl, signed with DIR/signing.jwk.
A client's subject is its client id (it books and reads for itself only), a
provider's its provider id (its own calendar), an operator's a name of your choice.`,
		Example: `  barberpro token issue --dir ./data/tokens --role client --sub cli-ana
  export BARBERPRO_TOKEN=$(barberpro token issue --dir ./data/tokens --role operator --sub ops --ttl 1h)`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || sub == "" {
				return usagef("--dir and --sub are required")
			}
			r, err := auth.ParseRole(role)
			if err != nil {
				return usagef("--role: %v", err)
			}
			if ttl <= 0 || ttl > auth.DefaultMaxTTL {
				return usagef("--ttl must be positive and at most %v (nodes refuse longer-lived tokens: node start --token-max-ttl)", auth.DefaultMaxTTL)
			}
			tok, err := auth.Issue(dir, r, sub, ttl)
			if errors.Is(err, auth.ErrBadSubject) {
				return usagef("--sub: %v", err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", "", "directory of the token keys, made by token init (required)")
	fl.StringVar(&role, "role", "", "client, provider or operator (required)")
	fl.StringVar(&sub, "sub", "", "the subject: a client id, a provider id or an operator's name (required)")
	fl.DurationVar(&ttl, "ttl", auth.DefaultTTL, "how long the token is valid (at most 720h, the default --token-max-ttl of nodes)")
	return cmd
}

func newTokenRotateCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the signing key; the key set keeps the old public key until you remove it",
		Long: `Replace DIR/signing.jwk with a new key and add its public key to DIR/keys.json,
keeping the old ones: deploy the new keys.json to every node, and tokens signed by
either key are accepted (each names its key by kid). Remove the old key from
keys.json (and redeploy) once its tokens have expired.`,
		Example: "  barberpro token rotate --dir ./data/tokens",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef("--dir is required")
			}
			kid, err := auth.Rotate(dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new signing key %s (kid %s); %s holds the old and new public keys\n",
				filepath.Join(dir, auth.SigningKeyFile), kid, filepath.Join(dir, auth.KeySetFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory of the token keys (required)")
	return cmd
}
