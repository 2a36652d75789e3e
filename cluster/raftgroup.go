package cluster

import (
	"context"
	"log/slog"
	"time"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/storage"
)

// groupKeeper keeps a jurisdiction's Raft configuration in step with gossip. Only
// the group's leader acts: it adds every live member of its jurisdiction (voters
// up to storage's MaxVoters, non-voters after) and removes members that have been
// dead or gone for DeadServerTimeout (storage promotes a non-voter when a voter
// goes). `cluster leave` removes the leaving node itself, before it leaves gossip.
type groupKeeper struct {
	store        *storage.Store
	members      *membership.Membership
	jurisdiction string
	deadAfter    time.Duration
	interval     time.Duration
	log          *slog.Logger
	started      time.Time // when run began: gossip may not know everyone before deadAfter
}

// run reconciles on every membership event, on every leadership gain, and every
// interval, until ctx ends.
func (g *groupKeeper) run(ctx context.Context) {
	events, unsub := g.members.Subscribe()
	defer unsub()
	leader, unsubLeader := g.store.LeaderChanges()
	defer unsubLeader()
	g.started = time.Now()
	tick := time.NewTicker(g.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-events:
		case <-leader:
		case <-tick.C:
		}
		if g.store.IsLeader() {
			g.reconcile(ctx)
		}
	}
}

func (g *groupKeeper) reconcile(ctx context.Context) {
	servers, err := g.store.Servers()
	if err != nil {
		g.log.Warn("raft group: read configuration", "err", err)
		return
	}
	inConfig := map[string]storage.Server{}
	for _, s := range servers {
		inConfig[s.ID] = s
	}
	self := g.members.Local().NodeID
	known := map[string]membership.Member{}
	for _, m := range g.members.AllMembers() {
		if m.Jurisdiction != g.jurisdiction || m.RaftAddr == "" {
			continue
		}
		known[m.NodeID] = m
		s, in := inConfig[m.NodeID]
		switch {
		case m.State == membership.StateAlive && !m.Leaving && (!in || s.Addr != m.RaftAddr):
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := g.store.AddServer(c, m.NodeID, m.RaftAddr)
			cancel()
			g.log.Info("raft group: add server", "server", m.NodeID, "addr", m.RaftAddr, "err", err)
		case in && m.NodeID != self && m.State != membership.StateAlive && time.Since(m.Since) > g.deadAfter:
			// Left or dead alike: a SIGTERM'd node leaves gossip gracefully but
			// stays a Raft member so a restart resumes it; only `cluster leave`
			// (which removes itself first) or a long absence removes it.
			g.remove(ctx, m.NodeID, m.State)
		}
	}
	// A server in the configuration that gossip has forgotten entirely (pruned
	// after a long death) is dead too, once this keeper has listened to gossip
	// long enough to know it would have heard of it.
	if time.Since(g.started) < g.deadAfter {
		return
	}
	for id := range inConfig {
		if _, ok := known[id]; !ok && id != self {
			g.remove(ctx, id, "unknown")
		}
	}
}

func (g *groupKeeper) remove(ctx context.Context, id, state string) {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := g.store.RemoveServer(c, id)
	g.log.Info("raft group: remove server", "server", id, "state", state, "err", err)
}
