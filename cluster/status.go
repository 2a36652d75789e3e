package cluster

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/edge"
	clusterv1 "github.com/barberpro/edge/protos/cluster/v1"
)

// statusTimeout bounds how long the operator views wait for one node's answer.
const statusTimeout = time.Second

// raftViews asks every live member for its view of its Raft group, in parallel.
// Members that do not answer in time are left out.
func (n *Node) raftViews(ctx context.Context) map[string]*clusterv1.NodeStatusReply {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = map[string]*clusterv1.NodeStatusReply{}
	)
	for _, m := range n.members.Members() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := n.peers.Status(ctx, m.NodeID)
			if err == nil {
				mu.Lock()
				out[m.NodeID] = st
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// role is a member's Raft role as the operator views show it.
func role(st *clusterv1.NodeStatusReply) string {
	switch {
	case st == nil:
		return "unknown"
	case !st.Voter && st.State != "Leader":
		return "nonvoter"
	default:
		return strings.ToLower(st.State)
	}
}

// memberList serves GET /v1/cluster/members: every member gossip knows (dead and
// left ones too, for a while), with its Raft group and role.
func (n *Node) memberList() []edge.Member {
	views := n.raftViews(context.Background())
	var out []edge.Member
	for _, m := range n.members.AllMembers() {
		e := edge.Member{
			ID: m.NodeID, City: m.City, Jurisdiction: m.Jurisdiction, Status: m.State,
			Addresses: map[string]string{"http": m.HTTPAddr, "raft": m.RaftAddr, "actor": m.ActorAddr, "gossip": m.Addr},
		}
		e.Raft.Group = m.Jurisdiction
		e.Raft.Role = role(views[m.NodeID])
		if m.State != membership.StateAlive {
			e.Raft.Role = "unknown"
		}
		out = append(out, e)
	}
	return out
}

// status serves GET /v1/cluster/status: each Raft group with its leader, term,
// and every live member's applied index and lag behind the leader's applied index.
func (n *Node) status(ctx context.Context) (edge.ClusterStatus, error) {
	views := n.raftViews(ctx)
	groups := map[string]*edge.GroupStatus{}
	// leaderApplied is each group leader's applied index: lag is counted in
	// applied entries, as every member's applied index is (Raft's own entries —
	// configuration changes, the new leader's no-op — are never applied to the
	// store, so measured against the leader's last log index an idle leader
	// lagged behind itself).
	leaderApplied := map[string]uint64{}
	leaving := map[string]bool{} // node ids gossip shows leaving (cluster leave)
	for _, m := range n.members.Members() {
		g := groups[m.Jurisdiction]
		if g == nil {
			g = &edge.GroupStatus{Group: m.Jurisdiction}
			groups[m.Jurisdiction] = g
		}
		st := views[m.NodeID]
		gm := edge.GroupMember{ID: m.NodeID, Role: role(st), ClusterID: m.ClusterID, Disk: m.DiskID}
		if st != nil {
			gm.AppliedIndex, gm.Term, gm.ClusterID, gm.Disk = st.AppliedIndex, st.Term, st.ClusterId, st.DiskId
			gm.StorageFault = st.StorageFault
			g.Events = append(g.Events, st.Events...)
			if st.State == "Leader" && st.ClusterId != "" {
				g.ClusterID = st.ClusterId
			}
			if st.State == "Leader" {
				g.Leader, g.Term = m.NodeID, st.Term
				leaderApplied[m.Jurisdiction] = st.AppliedIndex
			}
			if g.Leader == "" && st.LeaderId != "" {
				g.Leader = st.LeaderId
			}
			g.Term = max(g.Term, st.Term)
		}
		if m.Leaving {
			// A leaving node hands its work over and is removed from its
			// group: it is neither a member catching up nor one joining.
			leaving[m.NodeID] = true
			gm.Role = "leaving"
		}
		g.Members = append(g.Members, gm)
	}
	// This node's own group: its Raft configuration is the truth about who is a
	// member; a server gossip does not show alive is listed as unreachable.
	if servers, err := n.store.Servers(); err == nil {
		own := groups[n.city.Jurisdiction]
		if own == nil {
			own = &edge.GroupStatus{Group: n.city.Jurisdiction}
			groups[n.city.Jurisdiction] = own
		}
		if cid := n.store.ClusterID(); cid != "" {
			own.ClusterID = cid
		}
		inConfig := map[string]bool{} // server ids: NodeID@DiskID
		for _, sv := range servers {
			inConfig[sv.ID] = true
			node, disk := membership.NodeOf(sv.ID), membership.DiskOf(sv.ID)
			if !slices.ContainsFunc(own.Members, func(m edge.GroupMember) bool { return m.ID == node && m.Disk == disk }) {
				own.Members = append(own.Members, edge.GroupMember{ID: node, Disk: disk, Role: "unreachable"})
			}
		}
		// Live nodes of the jurisdiction not (yet) in the configuration, or
		// there under another disk.
		for i, m := range own.Members {
			if !inConfig[membership.ServerIDOf(m.ID, m.Disk)] && !leaving[m.ID] {
				own.Members[i].Role = "joining"
			}
		}
	}
	out := edge.ClusterStatus{Node: n.cfg.ID}
	for _, g := range groups {
		slices.Sort(g.Events) // each starts with its RFC 3339 UTC time
		g.Events = slices.Compact(g.Events)
		for i := range g.Members {
			if !replicating(g.Members[i].Role) {
				continue // no lag: it does not (yet, or any more) follow the leader's log
			}
			if l := leaderApplied[g.Group]; l > g.Members[i].AppliedIndex {
				g.Members[i].Lag = l - g.Members[i].AppliedIndex
			}
		}
		out.Groups = append(out.Groups, *g)
	}
	slices.SortFunc(out.Groups, func(a, b edge.GroupStatus) int { return strings.Compare(a.Group, b.Group) })
	return out, nil
}

// replicating reports whether a member of role follows its leader's log, so
// that its lag means something: not a node joining (not yet in the
// configuration), leaving (on its way out, removed), unreachable or unknown.
func replicating(role string) bool {
	switch role {
	case "leader", "follower", "candidate", "nonvoter":
		return true
	}
	return false
}
