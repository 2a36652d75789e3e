package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/storage"
)

// groupKeeper keeps a jurisdiction's Raft configuration in step with gossip and
// keeps the node's own gossip identity (cluster id, founded) in step with its
// store. Only the group's leader changes the configuration:
//   - a live member of the jurisdiction not in the group is added as a
//     non-voter under its server id NodeID@DiskID; a member whose disk is new
//     (same node id, another disk id) first loses its old server entry — a
//     lost disk is a new server;
//   - a member gossiping another cluster id is refused: it belongs to another
//     history (logged, and listed in status events);
//   - a non-voter is promoted (voters up to storage's MaxVoters) once it has
//     applied what the leader had applied when asked: it votes only caught up;
//   - a member dead or gone for DeadServerTimeout is removed (logged, listed).
//
// `cluster leave` removes the leaving node itself, before it leaves gossip.
type groupKeeper struct {
	store   *storage.Store
	members *membership.Membership
	// verified says whether a member's certificate names the node id, city and
	// jurisdiction it gossips: only such members are admitted or promoted.
	verified     interface{ Verified(membership.Member) bool }
	peers        *raftPeers
	jurisdiction string
	deadAfter    time.Duration
	interval     time.Duration
	log          *slog.Logger
	events       *eventLog
	started      time.Time // when run began: gossip may not know everyone before deadAfter
	refused      map[string]string
	// waiting: former-disk voters still answering, by server id -> the server
	// id waiting to replace them (logged once).
	waiting map[string]string
	// unverified: since when each alive member of the jurisdiction has gone
	// unverified, by node id.
	unverified map[string]time.Time
}

// run reconciles on every membership event, on every leadership gain, and every
// interval, until ctx ends.
func (g *groupKeeper) run(ctx context.Context) {
	events, unsub := g.members.Subscribe()
	defer unsub()
	leader, unsubLeader := g.store.LeaderChanges()
	defer unsubLeader()
	g.started = time.Now()
	g.refused = map[string]string{}
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
		g.publishIdentity()
		g.watchForks()
		if g.store.IsLeader() {
			g.reconcile(ctx)
		}
	}
}

// publishIdentity gossips what the store says of this node: its cluster id and
// whether it holds Raft state.
func (g *groupKeeper) publishIdentity() {
	cid, founded := g.store.ClusterID(), g.store.HasState()
	local := g.members.LocalMeta()
	if local.ClusterID == cid && local.Founded == founded {
		return
	}
	if err := g.members.UpdateMeta(func(m *membership.Meta) { m.ClusterID, m.Founded = cid, founded }); err != nil {
		g.log.Warn("gossip cluster id", "err", err)
		return
	}
	if local.ClusterID != cid {
		g.log.Info("this node's replica belongs to group", "cluster_id", cid, "jurisdiction", g.jurisdiction)
	}
}

// watchForks says, once per member and cluster id, when a member of the
// jurisdiction gossips a cluster id other than this node's: two histories.
func (g *groupKeeper) watchForks() {
	own := g.store.ClusterID()
	if own == "" {
		return
	}
	for _, m := range g.members.Members() {
		if m.Jurisdiction != g.jurisdiction || m.ClusterID == "" || m.ClusterID == own || !g.verified.Verified(m) {
			continue
		}
		if g.refused[m.NodeID] == m.ClusterID {
			continue
		}
		g.refused[m.NodeID] = m.ClusterID
		g.log.Error("member of this jurisdiction belongs to another raft group: refusing it",
			"member", m.NodeID, "its_cluster_id", m.ClusterID, "cluster_id", own)
		g.events.add("refused %s: it belongs to group %s, this node to %s", m.NodeID, m.ClusterID, own)
	}
}

