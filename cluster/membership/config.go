package membership

import (
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Config describes one node's membership. Build it from DefaultConfig or
// LocalConfig, then set Meta, the addresses, Join and SecretKey.
type Config struct {
	// Meta is what this node gossips about itself. NodeID, City and Jurisdiction
	// are required; an empty BootID gets a random one in New. ActorAddr and Kinds
	// may be filled in later with Membership.UpdateMeta.
	Meta Meta

	// BindAddr is the IP gossip listens on (UDP and TCP). Default "127.0.0.1".
	BindAddr string
	// BindPort is the gossip port. Default 7946; 0 picks a free port, which is then
	// advertised.
	BindPort int
	// AdvertiseAddr and AdvertisePort are what other nodes dial, when they differ
	// from BindAddr/BindPort (e.g. binding 0.0.0.0). Default: the bind address.
	AdvertiseAddr string
	AdvertisePort int

	// Join lists gossip addresses (host:port) of any live members. Empty: the node
	// starts alone and others join it.
	Join []string
	// JoinTimeout bounds how long Start keeps retrying Join before it gives up with
	// ErrJoin. Default 10 s (Local: 2 s).
	JoinTimeout time.Duration
	// RetryJoin makes Start keep going when no Join address answers within
	// JoinTimeout: it returns nil with the node alone in its gossip, and the
	// caller keeps trying (Join), as Consul's retry_join does. Without it
	// Start fails with ErrJoin.
	RetryJoin bool
	// JoinRetryInterval is the pause between Join attempts. Default 250 ms
	// (Local: 100 ms).
	JoinRetryInterval time.Duration

	// SecretKey encrypts and authenticates all gossip (AES-GCM); 16, 24 or 32
	// bytes, the same on every node. Required unless Insecure is set. A node with
	// another key cannot join.
	SecretKey []byte
	// Insecure allows an empty SecretKey (plaintext gossip). Only LocalConfig sets
	// it, for tests and simulations on loopback.
	Insecure bool

	// ProbeInterval is how often each node probes one random peer (SWIM).
	// Default 400 ms (memberlist LAN: 1 s; Local: 200 ms).
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for its ack before asking
	// IndirectChecks other nodes to probe; it must exceed the worst inter-city
	// RTT and be below ProbeInterval. Default 200 ms (LAN: 500 ms; Local: 100 ms).
	ProbeTimeout time.Duration
	// IndirectChecks is how many peers probe on our behalf after a failed direct
	// probe. Default 3 (Local: 1).
	IndirectChecks int
	// SuspicionMult scales how long a suspect node has to refute before it is
	// declared dead: SuspicionMult * max(1, log10(N)) * ProbeInterval, i.e.
	// 3 * 400 ms = 1.2 s for up to 10 nodes. Default 3 (LAN: 4; Local: 3).
	SuspicionMult int
	// SuspicionMaxTimeoutMult caps the suspicion timeout, as a multiple of the
	// above, while too few peers confirm the suspicion. Default 4 (LAN: 6).
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often queued broadcasts (joins, deaths, meta updates)
	// are sent to GossipNodes random peers. Default 100 ms (LAN: 200 ms).
	GossipInterval time.Duration
	// GossipNodes is how many peers each gossip round goes to. Default 3.
	GossipNodes int
	// GossipToTheDeadTime is how long we keep gossiping to a dead node, so it can
	// learn it was declared dead and refute. Default 15 s (Local: 5 s).
	GossipToTheDeadTime time.Duration
	// RetransmitMult: a broadcast is retransmitted RetransmitMult * log(N+1)
	// times. Default 4 (Local: 2).
	RetransmitMult int
	// PushPullInterval is the period of full-state anti-entropy syncs over TCP.
	// Default 5 s (Local: 1 s): a meta change a node missed (it joined while the
	// change was being gossiped) reaches it within one interval.
	PushPullInterval time.Duration
	// TCPTimeout bounds a TCP exchange (join, push/pull, fallback ping). Default
	// 2 s (Local: 1 s).
	TCPTimeout time.Duration
	// DeadNodeReclaimTime is how long after its death a node's name may come back
	// from another address (a node restarted on a new IP or port). 0 means never.
	// Default 10 s (Local: 1 ms).
	DeadNodeReclaimTime time.Duration

	// LeaveNoticeTimeout bounds how long Leave spends telling every peer directly
	// that the coming departure is graceful (memberlist does not tell its
	// delegates "left" from "dead"). Default 1 s (Local: 500 ms).
	LeaveNoticeTimeout time.Duration
	// DeadRetention is how long AllMembers keeps showing a dead or left node.
	// Default 10 minutes (Local: 1 minute).
	DeadRetention time.Duration
	// EventBuffer is the capacity of each subscriber's channel; when it is full
	// the oldest event is dropped. Default 256.
	EventBuffer int

	// Drop, if set, cuts this node off from peers the way a firewall would:
	// every gossip packet and TCP stream to or from a peer IP for which it
	// returns true is dropped (an outgoing dial fails). It exists for fault
	// injection, to partition in-process nodes on loopback without iptables;
	// production leaves it nil, which costs nothing.
	Drop func(peerIP string) bool

	// Clock stamps state changes. Default time.Now.
	Clock func() time.Time
	// Logger receives memberlist's log lines as slog records (its [DEBUG] lines at
	// Debug, [WARN] at Warn, [ERR] at Error). Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns production settings for a LAN of cities: memberlist's
// DefaultLANConfig tightened so a crashed node is declared dead in about 1.5-2 s
// (a probe round of 400 ms, a 200 ms probe timeout, then 1.2 s of suspicion).
// If a jurisdiction's nodes sit across a real WAN (RTT > 100 ms), raise
// ProbeTimeout and ProbeInterval: a false "dead" evicts a node from the actor
// cluster (its calendars move) until gossip sees it alive again.
func DefaultConfig() Config {
	return Config{
		BindAddr:                "127.0.0.1",
		BindPort:                7946,
		JoinTimeout:             10 * time.Second,
		JoinRetryInterval:       250 * time.Millisecond,
		ProbeInterval:           400 * time.Millisecond,
		ProbeTimeout:            200 * time.Millisecond,
		IndirectChecks:          3,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 4,
		GossipInterval:          100 * time.Millisecond,
		GossipNodes:             3,
		GossipToTheDeadTime:     15 * time.Second,
		RetransmitMult:          4,
		PushPullInterval:        5 * time.Second,
		TCPTimeout:              2 * time.Second,
		DeadNodeReclaimTime:     10 * time.Second,
		LeaveNoticeTimeout:      time.Second,
		DeadRetention:           10 * time.Minute,
		EventBuffer:             256,
		Clock:                   time.Now,
		Logger:                  slog.Default(),
	}
}

// LocalConfig returns settings for tests and simulations on loopback: a free
// port, no encryption required, and failure detection in well under a second
// (probe every 200 ms, 100 ms probe timeout, 600 ms of suspicion).
func LocalConfig() Config {
	c := DefaultConfig()
	c.BindPort = 0
	c.Insecure = true
	c.JoinTimeout = 2 * time.Second
	c.JoinRetryInterval = 100 * time.Millisecond
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.IndirectChecks = 1
	c.SuspicionMult = 3
	c.RetransmitMult = 2
	c.GossipToTheDeadTime = 5 * time.Second
	c.PushPullInterval = time.Second
	c.TCPTimeout = time.Second
	c.DeadNodeReclaimTime = time.Millisecond
	c.LeaveNoticeTimeout = 500 * time.Millisecond
	c.DeadRetention = time.Minute
	return c
}

// Validate reports the first problem with c, wrapping ErrBadConfig. An empty
// Meta.BootID is allowed (New fills it).
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, a...))
	}
	meta := c.Meta
	if meta.BootID == "" {
		meta.BootID = "x"
	}
	if err := meta.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	switch {
	case net.ParseIP(c.BindAddr) == nil:
		return bad("bind address %q is not an IP", c.BindAddr)
	case c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil:
		return bad("advertise address %q is not an IP", c.AdvertiseAddr)
	case c.BindPort < 0 || c.BindPort > 65535 || c.AdvertisePort < 0 || c.AdvertisePort > 65535:
		return bad("ports must be in 0..65535")
	case len(c.SecretKey) == 0 && !c.Insecure:
		return bad("a secret key is required (16, 24 or 32 bytes) unless Insecure is set")
	case len(c.SecretKey) != 0 && len(c.SecretKey) != 16 && len(c.SecretKey) != 24 && len(c.SecretKey) != 32:
		return bad("secret key must be 16, 24 or 32 bytes, not %d", len(c.SecretKey))
	case c.ProbeInterval <= 0 || c.ProbeTimeout <= 0 || c.GossipInterval <= 0 || c.PushPullInterval <= 0 || c.TCPTimeout <= 0:
		return bad("probe, gossip, push/pull and TCP intervals must be positive")
	case c.ProbeTimeout >= c.ProbeInterval:
		return bad("probe timeout %v must be below probe interval %v", c.ProbeTimeout, c.ProbeInterval)
	case c.SuspicionMult < 1 || c.SuspicionMaxTimeoutMult < 1 || c.IndirectChecks < 0 || c.GossipNodes < 1 || c.RetransmitMult < 1:
		return bad("suspicion multipliers, gossip nodes and retransmit mult must be >= 1")
	case c.GossipToTheDeadTime < 0 || c.DeadNodeReclaimTime < 0 || c.DeadRetention < 0:
		return bad("durations must not be negative")
	case c.JoinTimeout <= 0 || c.JoinRetryInterval <= 0 || c.LeaveNoticeTimeout <= 0:
		return bad("join timeout, join retry interval and leave notice timeout must be positive")
	case c.EventBuffer < 1:
		return bad("event buffer must be >= 1")
	case c.Clock == nil || c.Logger == nil:
		return bad("clock and logger are required")
	}
	return nil
}
