package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/barberpro/edge/edge/client"
)

func newClusterCmd() *cobra.Command {
	var (
		addr    string
		token   string
		ca      string
		asJSON  bool
		timeout time.Duration
	)
	cluster := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect and change a running cluster through any node's API",
	}
	pf := cluster.PersistentFlags()
	pf.StringVar(&addr, "addr", "http://127.0.0.11:8080", "API URL of any node")
	pf.StringVar(&token, "token", "", "an operator's bearer token (barberpro token issue --role operator)")
	pf.BoolVar(&asJSON, "json", false, "print the answer as JSON")
	pf.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the answer")
	addCAFlag(pf, &ca)

	run := func(f func(ctx context.Context, c *client.Client, out io.Writer) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			if token == "" {
				return usagef("--token is required: the cluster routes need an operator token (barberpro token issue --role operator)")
			}
			if u, err := url.Parse(addr); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--addr %q is not a node's API URL: give one like http://127.0.0.11:8080", addr)
			}
			hc, err := nodeHTTPClient(ca, 0)
			if err != nil {
				return err
			}
			return f(ctx, client.New(addr, hc).WithToken(token), cmd.OutOrStdout())
		}
	}
	printJSON := func(out io.Writer, v any) error {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}

	members := &cobra.Command{
		Use:     "members",
		Short:   "List the cluster's nodes: city, jurisdiction, gossip status, Raft group and role",
		Example: "  barberpro cluster members --addr http://127.0.0.11:8080",
		Args:    noArgs,
		RunE: run(func(ctx context.Context, c *client.Client, out io.Writer) error {
			ms, err := c.Members(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, ms)
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tCITY\tJURISDICTION\tSTATUS\tRAFT GROUP\tROLE\tHTTP")
			for _, m := range ms.Items {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.City, m.Jurisdiction, m.Status, m.Raft.Group, m.Raft.Role, m.Addresses["http"])
			}
			return w.Flush()
		}),
	}
	status := &cobra.Command{
		Use:     "status",
		Short:   "Show each Raft group: leader, term, cluster id, every member's role, applied index, lag, disk, and recent membership events",
		Example: "  barberpro cluster status --addr http://127.0.0.11:8080",
		Args:    noArgs,
		RunE: run(func(ctx context.Context, c *client.Client, out io.Writer) error {
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, st)
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "GROUP\tLEADER\tTERM\tMEMBER\tROLE\tAPPLIED\tLAG\tCLUSTER ID\tDISK")
			for _, g := range st.Groups {
				for _, m := range g.Members {
					cid := m.ClusterID
					if cid != "" && g.ClusterID != "" && cid != g.ClusterID {
						cid += " (ANOTHER GROUP)"
					}
					// Lag means something only for a member that follows the
					// leader's log: "-" for one joining, leaving or unreachable.
					lag := fmt.Sprint(m.Lag)
					switch m.Role {
					case "joining", "leaving", "unreachable", "unknown", "shutdown":
						lag = "-"
					}
					fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\n", g.Group, g.Leader, g.Term, m.ID, m.Role, m.AppliedIndex, lag, cid, m.Disk)
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
			for _, g := range st.Groups {
				for _, m := range g.Members {
					if m.StorageFault != "" {
						fmt.Fprintf(out, "\n%s %s CANNOT WRITE: %s\n", g.Group, m.ID, m.StorageFault)
					}
				}
				if len(g.Events) > 0 {
					fmt.Fprintf(out, "\n%s events:\n", g.Group)
					for _, e := range g.Events {
						fmt.Fprintf(out, "  %s\n", e)
					}
				}
			}
			return nil
		}),
	}
	leave := &cobra.Command{
		Use:   "leave",
		Short: "Make the node at --addr leave the cluster for good, gracefully",
		Long: `Make the node at --addr leave the cluster: it stops taking calendar actors (they
re-activate on other nodes of its jurisdiction), hands Raft leadership over if it
holds it, is removed from its Raft group, leaves gossip, and its process exits.`,
		Example: "  barberpro cluster leave --addr http://127.0.0.13:8080",
		Args:    noArgs,
		RunE: run(func(ctx context.Context, c *client.Client, out io.Writer) error {
			r, err := c.Leave(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(out, r)
			}
			fmt.Fprintf(out, "%s is %s\n", r.Node, r.Status)
			return nil
		}),
	}
	var force bool
	remove := &cobra.Command{
		Use:   "remove NODE-ID",
		Short: "Remove a dead node from its Raft group (a non-voter is promoted in its place)",
		Long: `Remove a dead node from its Raft group (a non-voter is promoted in its place).
A node that gossip shows alive is refused (member_alive): stop it or make it
leave (cluster leave) first, or pass --force to remove it while it runs.`,
		Example: "  barberpro cluster remove ros-1 --addr http://127.0.0.11:8080 --token \"$BARBERPRO_TOKEN\"",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return run(func(ctx context.Context, c *client.Client, out io.Writer) error {
				r, err := c.Remove(ctx, args[0], force)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(out, r)
				}
				fmt.Fprintf(out, "%s %s (by %s)\n", r.Member, r.Status, r.Node)
				return nil
			})(cmd, args)
		},
	}
	remove.Flags().BoolVar(&force, "force", false, "remove the node even though gossip shows it alive")
	cluster.AddCommand(members, status, leave, remove)
	return cluster
}
