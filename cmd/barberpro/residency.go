package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/check"
)

func newResidencyCmd() *cobra.Command {
	residency := &cobra.Command{
		Use:   "residency",
		Short: "Check that psychology data stays in its home jurisdiction",
	}
	residency.AddCommand(newResidencyCheckCmd())
	return residency
}

// residencyOptions are one residency check's settings.
type residencyOptions struct {
	home    string
	scan    []string // DIR or NODE-ID=DIR
	markers []string
}

func newResidencyCheckCmd() *cobra.Command {
	var (
		addr, token string
		timeout     time.Duration
		o           residencyOptions
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Ask every node what it holds and scan data dirs and logs for psychology data outside its home; exit 1 naming it",
		Long: `Check that psychology data (its bookings, sessions, consents, notes, audit entries)
stays in its home jurisdiction (--home, default ar), as a compliance officer would:

 1. Ask the node at --addr for the cluster's members and their jurisdictions, and
    every member for its view of the Raft groups: a node of another jurisdiction
    in the home group would replicate the home's store.
 2. Learn what to look for: the psychology providers (GET /v1/providers?vertical=
    psychology) of the home, where their calendar actors run (each must run at
    home), and from the home's audit log the ids of every psychology record that
    was read or written (bookings, consents, series) and the clients involved.
 3. Scan the dirs given with --scan (data dirs and logs, as they are on disk, with
    no decoding) for those ids, for any consent id of the home's cities and any
    booking id of the cities with psychology providers (ids carry their city,
    and their store is at home), and for --marker strings (a text you wrote into
    a note: notes are sealed, so a marker may be on no node at all, plain or
    base64).

A --scan value is DIR (a dir or file of a node outside the home) or NODE-ID=DIR (a
member's dir; its jurisdiction comes from the cluster). Dirs of home nodes are the
control: every id must be found there, else the scan cannot be trusted. Exits 1
naming each node, file and what it holds; 0 when nothing is out of place.`,
		Example: `  barberpro residency check --addr http://127.0.0.11:8080 --token "$BARBERPRO_TOKEN" \
      --scan us-1=./data/us-1 --scan ./data/us-1.log --scan ba-1=./data/ba-1 --marker PSY-MARKER-42`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := url.Parse(addr)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--addr %q is not a node's API URL: give one like http://127.0.0.11:8080", addr)
			}
			if token == "" {
				return usagef("--token is required: the cluster and audit routes need an operator token (barberpro token issue --role operator)")
			}
			for _, s := range o.scan {
				if s == "" || strings.HasSuffix(s, "=") {
					return usagef("--scan %q: give DIR or NODE-ID=DIR", s)
				}
			}
			for _, m := range o.markers {
				if len(m) < 8 {
					return usagef("--marker %q is too short to be told from other bytes: use 8 characters or more", m)
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := residencyCheck(ctx, client.New(addr, nil).WithToken(token), u.Scheme, o, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, v := range res.Violations {
				fmt.Fprintf(out, "VIOLATION %s\n", v.Detail)
			}
			if !res.OK() {
				return fmt.Errorf("residency check: %d violation(s) of %s's residency", len(res.Violations), o.home)
			}
			fmt.Fprintf(out, "residency check OK: %s\n", checkedSummary(res.Checked))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", "http://127.0.0.11:8080", "API URL of any node")
	fl.StringVar(&token, "token", "", "an operator's bearer token (barberpro token issue --role operator)")
	fl.StringVar(&o.home, "home", "ar", "the home jurisdiction of the psychology data checked")
	fl.StringArrayVar(&o.scan, "scan", nil, "DIR or NODE-ID=DIR: a data dir or log to scan (repeat)")
	fl.StringArrayVar(&o.markers, "marker", nil, "a string written into session notes, which no node may hold unsealed (repeat)")
	fl.DurationVar(&timeout, "timeout", 10*time.Minute, "how long the whole check may take")
	return cmd
}

func checkedSummary(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// residencyCheck runs the check through c (any node), speaking to other nodes
// with c's token over scheme; warnings (a node that did not answer) go to warn.
func residencyCheck(ctx context.Context, c *client.Client, scheme string, o residencyOptions, warn io.Writer) (check.Result, error) {
	var res check.Result
	count := func(k string, n int) {
		if res.Checked == nil {
			res.Checked = map[string]int{}
		}
		res.Checked[k] += n
	}
	violate := func(refs []string, format string, a ...any) {
		res.Violations = append(res.Violations, check.Violation{Check: check.CheckResidency, Detail: fmt.Sprintf(format, a...), Refs: refs})
	}

	// 1. Members, and every member's view of the groups.
	ms, err := c.Members(ctx)
	if err != nil {
		return res, fmt.Errorf("residency check: cluster members from %s: %w", c.Base, err)
	}
	jur := map[string]string{}
	var homeCities []string
	var homeNodes []client.Member
	for _, m := range ms.Items {
		jur[m.ID] = m.Jurisdiction
		if m.Jurisdiction == o.home {
			homeNodes = append(homeNodes, m)
			if !slices.Contains(homeCities, m.City) {
				homeCities = append(homeCities, m.City)
			}
		}
	}
	if len(homeNodes) == 0 {
		return res, fmt.Errorf("residency check: no member of jurisdiction %q in the cluster %s sees", o.home, c.Base)
	}
	nodeClient := func(m client.Member) *client.Client {
		a := m.Addresses["http"]
		if a == "" {
			return nil
		}
		cc := *c
		cc.Base = scheme + "://" + a
		return &cc
	}
	reported := map[string]bool{} // "group/member" already reported
	for _, m := range ms.Items {
		nc := nodeClient(m)
		if nc == nil {
			fmt.Fprintf(warn, "warning: member %s has no HTTP address: not asked\n", m.ID)
			continue
		}
		st, err := nc.Status(ctx)
		if err != nil {
			fmt.Fprintf(warn, "warning: could not ask %s (%s) for its status: %v\n", m.ID, nc.Base, err)
			continue
		}
		count("residency.nodes_asked", 1)
		for _, g := range st.Groups {
			if g.Group != o.home {
				continue
			}
			for _, gm := range g.Members {
				j, known := jur[gm.ID]
				if !known || j == o.home || reported[g.Group+"/"+gm.ID] {
					continue
				}
				reported[g.Group+"/"+gm.ID] = true
				violate([]string{gm.ID, g.Group}, "node %s (jurisdiction %s) is a member of Raft group %s (as %s, seen by %s): it replicates %s's store",
					gm.ID, j, g.Group, gm.Role, m.ID, o.home)
			}
		}
	}

	// 2. What to look for: the home's psychology providers (and where their
	// actors run), and the records of the home's audit log.
	var needles []check.Needle
	seen := map[string]bool{}
	short := 0
	add := func(n check.Needle) {
		if len(n.Value) < minNeedle && !n.Sealed {
			// Too short to tell from other bytes ("x", "c1"): it would match anywhere.
			if !seen[n.Value] {
				seen[n.Value] = true
				short++
			}
			return
		}
		if !seen[n.Value] {
			seen[n.Value] = true
			needles = append(needles, n)
		}
	}
	var psyCities []string // cities with psychology providers
	q := client.ProvidersQuery{Vertical: "psychology", Limit: 500}
	for {
		page, err := c.Providers(ctx, q)
		if err != nil {
			return res, fmt.Errorf("residency check: psychology providers: %w", err)
		}
		for _, p := range page.Items {
			if p.Jurisdiction != o.home {
				continue
			}
			count("residency.providers", 1)
			add(check.Needle{Value: p.ID, What: "psychology provider"})
			if !slices.Contains(homeCities, p.City) {
				homeCities = append(homeCities, p.City)
			}
			if !slices.Contains(psyCities, p.City) {
				psyCities = append(psyCities, p.City)
			}
			pl, err := c.Placement(ctx, p.ID)
			switch {
			case err != nil:
				fmt.Fprintf(warn, "warning: placement of %s: %v\n", p.ID, err)
			case pl.Jurisdiction != "" && pl.Jurisdiction != o.home:
				violate([]string{p.ID, pl.Node}, "the calendar actor of psychology provider %s runs on node %s (jurisdiction %s), outside %s",
					p.ID, pl.Node, pl.Jurisdiction, o.home)
			}
		}
		if page.NextCursor == "" || page.NextCursor == q.Cursor {
			break
		}
		q.Cursor = page.NextCursor
	}
	var audited error
	for _, m := range homeNodes {
		nc := nodeClient(m)
		if nc == nil {
			continue
		}
		n := 0
		audited = nc.AuditAll(ctx, client.AuditQuery{Limit: 500}, func(es []client.AuditEntry) error {
			for _, e := range es {
				n++
				for _, v := range auditNeedles(e) {
					add(v)
				}
			}
			return nil
		})
		if audited == nil {
			count("residency.audit_entries", n)
			break
		}
		fmt.Fprintf(warn, "warning: audit log from %s: %v\n", m.ID, audited)
	}
	if audited != nil {
		return res, fmt.Errorf("residency check: no node of %s served its audit log (last: %w)", o.home, audited)
	}
	if short > 0 {
		fmt.Fprintf(warn, "warning: %d id(s) shorter than %d bytes not looked for (they would match unrelated bytes)\n", short, minNeedle)
	}
	sort.Strings(homeCities)
	for _, city := range homeCities {
		add(check.Needle{Value: "cns_" + city + "_", What: "consent id prefix", NoControl: true})
	}
	// A booking id carries its provider's city: no booking of a city with
	// psychology providers belongs on a disk abroad (its store is at home).
	sort.Strings(psyCities)
	for _, city := range psyCities {
		add(check.Needle{Value: "bkg_" + city + "_", What: "booking id prefix of a city with psychology providers", NoControl: true})
	}
	for _, mk := range o.markers {
		add(check.Needle{Value: mk, What: "note marker", Base64: true, Sealed: true})
	}

	// 3. The scan.
	nodes := map[string]check.NodeDir{}
	control := false
	for i, s := range o.scan {
		node, dir, named := strings.Cut(s, "=")
		if !named {
			nodes[fmt.Sprintf("(dir %d)", i+1)] = check.NodeDir{Dir: s, Jurisdiction: "(not " + o.home + ")"}
			continue
		}
		j, ok := jur[node]
		if !ok {
			return res, usagef("--scan %s: no member %q in the cluster (members: %s)", s, node, strings.Join(slices.Sorted(maps.Keys(jur)), ", "))
		}
		nd := nodes[node]
		if nd.Dir == "" {
			nd = check.NodeDir{Dir: dir, Jurisdiction: j}
		} else {
			nd.Extra = append(nd.Extra, dir)
		}
		nodes[node] = nd
		control = control || j == o.home
	}
	if len(nodes) > 0 {
		res = check.Merge(res, check.ResidencyScan(o.home, nodes, needles, control))
	} else {
		count("residency.needles", len(needles))
		fmt.Fprintf(warn, "warning: no --scan given: only the nodes' answers were checked, no disk\n")
	}
	return res, nil
}

// minNeedle is the shortest id a scan looks for.
const minNeedle = 6

// auditNeedles are the ids an audit entry names that must stay at home: its
// object (a booking, consent or series id; "client:<id>" names a client), and
// its subject when that is a client.
func auditNeedles(e client.AuditEntry) []check.Needle {
	var out []check.Needle
	if id, ok := strings.CutPrefix(e.Object, "client:"); ok {
		out = append(out, check.Needle{Value: id, What: "client (audited)"})
	} else if e.Object != "" {
		out = append(out, check.Needle{Value: e.Object, What: "psychology record (audited " + e.Action + ")"})
	}
	if e.Role == "client" && e.Subject != "" {
		out = append(out, check.Needle{Value: e.Subject, What: "client (audited)"})
	}
	return out
}
