package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"
	bolt "go.etcd.io/bbolt"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/storage"
)

func newAuditCmd() *cobra.Command {
	audit := &cobra.Command{
		Use:   "audit",
		Short: "Check a jurisdiction's hash-chained audit log of psychology data",
		Long: `Every read and write of psychology data (bookings, sessions, notes, consents,
export, erasure), allowed or refused, appends an entry to a hash-chained log in
the jurisdiction's store: hash = SHA-256(prev_hash || canonical entry).`,
	}
	audit.AddCommand(newAuditVerifyCmd())
	return audit
}

func newAuditVerifyCmd() *cobra.Command {
	var (
		addr, dataDir, token, jurisdiction, ca string
		timeout                                time.Duration
		pageSize                               int
		heads                                  []string
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Walk an audit chain, recomputing every hash; exit 1 naming the first broken link",
		Long: `Walk a jurisdiction's audit chain from its first entry, recomputing each entry's
hash from its content and the hash before it, and checking that no entry is
missing. With --addr it reads the chain a running node serves (GET /v1/audit,
an operator token); with --data-dir it reads a node's data dir offline (a
stopped node, or a copy). Prints the number of entries and the head hash and
exits 0 when every link holds; exits 1 naming the first broken one.

The chain has no key: whoever can write a node's fsm.db can change an entry and
rehash every later one, or cut the tail off, and the chain still verifies. Keep
the head it prints as SEQ:HEX somewhere that host cannot write (another machine,
a ticket, a signed mail) and pass it later with --head SEQ:HEX: verify then
fails unless entry SEQ still has hash HEX.`,
		Example: `  barberpro audit verify --addr http://127.0.0.11:8080 --token "$BARBERPRO_TOKEN"
  barberpro audit verify --data-dir ./data/ba-1
  barberpro audit verify --data-dir ./data/ba-1 --head 1234:6c82c5066f03...`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr != "" && dataDir != "" {
				// One of them may come from the environment only ($BARBERPRO_DATA_DIR
				// set for node start): the command line wins.
				fromEnv := func(flag, v string) bool { e, ok := os.LookupEnv(envName(flag)); return ok && e == v }
				switch {
				case fromEnv("data-dir", dataDir) && !fromEnv("addr", addr):
					dataDir = ""
				case fromEnv("addr", addr) && !fromEnv("data-dir", dataDir):
					addr = ""
				}
			}
			switch {
			case addr == "" && dataDir == "":
				return usagef("give --addr URL (a running node) or --data-dir DIR (offline)")
			case addr != "" && dataDir != "":
				return usagef("give --addr or --data-dir, not both (is $%s or $%s set?)", envName("addr"), envName("data-dir"))
			}
			anchors := make([]storage.AuditAnchor, 0, len(heads))
			for _, h := range heads {
				a, err := storage.ParseAuditAnchor(h)
				if err != nil {
					return usagef("--head: %v", err)
				}
				anchors = append(anchors, a)
			}
			if dataDir != "" {
				rep, err := storage.VerifyAuditDir(dataDir, anchors...)
				if errors.Is(err, storage.ErrAuditBroken) && rep.BrokenSeq == 0 {
					return fmt.Errorf("audit verify %s: %w", dataDir, err) // a damaged file
				}
				if errors.Is(err, storage.ErrAuditBroken) || (err == nil && rep.BrokenSeq != 0) {
					return &chainBreak{Seq: rep.BrokenSeq, Reason: rep.Reason}
				}
				if errors.Is(err, bolt.ErrTimeout) {
					return fmt.Errorf("audit verify %s: its fsm.db is locked by a running node: stop the node, verify a copy of the dir, or use --addr", dataDir)
				}
				if err != nil {
					return fmt.Errorf("audit verify %s: %w", dataDir, err)
				}
				printChainOK(cmd, rep.Entries, hex.EncodeToString(rep.Head))
				return nil
			}
			if u, err := url.Parse(addr); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--addr %q is not a node's API URL: give one like http://127.0.0.11:8080", addr)
			}
			if token == "" {
				return usagef("--token is required: GET /v1/audit needs an operator token (barberpro token issue --role operator)")
			}
			if pageSize < 1 || pageSize > 500 {
				return usagef("--page-size must be 1..500")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			hc, err := nodeHTTPClient(ca, 0)
			if err != nil {
				return err
			}
			v := newChainVerifier(anchors...)
			c := client.New(addr, hc).WithToken(token)
			err = c.AuditAll(ctx, client.AuditQuery{Jurisdiction: jurisdiction, Limit: pageSize}, v.add)
			var br *chainBreak
			if errors.As(err, &br) {
				return br
			}
			if err != nil {
				return fmt.Errorf("audit verify: reading the chain from %s after %d good entries: %w", addr, v.entries(), err)
			}
			if br := v.finish(); br != nil {
				return br
			}
			printChainOK(cmd, v.entries(), v.head())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", "", "API URL of a running node whose jurisdiction's chain to verify")
	fl.StringVar(&dataDir, "data-dir", "", "a node's data dir to verify offline (the node stopped, or a copy)")
	fl.StringVar(&token, "token", "", "an operator's bearer token, with --addr (barberpro token issue --role operator)")
	fl.StringVar(&jurisdiction, "jurisdiction", "", "whose chain to read, with --addr (default: the node's own)")
	fl.DurationVar(&timeout, "timeout", 10*time.Minute, "how long the whole walk may take, with --addr")
	fl.IntVar(&pageSize, "page-size", 500, "entries per request, with --addr (1..500)")
	addCAFlag(fl, &ca)
	fl.StringArrayVar(&heads, "head", nil, "SEQ:HEX, a head an earlier verify printed, kept elsewhere: fail unless entry SEQ has hash HEX (repeatable)")
	return cmd
}

func printChainOK(cmd *cobra.Command, entries uint64, head string) {
	if entries == 0 || head == "" {
		fmt.Fprintln(cmd.OutOrStdout(), "audit chain OK: 0 entries (empty)")
		return
	}
	fmt.Fprintf(cmd.OutOrStdout(), "audit chain OK: %d entries, head %s\n", entries, head)
	fmt.Fprintf(cmd.OutOrStdout(), "head %d:%s (keep it where this host cannot write it; check it later with --head %d:%s: without it a rehashed or truncated chain verifies)\n",
		entries, head, entries, head)
}
