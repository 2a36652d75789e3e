package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/placement"
	"github.com/barberpro/edge/edge"
	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/topology"
)

// Default ports of a node; each node of a local cluster takes its own loopback IP and
// keeps these.
const (
	DefaultHTTPPort   = 8080
	DefaultGossipPort = 7946
	DefaultRaftPort   = 7000
	DefaultActorPort  = 8090
	DefaultPeerPort   = 8081
)

// ErrBadConfig is wrapped by every error Validate returns.
var ErrBadConfig = errors.New("cluster: bad config")

// Config describes one node.
type Config struct {
	// ID names the node; it is also its Raft server ID. Required.
	ID string
	// City is the edge location the node serves; it must be in Topology. Required.
	City string
	// DataDir holds the node's bbolt files and Raft snapshots. Required.
	DataDir string
	// Bind is the IP every listener binds and advertises. Default 127.0.0.1.
	Bind string
	// HTTPPort serves the API. Default 8080; 0 picks a free port.
	HTTPPort int
	// RaftPort carries Raft traffic. Default 7000; 0 picks a free port.
	RaftPort int
	// GossipPort carries memberlist gossip (TCP and UDP). Default 7946; 0 picks a
	// free port.
	GossipPort int
	// ActorPort carries actor messages between nodes (protoactor remote, gRPC).
	// Default 8090; 0 picks a free port.
	ActorPort int
	// PeerPort serves the API to other nodes (relays, fan-out) over mutual TLS
	// only, and answers the certificate probes of other nodes. Default 8081 (next
	// to the API); 0 picks a free port.
	PeerPort int
	// TLSDir holds the node's certificate material: ca.crt (the cluster CA),
	// node.crt and node.key (`barberpro ca issue`). Required: every node-to-node
	// channel is mutual TLS 1.3 against the cluster CA, and the node refuses to
	// start when ID, City or City's jurisdiction disagree with its certificate,
	// or the certificate does not hold Bind.
	TLSDir string
	// APITLS serves the public API over HTTPS (TLS 1.3) with the node
	// certificate; no client certificate is asked for. Default off.
	APITLS bool
	// Join lists gossip addresses (host:port) of live members to join. Empty:
	// the node starts a cluster of its own.
	Join []string
	// GossipKey encrypts gossip: 16, 24 or 32 bytes shared by every node.
	// Required: no setting runs gossip in the clear.
	GossipKey []byte
	// BootstrapExpect is how many nodes of the jurisdiction, all without Raft
	// state, must be alive in gossip before one of them (the lowest node id)
	// founds the jurisdiction's Raft group; the others are then added to it.
	// No node founds while any known member of the jurisdiction holds Raft state
	// or a cluster id, so a node restarted on a wiped disk rejoins its group
	// instead of founding another. 0: never found, only be added to a group.
	// Give it the same value on every node of a jurisdiction: a majority of the
	// nodes it starts with (3 of 4 for ar), or 1 on the one node that founds
	// (`--bootstrap`).
	BootstrapExpect int
	// FoundingWait is how long the founding rule must hold without a break
	// before the node founds: long enough for the members that remember this
	// node (they knock on it every 2 s) to reach a node restarted on a wiped
	// disk and show it that its group exists. Default 15 s; LocalConfig 5 s.
	FoundingWait time.Duration
	// BackupDir, when set with BackupEvery, is where the group's leader writes
	// a backup of the jurisdiction's store every BackupEvery (followers write
	// none), keeping the newest BackupKeep files (0: all). Files are named
	// <jurisdiction>-<UTC time>-<applied index>-<node id>.bpbackup.
	BackupDir   string
	BackupEvery time.Duration
	BackupKeep  int
	// Topology is the set of cities and verticals. Default: the embedded one.
	Topology *topology.Topology
	// Storage tunes the Raft store; its NodeID, DataDir and RaftAddr are set from
	// the fields above. Default storage.DefaultConfig().
	Storage storage.Config
	// Membership tunes gossip timing; its identity, addresses, Join and key are
	// set from the fields above. Default membership.DefaultConfig().
	Membership membership.Config
	// Lookup tunes actor placement. Default placement.DefaultLookupConfig().
	Lookup placement.LookupConfig
	// ActorRequestTimeout bounds one request to a calendar actor, including
	// its activation; the cluster retries within it. Default 2 s.
	ActorRequestTimeout time.Duration
	// ForwardTimeout bounds a request forwarded to the Raft leader. Default 5 s.
	ForwardTimeout time.Duration
	// DeadServerTimeout is how long a Raft member may be gone from gossip
	// (dead, or left without `cluster leave`) before the leader removes it from
	// the group (logged, and listed in `cluster status` events); a caught-up
	// non-voter is then promoted. A removed node that comes back is added again
	// as a non-voter. Default 5 minutes.
	DeadServerTimeout time.Duration
	// GroupCheckInterval is how often the leader reconciles its Raft group with
	// gossip besides on every gossip event. Default 1 s.
	GroupCheckInterval time.Duration
	// ActorIdleTimeout passivates a calendar actor after this long without a
	// message. Default 10 minutes.
	ActorIdleTimeout time.Duration
	// ShutdownTimeout bounds a graceful stop. Default 10 seconds.
	ShutdownTimeout time.Duration
	// TokenKeys is the path of the JSON Web Key Set that people's bearer tokens
	// are verified against (`barberpro token init` writes one; an outside
	// identity provider may publish another). Required: the API has no
	// unauthenticated mode.
	TokenKeys string
	// TokenIssuer is the only iss a token may carry: auth.DefaultIssuer
	// ("barberpro"), what `barberpro token issue` writes; an outside identity
	// provider's own name for its tokens. Required.
	TokenIssuer string
	// TokenMaxTTL is the longest lifetime (exp − iat) of a token this node
	// accepts; longer ones are refused even before they expire. Default
	// auth.DefaultMaxTTL (30 days).
	TokenMaxTTL time.Duration
	// KEKFile is the path of the jurisdiction's key-encryption key (`barberpro
	// keys init --out FILE`), which wraps the clients' data keys that seal
	// session notes; its erasure ledger is FILE.erasures, next to it. Empty: the
	// node holds no key, and notes answer unavailable on it (sessions and
	// bookings still work).
	KEKFile string
	// Limits are the API's rate limits, per token subject and per client IP
	// without a token. Default edge.DefaultLimits().
	Limits edge.Limits
	// Clock is the node's time source. Default time.Now.
	Clock func() time.Time
	// Logger receives the node's JSON log lines. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a Config with production defaults and no identity.
func DefaultConfig() Config {
	return Config{
		Bind:                "127.0.0.1",
		HTTPPort:            DefaultHTTPPort,
		RaftPort:            DefaultRaftPort,
		GossipPort:          DefaultGossipPort,
		ActorPort:           DefaultActorPort,
		PeerPort:            DefaultPeerPort,
		Storage:             storage.DefaultConfig(),
		Membership:          membership.DefaultConfig(),
		Lookup:              placement.DefaultLookupConfig(),
		ActorRequestTimeout: 2 * time.Second,
		ForwardTimeout:      5 * time.Second,
		DeadServerTimeout:   5 * time.Minute,
		GroupCheckInterval:  time.Second,
		ActorIdleTimeout:    10 * time.Minute,
		ShutdownTimeout:     10 * time.Second,
		FoundingWait:        15 * time.Second,
		TokenIssuer:         auth.DefaultIssuer,
		TokenMaxTTL:         auth.DefaultMaxTTL,
		Limits:              edge.DefaultLimits(),
		Clock:               time.Now,
		Logger:              slog.Default(),
	}
}

// LocalConfig returns DefaultConfig with short timeouts for tests and simulations on
// loopback: free ports and storage.LocalConfig().
func LocalConfig() Config {
	c := DefaultConfig()
	c.HTTPPort, c.RaftPort, c.GossipPort, c.ActorPort, c.PeerPort = 0, 0, 0, 0, 0
	c.Storage = storage.LocalConfig()
	c.Membership = membership.LocalConfig()
	c.Lookup = placement.LocalLookupConfig()
	c.DeadServerTimeout = 30 * time.Second
	c.GroupCheckInterval = 250 * time.Millisecond
	c.ShutdownTimeout = 3 * time.Second
	c.FoundingWait = 5 * time.Second
	return c
}

// Validate reports the first problem with c, wrapping ErrBadConfig.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, a...))
	}
	top := c.Topology
	if top == nil {
		top = topology.Default()
	}
	switch {
	case c.ID == "":
		return bad("node id is required")
	case c.City == "":
		return bad("city is required")
	}
	// The node's identity first: a certificate and keys are checked against it.
	if _, err := top.City(c.City); err != nil {
		return bad("%v (known: %v)", err, top.CityNames())
	}
	switch {
	case c.DataDir == "":
		return bad("data dir is required")
	case c.TokenKeys == "":
		return bad("the token key set (--token-keys FILE) is required: `barberpro token init --dir DIR` makes DIR/keys.json")
	case c.TokenIssuer == "":
		return bad("the token issuer (--token-issuer) is required: %q for tokens of `barberpro token issue`, an outside identity provider's own name for its tokens", auth.DefaultIssuer)
	case c.TokenMaxTTL <= 0:
		return bad("the longest token lifetime (--token-max-ttl) must be positive")
	case c.TLSDir == "":
		return bad("tls dir is required (ca.crt, node.crt, node.key: `barberpro ca init` and `barberpro ca issue` make them)")
	case net.ParseIP(c.Bind) == nil:
		return bad("bind %q is not an IP address", c.Bind)
	case !validPorts(c.HTTPPort, c.RaftPort, c.GossipPort, c.ActorPort, c.PeerPort):
		return bad("ports must be in 0..65535 and differ from each other")
	case !slices.Contains([]int{16, 24, 32}, len(c.GossipKey)):
		return bad("the gossip key must be 16, 24 or 32 bytes (got %d): make one with `head -c 32 /dev/urandom | base64` and pass it as --gossip-key or BARBERPRO_GOSSIP_KEY", len(c.GossipKey))
	case c.ActorIdleTimeout <= 0 || c.ShutdownTimeout <= 0 || c.ActorRequestTimeout <= 0 ||
		c.ForwardTimeout <= 0 || c.DeadServerTimeout <= 0 || c.GroupCheckInterval <= 0:
		return bad("timeouts must be positive")
	case c.BootstrapExpect < 0:
		return bad("bootstrap-expect must be 0 or more (got %d)", c.BootstrapExpect)
	case c.FoundingWait < 0:
		return bad("founding wait must not be negative")
	case c.BackupEvery < 0 || c.BackupKeep < 0:
		return bad("backup interval and keep must not be negative")
	case c.BackupDir != "" && c.BackupEvery == 0:
		return bad("a backup dir needs a backup interval (--backup-every)")
	case c.Clock == nil || c.Logger == nil:
		return bad("clock and logger are required")
	}
	if c.KEKFile != "" && insideDir(c.KEKFile, c.DataDir) {
		// Its erasure ledger (FILE.erasures) must outlive the data dir: in it,
		// a data dir backup would carry the KEK and roll the ledger back.
		return bad("the key-encryption key file (--kek-file %s) must not be inside the data dir (%s): its erasure ledger beside it must outlive the data dir and stay out of its backups", c.KEKFile, c.DataDir)
	}
	if err := c.Limits.Validate(); err != nil {
		return bad("%v", err)
	}
	return nil
}

// insideDir reports whether path is dir or under it (both made absolute and
// cleaned; symbolic links are resolved where they exist).
func insideDir(path, dir string) bool {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			a = filepath.Clean(p)
		}
		// Resolve the longest part that exists (the file or its directories
		// may not exist yet).
		for head, tail := a, ""; ; {
			if r, err := filepath.EvalSymlinks(head); err == nil {
				return filepath.Join(r, tail)
			}
			parent := filepath.Dir(head)
			if parent == head {
				return a
			}
			head, tail = parent, filepath.Join(filepath.Base(head), tail)
		}
	}
	p, d := abs(path), abs(dir)
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

// validPorts reports whether every port is in range and the non-zero ones differ.
func validPorts(ports ...int) bool {
	seen := map[int]bool{}
	for _, p := range ports {
		if p < 0 || p > 65535 || (p != 0 && seen[p]) {
			return false
		}
		seen[p] = true
	}
	return true
}
