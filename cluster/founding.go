package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/storage"
)

// foundCheckInterval is how often a node without Raft state re-reads gossip to
// decide whether to found its group, besides on every membership event.
const foundCheckInterval = 250 * time.Millisecond

// foundingVerdict says whether this node founds its jurisdiction's group now,
// and if not, why not. The rule (Consul's bootstrap_expect, made safe for wiped
// disks): a node founds only when it holds no Raft state, BootstrapExpect
// nodes of its jurisdiction are alive in gossip, no known member of the
// jurisdiction (alive, dead or left) holds Raft state or a cluster id, and it
// has the lowest node id of the live ones. Two nodes found two groups only if
// they cannot see each other and each sees BootstrapExpect founders — which a
// majority expectation rules out.
//
// A node started with --join founds nothing while none of its seeds has ever
// answered (seedsAnswered false): alone, it would see itself as the expected
// founders (bootstrap-expect 1) and fork the group its seeds belong to.
func foundingVerdict(self string, jurisdiction string, expect int, members []membership.Member, seedsAnswered bool) (bool, string) {
	if expect <= 0 {
		return false, "bootstrap-expect is 0: waiting to be added to the group"
	}
	if !seedsAnswered {
		return false, "none of the --join seeds has answered yet: a node given seeds joins their group, it never founds one alone"
	}
	var alive []string
	for _, m := range members {
		if m.Jurisdiction != jurisdiction {
			continue
		}
		if m.NodeID != self && (m.Founded || m.ClusterID != "") {
			return false, fmt.Sprintf("the group exists (member %s holds its state): waiting to be added", m.NodeID)
		}
		if m.State == membership.StateAlive && !m.Leaving {
			alive = append(alive, m.NodeID)
		}
	}
	if len(alive) < expect {
		return false, fmt.Sprintf("%d of %d expected nodes of %s alive: waiting", len(alive), expect, jurisdiction)
	}
	for _, id := range alive {
		if id < self {
			return false, fmt.Sprintf("%s founds the group (lowest node id): waiting to be added", id)
		}
	}
	return true, ""
}

// foundWhenDue runs while the node has no Raft state: on every membership event
// and every foundCheckInterval it applies the founding rule, and founds the
// group once the rule has held without a break for FoundingWait. It returns
// once the node holds state (founded, or added by the group's leader) or ctx
// ends.
func (n *Node) foundWhenDue(ctx context.Context) {
	events, unsub := n.members.Subscribe()
	defer unsub()
	tick := time.NewTicker(foundCheckInterval)
	defer tick.Stop()
	lastWhy := ""
	var holdsSince time.Time // when the rule began to hold; zero while it does not
	for {
		if n.store.HasState() {
			return
		}
		ok, why := foundingVerdict(n.cfg.ID, n.city.Jurisdiction, n.cfg.BootstrapExpect, n.members.AllMembers(), n.seedsAnswered.Load())
		switch {
		case !ok:
			holdsSince = time.Time{}
		case holdsSince.IsZero():
			holdsSince = time.Now()
			ok, why = false, fmt.Sprintf("founding in %s unless the group shows up", n.cfg.FoundingWait)
		case time.Since(holdsSince) < n.cfg.FoundingWait:
			ok, why = false, fmt.Sprintf("founding in %s unless the group shows up", n.cfg.FoundingWait)
		}
		if ok {
			// Say so before founding: a group's keeper admits no member that
			// may hold a history of its own.
			if err := n.members.UpdateMeta(func(m *membership.Meta) { m.Founded = true }); err != nil {
				n.log.Warn("gossip founded", "err", err)
			}
			err := n.store.Found()
			switch {
			case err == nil:
				n.log.Info("founded the jurisdiction's raft group", "jurisdiction", n.city.Jurisdiction, "expect", n.cfg.BootstrapExpect)
				return
			case errors.Is(err, storage.ErrAlreadyFounded):
				n.log.Warn("not founding: the data dir already belongs to a group", "err", err)
				return
			default:
				n.log.Error("found raft group", "err", err)
			}
		} else if why != lastWhy {
			n.log.Info("not founding a raft group", "reason", why)
			lastWhy = why
		}
		select {
		case <-ctx.Done():
			return
		case <-events:
		case <-tick.C:
		}
	}
}

// seeds are the --join addresses other than this node's own.
func (n *Node) seeds() []string {
	self := n.members.GossipAddr()
	var out []string
	for _, a := range n.cfg.Join {
		if a != "" && a != self {
			out = append(out, a)
		}
	}
	return out
}

// othersSeen reports whether gossip shows another node, alive now.
func (n *Node) othersSeen() bool {
	for _, m := range n.members.Members() {
		if m.NodeID != n.cfg.ID {
			return true
		}
	}
	return false
}

// Retry pauses of retryJoin: doubling from the first to the last.
const (
	retryJoinFirst = 500 * time.Millisecond
	retryJoinMax   = 30 * time.Second
)

// retryJoin keeps trying the --join seeds, with backoff, until one answers (or
// another node joins this one) or ctx ends, logging each attempt; meanwhile
// Ready says the node is joining and the founding rule holds it back.
func (n *Node) retryJoin(ctx context.Context, seeds []string) {
	wait := retryJoinFirst
	for {
		if n.othersSeen() {
			n.seedsAnswered.Store(true)
			n.log.Info("joined the cluster", "attempts", n.joinAttempts.Load())
			return
		}
		attempt := n.joinAttempts.Add(1)
		k, err := n.members.Join(seeds)
		if k > 0 {
			n.seedsAnswered.Store(true)
			n.log.Info("joined the cluster through its seeds", "attempt", attempt, "answered", k)
			return
		}
		n.log.Warn("no --join seed answered; retrying", "attempt", attempt, "seeds", seeds, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, retryJoinMax)
	}
}
