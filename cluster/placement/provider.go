package placement

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/cluster"

	"github.com/barberpro/edge/cluster/membership"
)

// MemberSource is what Provider needs from membership; *membership.Membership
// implements it. Its methods must be safe for concurrent use.
type MemberSource interface {
	// Local is this node.
	Local() membership.Member
	// Members are the alive nodes, this one included.
	Members() []membership.Member
	// Subscribe delivers membership changes until the cancel func is called or
	// the membership shuts down (which closes the channel).
	Subscribe() (<-chan membership.Event, func())
	// UpdateMeta changes and gossips this node's metadata.
	UpdateMeta(func(*membership.Meta)) error
}

// ProviderConfig configures a Provider.
type ProviderConfig struct {
	// Membership is the node's gossip membership. Required.
	Membership MemberSource
	// ResyncInterval re-publishes the topology from Membership.Members even
	// without an event, in case a subscriber channel dropped one. Default 1 s.
	ResyncInterval time.Duration
	// Logger receives the provider's log lines. Default slog.Default().
	Logger *slog.Logger
}

// Provider is a cluster.ClusterProvider that feeds the actor cluster's topology
// from membership. An alive node is an actor-cluster member once it advertises
// an actor address and at least one kind (StartMember does that). Joins,
// leaves, deaths and restarts reach the cluster as soon as membership reports
// them.
//
// This node is the member Meta.MemberID(), NodeID@BootID, which must also be
// the actor system's ID (see NewActorSystem). Every other node is published
// under an incarnation of its member id, NodeID@BootID@N (see Incarnation):
// protoactor blocks for good every member id that leaves its topology, so a
// node falsely declared dead (a partition longer than the dead timeout, a long
// pause) could never come back under the same id until it restarted. Here each
// return is a new incarnation that was never blocked, and the node rejoins the
// actor cluster as soon as gossip shows it alive again. No real actor system ID
// is ever blocked, so the remote's connection check never refuses a node.
type Provider struct {
	cfg ProviderConfig

	mu      sync.Mutex
	cluster *cluster.Cluster
	member  bool // started with StartMember (advertises kinds)
	stop    chan struct{}
	done    chan struct{}
	cancel  func()

	pubMu sync.Mutex        // serializes publish
	inc   map[string]uint64 // incarnation last given to each other node's member id
	in    map[string]bool   // other nodes' member ids in the last published topology
}

var _ cluster.ClusterProvider = (*Provider)(nil)

// NewProvider checks cfg and returns a Provider. It starts nothing.
func NewProvider(cfg ProviderConfig) (*Provider, error) {
	if cfg.Membership == nil {
		return nil, fmt.Errorf("%w: membership is required", ErrBadConfig)
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = time.Second
	}
	if cfg.ResyncInterval < 0 {
		return nil, fmt.Errorf("%w: resync interval must be positive", ErrBadConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Provider{cfg: cfg, inc: map[string]uint64{}, in: map[string]bool{}}, nil
}

// StartMember advertises this node's actor address and kinds in its membership
// metadata and starts publishing topology. It fails (and protoactor's
// Cluster.StartMember panics) if the actor system's ID is not the node's member
// id, or if the node registers a kind bound to another jurisdiction
// (ErrResidency).
func (p *Provider) StartMember(c *cluster.Cluster) error {
	self := p.cfg.Membership.Local()
	if c.ActorSystem.ID != self.MemberID() {
		return fmt.Errorf("placement: actor system id %q must be the node's member id %q (use placement.NewActorSystem)", c.ActorSystem.ID, self.MemberID())
	}
	kinds := c.GetClusterKinds()
	if err := checkResidency(kinds, self.Jurisdiction); err != nil {
		return err
	}
	slices.Sort(kinds)
	addr := c.ActorSystem.Address()
	if err := p.cfg.Membership.UpdateMeta(func(m *membership.Meta) {
		m.ActorAddr = addr
		m.Kinds = kinds
	}); err != nil {
		return fmt.Errorf("placement: advertise actor address: %w", err)
	}
	p.cfg.Logger.Info("actor cluster member started", "member", self.MemberID(), "actor_addr", addr, "kinds", kinds)
	return p.start(c, true)
}

// StartClient publishes topology to a client-only cluster, which hosts no kinds.
func (p *Provider) StartClient(c *cluster.Cluster) error { return p.start(c, false) }

// Shutdown stops publishing. When graceful, and the node was a member, it
// withdraws its actor address and kinds from membership so the other nodes drop
// it from their topology at once, even before the node leaves gossip.
func (p *Provider) Shutdown(graceful bool) error {
	p.mu.Lock()
	stop, done, cancel, member := p.stop, p.done, p.cancel, p.member
	p.stop = nil
	p.mu.Unlock()
	if stop == nil {
		return nil
	}
	close(stop)
	<-done
	cancel()
	if graceful && member {
		err := p.cfg.Membership.UpdateMeta(func(m *membership.Meta) { m.ActorAddr, m.Kinds = "", nil })
		if err != nil && !errors.Is(err, membership.ErrStopped) {
			return fmt.Errorf("placement: withdraw from actor cluster: %w", err)
		}
	}
	return nil
}

func (p *Provider) start(c *cluster.Cluster, member bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		return errors.New("placement: provider already started")
	}
	events, cancel := p.cfg.Membership.Subscribe()
	p.cluster, p.member, p.cancel = c, member, cancel
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	p.publish()
	go p.loop(events, p.stop, p.done)
	return nil
}

func (p *Provider) loop(events <-chan membership.Event, stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(p.cfg.ResyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case _, ok := <-events:
			if !ok {
				return // membership shut down
			}
			// Coalesce a burst of events into one publication.
			for drained := false; !drained; {
				select {
				case _, ok := <-events:
					if !ok {
						return
					}
				default:
					drained = true
				}
			}
			p.publish()
		case <-tick.C:
			p.publish()
		}
	}
}