func (g *groupKeeper) reconcile(ctx context.Context) {
	servers, err := g.store.Servers()
	if err != nil {
		g.log.Warn("raft group: read configuration", "err", err)
		return
	}
	own := g.store.ClusterID()
	byNode := map[string][]storage.Server{}
	for _, s := range servers {
		byNode[membership.NodeOf(s.ID)] = append(byNode[membership.NodeOf(s.ID)], s)
	}
	self := g.members.Local().NodeID
	known := map[string]bool{}
	for _, m := range g.members.AllMembers() {
		// A member without a disk id runs an older build: its server id is its
		// node id (membership.ServerIDOf). Skipping it would make it "unknown
		// to gossip" below and remove a live voter mid rolling upgrade.
		if m.Jurisdiction != g.jurisdiction || m.RaftAddr == "" {
			continue
		}
		known[m.NodeID] = true
		olds := byNode[m.NodeID]
		if m.NodeID != self && m.State == membership.StateAlive && !g.verified.Verified(m) {
			// Gossip says it is alive and of this jurisdiction; the member has
			// not confirmed what gossip says of it (certificate and its own
			// Meta over mutual TLS: yet, or ever): nothing gossip says of it —
			// disk, cluster id, leaving, address — is acted on. Entries it
			// already has stay (a restarted member is verified again shortly)
			// and go the way of dead servers if it never is: unverified for
			// deadAfter and silent on Raft as long.
			if g.unverified == nil {
				g.unverified = map[string]time.Time{}
			}
			since, ok := g.unverified[m.NodeID]
			if !ok {
				since = time.Now()
				g.unverified[m.NodeID] = since
			}
			if time.Since(since) > g.deadAfter {
				for _, s := range olds {
					g.removeDead(ctx, s, fmt.Sprintf("alive in gossip but unverified for %s", time.Since(since).Round(time.Second)))
				}
			}
			continue
		}
		delete(g.unverified, m.NodeID)
		alive := m.State == membership.StateAlive && !m.Leaving
		switch {
		case alive && m.NodeID != self && m.ClusterID != "" && own != "" && m.ClusterID != own:
			// Another history: never add it (watchForks says so), and stop
			// replicating into a non-voter that turns out to hold one. A voter
			// is left alone: if this leader's own replica is the odd one, it
			// must not strip the group of its voters.
			for _, s := range olds {
				if !s.Voter {
					g.remove(ctx, s, fmt.Sprintf("it belongs to group %s, not %s", m.ClusterID, own))
				}
			}
		case alive && m.NodeID != self:
			g.admit(ctx, m, olds, own)
		case m.NodeID == self:
			// The leader's own entries under a former disk (a wiped node that
			// rejoined, was promoted and now leads) are stale.
			for _, s := range olds {
				if s.ID != m.ServerID() {
					g.remove(ctx, s, "a former disk of this node")
				}
			}
		case !alive && len(olds) > 0 && m.NodeID != self && time.Since(m.Since) > g.deadAfter:
			// Left or dead alike: a SIGTERM'd node leaves gossip gracefully but
			// stays a Raft member so a restart resumes it; only `cluster leave`
			// (which removes itself first) or a long absence removes it.
			for _, s := range olds {
				g.removeDead(ctx, s, fmt.Sprintf("%s for %s", m.State, time.Since(m.Since).Round(time.Second)))
			}
		}
	}
	// A server in the configuration that gossip has forgotten entirely (pruned
	// after a long death) is dead too, once this keeper has listened to gossip
	// long enough to know it would have heard of it.
	if time.Since(g.started) >= g.deadAfter {
		for node, olds := range byNode {
			if !known[node] && node != self {
				for _, s := range olds {
					g.removeDead(ctx, s, "unknown to gossip")
				}
			}
		}
	}
	g.promote(ctx)
}

// admit makes the live, verified member m a server of the group under its
// current server id, first removing the entries of its former disks. A member
// that holds Raft state of its own (Founded) but is not in the group under its
// server id is not admitted until it shows this group's cluster id: it may have
// founded another group, and raft would merge that history into this one. A
// former disk that is a voter and answered this leader's Raft heartbeats (as
// that server id) within deadAfter is not removed, nor the new one added, until
// it falls silent: a live voter is never dropped on what metadata says of it.
func (g *groupKeeper) admit(ctx context.Context, m membership.Member, olds []storage.Server, own string) {
	want := m.ServerID()
	inGroup := slices.ContainsFunc(olds, func(s storage.Server) bool { return s.ID == want })
	if !inGroup && m.Founded && m.ClusterID != own {
		return
	}
	for _, s := range olds {
		if s.ID == want || !s.Voter {
			continue
		}
		if last := g.store.LastContact(s.ID); !last.IsZero() && time.Since(last) < g.deadAfter {
			if g.waiting == nil {
				g.waiting = map[string]string{}
			}
			if g.waiting[s.ID] != want {
				g.waiting[s.ID] = want
				g.log.Warn("raft group: not replacing a voter that still answers as its former disk",
					"server", s.ID, "member_disk", m.DiskID, "last_contact", time.Since(last).Round(time.Millisecond))
			}
			return
		}
	}
	var current *storage.Server
	for _, s := range olds {
		if s.ID == want {
			current = &s
			continue
		}
		g.remove(ctx, s, fmt.Sprintf("its disk is new (now %s): a new server", m.DiskID))
	}
	if current != nil && current.Addr == m.RaftAddr {
		return
	}
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := g.store.AddNonvoter(c, want, m.RaftAddr)
	cancel()
	if current == nil {
		g.note(err, "added %s as a non-voter (server %s)", m.NodeID, want)
	} else {
		g.note(err, "moved %s to %s", want, m.RaftAddr)
	}
}

