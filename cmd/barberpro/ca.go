package main

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/barberpro/edge/cluster/pki"
	"github.com/barberpro/edge/topology"
)

func newCACmd() *cobra.Command {
	ca := &cobra.Command{Use: "ca", Short: "Make the cluster CA and node certificates (mutual TLS between nodes)"}
	ca.AddCommand(newCAInitCmd(), newCAIssueCmd())
	return ca
}

func newCAInitCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Make a cluster CA: DIR/ca.crt and DIR/ca.key (0600)",
		Long: `Make the cluster CA every node trusts: an ECDSA P-256 key (DIR/ca.key, 0600)
and its self-signed certificate (DIR/ca.crt), valid 10 years. Keep ca.key off the
nodes: only ` + "`barberpro ca issue`" + ` needs it. Refuses to overwrite an existing CA.`,
		Example: "  barberpro ca init --dir ./pki/ca",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef("--dir is required")
			}
			if err := pki.InitCA(dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "CA written: %s, %s\n", filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory of the CA (created if missing; required)")
	return cmd
}

func newCAIssueCmd() *cobra.Command {
	var dir, id, city, out, topologyFile string
	var ips []string
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a node certificate: OUT/ca.crt, OUT/node.crt, OUT/node.key",
		Long: `Issue a certificate for one node, signed by the CA in --dir. Its URI SAN names the
node, barberpro://node/<jurisdiction>/<city>/<id>, with the jurisdiction the topology
gives the city; its IP SANs are the --ip addresses (the node's --bind). The node
starts with ` + "`node start --tls-dir OUT`" + ` and refuses to if its --id, --city or --bind
disagree with the certificate. Valid one year. Refuses to overwrite.`,
		Example: "  barberpro ca issue --dir ./pki/ca --id ba-1 --city buenos-aires --ip 127.0.0.11 --out ./pki/ba-1",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case dir == "" || id == "" || city == "" || out == "":
				return usagef("--dir, --id, --city and --out are required")
			case len(ips) == 0:
				return usagef("--ip is required: the address the node binds (--bind)")
			}
			top, err := topology.Load(topologyFile)
			if err != nil {
				return usageError{err}
			}
			c, err := top.City(city)
			if err != nil {
				return usagef("--city: %v (known: %v)", err, top.CityNames())
			}
			var addrs []net.IP
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return usagef("--ip: %q is not an IP address", s)
				}
				addrs = append(addrs, ip)
			}
			ident := pki.Identity{Jurisdiction: c.Jurisdiction, City: city, NodeID: id}
			if err := pki.Issue(dir, ident, addrs, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "certificate for %s (%v) written to %s\n", ident.URI(), ips, out)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", "", "directory of the CA (required)")
	fl.StringVar(&id, "id", "", "node id (required)")
	fl.StringVar(&city, "city", "", "city the node serves (required); its jurisdiction comes from the topology")
	fl.StringSliceVar(&ips, "ip", nil, "IP address(es) of the node, comma-separated (required)")
	fl.StringVar(&out, "out", "", "directory to write ca.crt, node.crt, node.key to (required)")
	fl.StringVar(&topologyFile, "topology", "", "topology YAML file; default the embedded one")
	return cmd
}
