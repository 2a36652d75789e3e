package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/edge"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/topology"
)

func newNodeCmd() *cobra.Command {
	node := &cobra.Command{Use: "node", Short: "Run a BarberPro node"}
	node.AddCommand(newNodeStartCmd())
	return node
}

// nodeFlags are the flags of `node start`, as cli.md names them.
type nodeFlags struct {
	id, city, dataDir, bind, topologyFile, logLevel, gossipKey string
	tlsDir                                                     string
	httpPort, raftPort, gossipPort, actorPort, peerPort        int
	join                                                       []string
	bootstrap, apiTLS                                          bool
	profile                                                    string
	gcPercent, bootstrapExpect                                 int
	deadServerTimeout                                          time.Duration
	// retention of the store: how long idempotency records and cancelled
	// bookings are kept, and how often the leader compacts.
	idempotencyTTL, cancelledRetention, compactInterval time.Duration
	// tokenKeys is the key set of people's tokens; the rate limits per token
	// subject and per client IP without a token.
	tokenKeys string
	// kekFile is the jurisdiction's key-encryption key (notes are sealed
	// under data keys it wraps).
	kekFile string
	// tokenIssuer is the iss tokens must carry; tokenMaxTTL their longest
	// lifetime (exp − iat).
	tokenIssuer           string
	tokenMaxTTL           time.Duration
	subjectRate, ipRate   float64
	subjectBurst, ipBurst int
	// scheduled backups on the group's leader
	backupDir   string
	backupEvery time.Duration
	backupKeep  int
	// pprofAddr, when set, serves runtime profiles on that loopback address.
	pprofAddr string
}