// publish hands the current actor members to the cluster; the cluster ignores
// an unchanged set. Other nodes get their incarnation (see Provider): the one
// they had in the last publication if they were in it, else a new one.
func (p *Provider) publish() {
	p.pubMu.Lock()
	defer p.pubMu.Unlock()
	alive := p.cfg.Membership.Members()
	members := Topology(alive)
	self := p.cluster.ActorSystem.ID
	in := make(map[string]bool, len(members))
	for _, m := range members {
		if m.Id == self {
			continue
		}
		if !p.in[m.Id] {
			p.inc[m.Id]++
		}
		in[m.Id] = true
		m.Id = Incarnation(m.Id, p.inc[m.Id])
	}
	p.in = in
	// A boot id replaced by a newer one never comes back: forget it.
	boots := make(map[string]string, len(alive))
	for _, m := range alive {
		boots[m.NodeID] = m.BootID
	}
	for id := range p.inc {
		node, boot, _ := membership.SplitMemberID(id)
		if b, ok := boots[node]; ok && b != boot {
			delete(p.inc, id)
		}
	}
	p.cluster.MemberList.UpdateClusterTopology(members)
}

// Incarnation is the actor-cluster member id under which a node publishes
// another node's member id (NodeID@BootID) the n-th time that id enters its
// topology: NodeID@BootID@n. Node and boot ids cannot contain '@', so
// BaseMemberID recovers the member id.
func Incarnation(memberID string, n uint64) string {
	return memberID + "@" + strconv.FormatUint(n, 10)
}

// BaseMemberID returns the member id (NodeID@BootID) of an actor-cluster member
// id, with or without an incarnation (see Incarnation).
func BaseMemberID(id string) string {
	node, rest, ok := strings.Cut(id, "@")
	if !ok {
		return id
	}
	boot, _, _ := strings.Cut(rest, "@")
	return node + "@" + boot
}

// Topology converts alive membership members into actor-cluster members: those
// with an actor address and at least one kind, as NodeID@BootID.
func Topology(ms []membership.Member) []*cluster.Member {
	out := make([]*cluster.Member, 0, len(ms))
	for _, m := range ms {
		if m.State != membership.StateAlive || m.ActorAddr == "" || len(m.Kinds) == 0 {
			continue
		}
		host, portStr, err := net.SplitHostPort(m.ActorAddr)
		if err != nil {
			continue
		}
		port, err := strconv.ParseInt(portStr, 10, 32)
		if err != nil {
			continue
		}
		out = append(out, &cluster.Member{Id: m.MemberID(), Host: host, Port: int32(port), Kinds: slices.Clone(m.Kinds)})
	}
	return out
}

// checkResidency refuses kinds bound to another jurisdiction than the node's.
func checkResidency(kinds []string, jurisdiction string) error {
	for _, k := range kinds {
		if j := KindJurisdiction(k); j != "" && j != jurisdiction {
			return fmt.Errorf("%w: a %q node may not host kind %q", ErrResidency, jurisdiction, k)
		}
	}
	return nil
}