// promote makes caught-up non-voters voters while the group has room.
func (g *groupKeeper) promote(ctx context.Context) {
	servers, err := g.store.Servers()
	if err != nil {
		return
	}
	alive := map[string]membership.Member{}
	for _, m := range g.members.Members() {
		alive[m.NodeID] = m
	}
	own := g.store.ClusterID()
	if own == "" {
		return // a replica is caught up once it holds this group's cluster id
	}
	voters := 0
	for _, s := range servers {
		if s.Voter {
			voters++
		}
	}
	if voters >= g.store.MaxVoters() {
		return // no room: do not ask non-voters for their progress every tick
	}
	for _, s := range servers {
		if s.Voter {
			continue
		}
		m, ok := alive[membership.NodeOf(s.ID)]
		if !ok || m.Leaving || m.ServerID() != s.ID || !g.verified.Verified(m) {
			continue
		}
		target := g.store.Stats().AppliedIndex
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := g.peers.Status(c, m.NodeID)
		// The applied index alone proves nothing about a replica holding
		// another group's history (its indexes may be as high): it must hold
		// this group's cluster id too.
		if err != nil || st.DiskId != m.DiskID || st.ClusterId != own || st.AppliedIndex < target {
			cancel()
			continue
		}
		err = g.store.Promote(c, s.ID)
		cancel()
		if errors.Is(err, storage.ErrTooManyVoters) {
			return
		}
		g.note(err, "promoted %s to voter: caught up (applied %d >= %d)", s.ID, st.AppliedIndex, target)
	}
}

// removeDead removes s as dead (gossip lost it), unless it answered this
// leader's Raft heartbeats within deadAfter: a node cut off from gossip only
// (its gossip port firewalled, or this leader's) is up and replicating, and
// removing it would shrink the group while every node is alive.
func (g *groupKeeper) removeDead(ctx context.Context, s storage.Server, why string) {
	if last := g.store.LastContact(s.ID); !last.IsZero() && time.Since(last) < g.deadAfter {
		return
	}
	g.remove(ctx, s, why)
}

func (g *groupKeeper) remove(ctx context.Context, s storage.Server, why string) {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := g.store.RemoveServer(c, s.ID)
	kind := "non-voter"
	if s.Voter {
		kind = "voter"
	}
	g.note(err, "removed %s %s: %s", kind, s.ID, why)
}

// note logs a keeper action and, when it succeeded, records it as an event.
// Removals are logged as warnings: they shrink the group.
func (g *groupKeeper) note(err error, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if err != nil {
		g.log.Warn("raft group: "+msg+" failed", "err", err)
		return
	}
	level := slog.LevelInfo
	if strings.HasPrefix(msg, "removed") {
		level = slog.LevelWarn
	}
	g.log.Log(context.Background(), level, "raft group: "+msg)
	g.events.add("%s", msg)
}

// eventLog keeps a node's most recent group-keeping events for `cluster status`.
type eventLog struct {
	mu   sync.Mutex
	max  int
	list []string
}

func (e *eventLog) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, time.Now().UTC().Format(time.RFC3339)+" "+fmt.Sprintf(format, args...))
	if len(e.list) > e.max {
		e.list = e.list[len(e.list)-e.max:]
	}
}

func (e *eventLog) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.list...)
}
