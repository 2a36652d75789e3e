package placement

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"

	"github.com/barberpro/edge/cluster/membership"
)

// ActivatorName is the name of the placement actor every member runs.
const ActivatorName = "barberpro-placement"

// Directory resolves member ids (NodeID@BootID, without the incarnation the
// actor cluster may add, see Incarnation) to membership records, for their city
// and jurisdiction. *membership.Membership implements
// it. It must be safe for concurrent use.
type Directory interface {
	MemberByActorID(id string) (membership.Member, bool)
}

// LookupConfig configures a Lookup.
type LookupConfig struct {
	// Directory maps member ids to cities and jurisdictions. Required.
	Directory Directory
	// ActivationTimeout bounds one activation request to the owner's placement
	// actor. An owner that crashed but is not yet declared dead costs this much
	// per attempt. Default 2 s (Local: 500 ms).
	ActivationTimeout time.Duration
	// StaleCheck is how often each member stops the activations it holds but
	// does not own under its current view of the topology. A requester whose
	// view differed placed them here: views disagree for a moment after every
	// change, and for longer while a healed partition converges, and without a
	// further change of this member's topology nothing else would stop them
	// before they idle out. An activation younger than StaleCheck is left alone,
	// so the request that created it is served first. Default 1 s (Local:
	// 250 ms).
	StaleCheck time.Duration
	// Logger receives the lookup's log lines. Default slog.Default().
	Logger *slog.Logger
}

// DefaultLookupConfig returns production settings (no Directory).
func DefaultLookupConfig() LookupConfig {
	return LookupConfig{ActivationTimeout: 2 * time.Second, StaleCheck: time.Second, Logger: slog.Default()}
}

// LocalLookupConfig returns settings for tests and simulations on loopback.
func LocalLookupConfig() LookupConfig {
	c := DefaultLookupConfig()
	c.ActivationTimeout = 500 * time.Millisecond
	c.StaleCheck = 250 * time.Millisecond
	return c
}

// Lookup is a city-affine, jurisdiction-constrained cluster.IdentityLookup. The
// owner of an identity is Place over the current topology; Get asks the owner's
// placement actor (ActivatorName) to activate it and returns its PID. When the
// topology changes, each member stops the activations it no longer owns, so a
// provider's calendar returns to its home city when a node there comes back;
// every StaleCheck it also stops those a requester with another view placed on
// it, so two activations of one identity do not outlive a disagreement.
//
// The cluster calls Setup, Get, RemovePid and Shutdown; the edge calls Owner.
// All methods are safe for concurrent use.
type Lookup struct {
	cfg LookupConfig

	mu         sync.RWMutex
	cluster    *cluster.Cluster
	candidates []Candidate
	hash       uint64 // topology hash of candidates
	activator  *actor.PID
	subs       []*eventstream.Subscription
	shutdown   bool
}

var _ cluster.IdentityLookup = (*Lookup)(nil)