func newNodeStartCmd() *cobra.Command {
	var f nodeFlags
	def := cluster.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start a node: its replicated store, calendar actors and HTTP API",
		Long: `Start a node: open (or create) its data dir, join its jurisdiction's Raft group
(or found it, see --bootstrap-expect), start its calendar actors and serve the HTTP
API. Logs JSON lines to stderr; stops cleanly on SIGTERM or SIGINT. Restarting on an
existing data dir resumes the node; restarting on a wiped one makes it a new server
of its group, which votes once it has caught up.

A group is founded once, ever: a node with an empty data dir founds its
jurisdiction's group only when --bootstrap-expect nodes of the jurisdiction
(1 with --bootstrap) are alive in gossip, none of them (nor any other member of
the jurisdiction it has heard of) holds Raft state or a cluster id, it has the
lowest node id, and all that has held for the founding wait (15 s; 5 s with
--profile local), long enough for members that remember this node to knock.
A data dir written by ` + "`barberpro restore`" + ` is the exception: the node founds a NEW
group on it at once (a new cluster id), holding the backup's records; the
jurisdiction's other nodes then join it with empty data dirs.`,
		Example: `  export BARBERPRO_GOSSIP_KEY=$(head -c 32 /dev/urandom | base64)
  barberpro ca init --dir ./pki/ca
  barberpro token init --dir ./data/tokens
  export BARBERPRO_TOKEN_KEYS=./data/tokens/keys.json
  barberpro ca issue --dir ./pki/ca --id ba-1 --city buenos-aires --ip 127.0.0.11 --out ./pki/ba-1
  barberpro node start --id ba-1 --city buenos-aires --data-dir ./data/ba-1 \
      --tls-dir ./pki/ba-1 --bind 127.0.0.11 --bootstrap-expect 3
  barberpro ca issue --dir ./pki/ca --id cba-1 --city cordoba --ip 127.0.0.12 --out ./pki/cba-1
  barberpro node start --id cba-1 --city cordoba --data-dir ./data/cba-1 \
      --tls-dir ./pki/cba-1 --bind 127.0.0.12 --bootstrap-expect 3 --join 127.0.0.11:7946
  barberpro ca issue --dir ./pki/ca --id us-1 --city us-east --ip 127.0.0.15 --out ./pki/us-1
  barberpro node start --id us-1 --city us-east --data-dir ./data/us-1 \
      --tls-dir ./pki/us-1 --bind 127.0.0.15 --bootstrap --join 127.0.0.11:7946`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(f.logLevel)
			if err != nil {
				return err
			}
			setGCPercent(f.gcPercent)
			top, err := topology.Load(f.topologyFile)
			if err != nil {
				return usageError{err}
			}
			cfg := cluster.DefaultConfig()
			switch f.profile {
			case "lan":
			case "local":
				cfg = cluster.LocalConfig()
			default:
				return usagef("--profile: %q is not lan or local", f.profile)
			}
			cfg.ID, cfg.City, cfg.DataDir, cfg.Bind = f.id, f.city, f.dataDir, f.bind
			cfg.HTTPPort, cfg.RaftPort, cfg.BootstrapExpect = f.httpPort, f.raftPort, f.bootstrapExpect
			if f.bootstrap && f.bootstrapExpect == 0 {
				cfg.BootstrapExpect = 1
			}
			if f.deadServerTimeout < 0 {
				return usagef("--dead-server-timeout must not be negative")
			}
			if f.deadServerTimeout > 0 {
				cfg.DeadServerTimeout = f.deadServerTimeout
			}
			cfg.GossipPort, cfg.ActorPort, cfg.Join = f.gossipPort, f.actorPort, f.join
			cfg.TLSDir, cfg.APITLS = f.tlsDir, f.apiTLS
			switch {
			case cmd.Flags().Changed("peer-port"):
				cfg.PeerPort = f.peerPort
			case f.httpPort == 0:
				cfg.PeerPort = 0 // a free port, like the API's
			default:
				cfg.PeerPort = f.httpPort + 1
			}
			if f.tlsDir == "" {
				return usagef("--tls-dir is required (ca.crt, node.crt, node.key): make them with `barberpro ca init --dir DIR` and `barberpro ca issue --dir DIR --id %s --city %s --ip %s --out TLSDIR`, then pass --tls-dir TLSDIR or set BARBERPRO_TLS_DIR", orDash(f.id), orDash(f.city), f.bind)
			}
			if f.gossipKey == "" {
				return usagef("--gossip-key is required (gossip is always encrypted): make one with `head -c 32 /dev/urandom | base64`, the same on every node, and pass it as --gossip-key KEY or set BARBERPRO_GOSSIP_KEY")
			}
			if f.compactInterval == 0 {
				return usagef("--compact-interval: 0 is not an interval (a negative value disables compaction)")
			}
			cfg.Storage.IdempotencyTTL = f.idempotencyTTL
			cfg.Storage.CancelledRetention = f.cancelledRetention
			cfg.Storage.CompactInterval = f.compactInterval
			if f.gossipKey != "" {
				if cfg.GossipKey, err = base64.StdEncoding.DecodeString(f.gossipKey); err != nil {
					return usagef("--gossip-key: not base64 (%v): make one with `head -c 32 /dev/urandom | base64`, the same on every node, and pass it as --gossip-key KEY or set BARBERPRO_GOSSIP_KEY", err)
				}
			}
			cfg.TokenKeys = f.tokenKeys
			cfg.KEKFile = f.kekFile
			if f.tokenIssuer == "" || f.tokenMaxTTL <= 0 {
				return usagef("--token-issuer must not be empty and --token-max-ttl must be positive")
			}
			cfg.TokenIssuer, cfg.TokenMaxTTL = f.tokenIssuer, f.tokenMaxTTL
			if f.subjectRate <= 0 || f.ipRate <= 0 || f.subjectBurst <= 0 || f.ipBurst <= 0 {
				return usagef("--rate-limit, --rate-burst, --ip-rate-limit and --ip-rate-burst must be positive")
			}
			cfg.Limits.PerSubject, cfg.Limits.SubjectBurst = rate.Limit(f.subjectRate), f.subjectBurst
			cfg.Limits.PerIP, cfg.Limits.IPBurst = rate.Limit(f.ipRate), f.ipBurst
			if f.backupDir != "" && f.backupEvery <= 0 {
				return usagef("--backup-dir needs --backup-every (e.g. 1h)")
			}
			if f.backupKeep < 0 {
				return usagef("--backup-keep must not be negative")
			}
			cfg.BackupDir, cfg.BackupEvery, cfg.BackupKeep = f.backupDir, f.backupEvery, f.backupKeep
			if f.backupDir == "" {
				cfg.BackupEvery = 0
			}
			cfg.Topology, cfg.Logger = top, log
			if f.pprofAddr != "" {
				if _, err := servePprof(f.pprofAddr, log); err != nil {
					return err
				}
			}
			return runNode(cmd.Context(), cfg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "", "node id, also its Raft server id (required)")
	fl.StringVar(&f.city, "city", "", "city this node serves, e.g. buenos-aires (required)")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory of the node's bbolt files and snapshots (required)")
	fl.StringVar(&f.bind, "bind", def.Bind, "IP address every listener binds")
	fl.IntVar(&f.httpPort, "http-port", def.HTTPPort, "port of the HTTP API")
	fl.IntVar(&f.raftPort, "raft-port", def.RaftPort, "port of Raft traffic")
	fl.IntVar(&f.gossipPort, "gossip-port", def.GossipPort, "port of memberlist gossip (TCP and UDP)")
	fl.IntVar(&f.actorPort, "actor-port", def.ActorPort, "port of actor messages between nodes")
	fl.IntVar(&f.peerPort, "peer-port", 0, "port of the peer HTTP listener (mutual TLS: relays between nodes, certificate probes); default --http-port + 1")
	fl.StringVar(&f.tlsDir, "tls-dir", "", "directory of the node's ca.crt, node.crt, node.key, made by barberpro ca issue (required)")
	fl.BoolVar(&f.apiTLS, "api-tls", false, "serve the public API over HTTPS (TLS 1.3) with the node certificate")
	fl.StringSliceVar(&f.join, "join", nil, "gossip addresses (ip:port) of members to join (seeds), comma-separated; while none answers the node keeps trying with backoff (500ms doubling to 30s, each attempt logged), reports unready on /readyz and never founds a group")
	fl.BoolVar(&f.bootstrap, "bootstrap", false, "this node may found its jurisdiction's Raft group (same as --bootstrap-expect 1): it does so only with an empty data dir, when no member of the jurisdiction holding state shows up in gossip for the founding wait; a wiped node rejoins instead")
	fl.IntVar(&f.bootstrapExpect, "bootstrap-expect", 0, "found the jurisdiction's Raft group once this many of its nodes, all without Raft state, are alive (the lowest node id founds; never while any member of the jurisdiction holds state); 0: only join (or 1 with --bootstrap)")
	fl.StringVar(&f.gossipKey, "gossip-key", "", "base64 of the 16, 24 or 32-byte key that encrypts gossip, the same on every node (required; make one with: head -c 32 /dev/urandom | base64)")
	fl.StringVar(&f.topologyFile, "topology", "", "topology YAML file (cities, verticals); default the embedded one")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	gcPercentFlag(fl, &f.gcPercent, "the node")
	fl.DurationVar(&f.deadServerTimeout, "dead-server-timeout", 0, "how long a Raft member may be gone from gossip before its group's leader removes it (logged, and listed in `cluster status` events); 0: the profile's (5m lan, 30s local)")
	sdef := storage.DefaultConfig()
	fl.DurationVar(&f.idempotencyTTL, "idempotency-ttl", sdef.IdempotencyTTL, "how long an Idempotency-Key is remembered (measured on Raft entry times; at least 1s)")
	fl.DurationVar(&f.cancelledRetention, "cancelled-retention", sdef.CancelledRetention, "how long a cancelled booking is kept after its cancellation, then removed (at least 1s)")
	fl.DurationVar(&f.compactInterval, "compact-interval", sdef.CompactInterval, "how often the Raft leader removes expired idempotency records and old cancelled bookings; negative disables")
	fl.StringVar(&f.tokenKeys, "token-keys", "", "JSON Web Key Set that people's bearer tokens are verified against (required; `barberpro token init --dir DIR` makes DIR/keys.json)")
	fl.StringVar(&f.kekFile, "kek-file", "", "the jurisdiction's key-encryption key `FILE`, made by 'barberpro keys init --out FILE' (mode 0600; its erasure ledger FILE.erasures lives next to it): session notes are sealed under client keys it wraps; without it this node answers notes with 503")
	fl.StringVar(&f.tokenIssuer, "token-issuer", def.TokenIssuer, "the only iss a bearer token may carry: what `barberpro token issue` writes, or an outside identity provider's own name")
	fl.DurationVar(&f.tokenMaxTTL, "token-max-ttl", def.TokenMaxTTL, "the longest lifetime (exp - iat) of a bearer token this node accepts; longer ones are refused even before they expire")
	ldef := edge.DefaultLimits()
	fl.Float64Var(&f.subjectRate, "rate-limit", float64(ldef.PerSubject), "requests per second one token subject may send to this node, sustained")
	fl.IntVar(&f.subjectBurst, "rate-burst", ldef.SubjectBurst, "requests one token subject may send to this node at once")
	fl.Float64Var(&f.ipRate, "ip-rate-limit", float64(ldef.PerIP), "requests per second one client IP without a valid token may send, sustained")
	fl.IntVar(&f.ipBurst, "ip-rate-burst", ldef.IPBurst, "requests one client IP without a valid token may send at once")
	fl.StringVar(&f.backupDir, "backup-dir", "", "directory where this node writes a backup of its jurisdiction's store every --backup-every while it leads its Raft group (files <jurisdiction>-<time>-<index>.bpbackup; restore with barberpro restore); empty: no scheduled backups")
	fl.DurationVar(&f.backupEvery, "backup-every", time.Hour, "interval of scheduled backups (with --backup-dir)")
	fl.IntVar(&f.backupKeep, "backup-keep", 48, "how many scheduled backup files to keep (the oldest beyond are removed; 0 keeps all)")
	fl.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go runtime profiles (/debug/pprof/, e.g. go tool pprof http://ADDR/debug/pprof/profile?seconds=20) on this loopback host:port; off when empty. No token: loopback only")
	fl.StringVar(&f.profile, "profile", "lan", "timing preset: lan (cities on a LAN/WAN) or local (one machine: fast failure detection, for tests and simulations)")
	return cmd
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level: %v", err)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// runNode starts a node and runs it until SIGINT/SIGTERM or until it fails.
func runNode(ctx context.Context, cfg cluster.Config) error {
	n, err := cluster.New(cfg)
	if err != nil {
		return usageError{err}
	}
	if err := n.Start(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		cfg.Logger.Info("signal received, stopping")
		return n.Stop()
	case err := <-n.Done():
		// The node left the cluster (`cluster leave`), or its server failed.
		n.Stop()
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		cfg.Logger.Info("left the cluster, exiting")
		return nil
	}
}

// orDash is s, or "-" when s is empty (an example value in a message).
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