// NewLookup checks cfg and returns a Lookup; it starts nothing.
func NewLookup(cfg LookupConfig) (*Lookup, error) {
	if cfg.Directory == nil {
		return nil, fmt.Errorf("%w: directory is required", ErrBadConfig)
	}
	if cfg.ActivationTimeout <= 0 {
		return nil, fmt.Errorf("%w: activation timeout must be positive", ErrBadConfig)
	}
	if cfg.StaleCheck == 0 {
		cfg.StaleCheck = time.Second
	}
	if cfg.StaleCheck < 0 {
		return nil, fmt.Errorf("%w: stale check interval must be positive", ErrBadConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Lookup{cfg: cfg}, nil
}

// Setup is called by the cluster before its provider starts. A member spawns its
// placement actor; both members and clients follow the topology.
func (l *Lookup) Setup(c *cluster.Cluster, kinds []string, isClient bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cluster = c
	// No topology has been published yet (the provider starts after Setup), so
	// reading the member list here does not race with its updates.
	l.candidates = l.toCandidates(c.MemberList.Members().Members())
	l.hash = c.MemberList.Members().TopologyHash()
	if !isClient {
		props := actor.PropsFromProducer(func() actor.Actor { return newActivator(l, c) })
		pid, err := c.ActorSystem.Root.SpawnNamed(props, ActivatorName)
		if err != nil {
			l.cfg.Logger.Error("placement: cannot spawn the placement actor", "err", err)
		}
		l.activator = pid
	}
	es := c.ActorSystem.EventStream
	l.subs = append(l.subs,
		es.SubscribeWithPredicate(func(ev any) { l.onTopology(ev.(*cluster.ClusterTopology)) },
			func(ev any) bool { _, ok := ev.(*cluster.ClusterTopology); return ok }),
		es.SubscribeWithPredicate(func(ev any) {
			t := ev.(*cluster.ActivationTerminated)
			if t.ClusterIdentity != nil {
				c.PidCache.RemoveByValue(t.ClusterIdentity.Identity, t.ClusterIdentity.Kind, t.Pid)
				l.mu.RLock()
				activator := l.activator
				l.mu.RUnlock()
				if activator != nil && t.Pid != nil {
					c.ActorSystem.Root.Send(activator, &activationEnded{ci: t.ClusterIdentity, pid: t.Pid})
				}
			}
		}, func(ev any) bool { _, ok := ev.(*cluster.ActivationTerminated); return ok }),
	)
}

func (l *Lookup) onTopology(t *cluster.ClusterTopology) {
	cands := l.toCandidates(t.Members)
	l.mu.Lock()
	l.candidates, l.hash = cands, t.TopologyHash
	activator, c := l.activator, l.cluster
	l.mu.Unlock()
	if activator != nil {
		c.ActorSystem.Root.Send(activator, &topologyChanged{candidates: cands})
	}
}

func (l *Lookup) toCandidates(members []*cluster.Member) []Candidate {
	out := make([]Candidate, 0, len(members))
	for _, m := range members {
		c := Candidate{MemberID: m.Id, Address: m.Address(), Kinds: append([]string(nil), m.Kinds...)}
		c.NodeID, _, _ = membership.SplitMemberID(m.Id)
		if mem, ok := l.cfg.Directory.MemberByActorID(BaseMemberID(m.Id)); ok {
			c.City, c.Jurisdiction = mem.City, mem.Jurisdiction
		}
		out = append(out, c)
	}
	return out
}

// Candidates returns the members placement currently chooses from.
func (l *Lookup) Candidates() []Candidate {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return append([]Candidate(nil), l.candidates...)
}

func (l *Lookup) place(identity, kind string) (Candidate, uint64, error) {
	l.mu.RLock()
	cands, hash := l.candidates, l.hash
	l.mu.RUnlock()
	c, err := Place(identity, kind, cands)
	return c, hash, err
}

// Owner returns the node that hosts (or would host) identity of kind under the
// current topology, or an error wrapping ErrNoMember.
func (l *Lookup) Owner(identity, kind string) (membership.Member, error) {
	c, _, err := l.place(identity, kind)
	if err != nil {
		return membership.Member{}, err
	}
	if m, ok := l.cfg.Directory.MemberByActorID(BaseMemberID(c.MemberID)); ok {
		return m, nil
	}
	_, boot, _ := membership.SplitMemberID(BaseMemberID(c.MemberID))
	return membership.Member{
		Meta:  membership.Meta{NodeID: c.NodeID, BootID: boot, City: c.City, Jurisdiction: c.Jurisdiction, ActorAddr: c.Address, Kinds: c.Kinds},
		State: membership.StateAlive,
	}, nil
}

// Get returns the PID of identity's activation, activating it on its owner if
// needed; nil if there is no owner or the owner does not answer within
// ActivationTimeout (the cluster then retries).
func (l *Lookup) Get(ci *cluster.ClusterIdentity) *actor.PID {
	l.mu.RLock()
	c := l.cluster
	l.mu.RUnlock()
	if c == nil {
		return nil
	}
	owner, hash, err := l.place(ci.Identity, ci.Kind)
	if err != nil {
		l.cfg.Logger.Debug("placement: no owner", "identity", ci.Identity, "kind", ci.Kind, "err", err)
		return nil
	}
	req := &cluster.ActivationRequest{ClusterIdentity: ci, TopologyHash: hash}
	res, err := c.ActorSystem.Root.RequestFuture(actor.NewPID(owner.Address, ActivatorName), req, l.cfg.ActivationTimeout).Result()
	if err != nil {
		l.cfg.Logger.Warn("placement: activation request failed", "identity", ci.Identity, "kind", ci.Kind, "owner", owner.MemberID, "err", err)
		return nil
	}
	resp, ok := res.(*cluster.ActivationResponse)
	if !ok || resp.Failed || resp.Pid == nil {
		l.cfg.Logger.Warn("placement: activation refused", "identity", ci.Identity, "kind", ci.Kind, "owner", owner.MemberID)
		return nil
	}
	return resp.Pid
}

// RemovePid forgets a cached PID of identity.
func (l *Lookup) RemovePid(ci *cluster.ClusterIdentity, pid *actor.PID) {
	l.mu.RLock()
	c := l.cluster
	l.mu.RUnlock()
	if c != nil && ci != nil {
		c.PidCache.RemoveByValue(ci.Identity, ci.Kind, pid)
	}
}

// Shutdown stops following the topology and stops the placement actor with all
// local activations. It is safe to call more than once (protoactor does).
func (l *Lookup) Shutdown() {
	l.mu.Lock()
	if l.shutdown || l.cluster == nil {
		l.mu.Unlock()
		return
	}
	l.shutdown = true
	c, activator, subs := l.cluster, l.activator, l.subs
	l.subs = nil
	l.mu.Unlock()
	for _, s := range subs {
		c.ActorSystem.EventStream.Unsubscribe(s)
	}
	if activator != nil {
		if err := c.ActorSystem.Root.PoisonFuture(activator).Wait(); err != nil && !errors.Is(err, actor.ErrTimeout) {
			l.cfg.Logger.Warn("placement: stopping the placement actor", "err", err)
		}
	}
}
