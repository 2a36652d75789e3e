package edge

import (
	"errors"
	"net/http"
	"slices"
)

// ErrUnknownMember is what Config.Remove returns (wrapped) for an id that is not
// a member of the cluster: POST /v1/cluster/members/{id}/remove answers 404.
var ErrUnknownMember = errors.New("edge: unknown cluster member")

// ClusterStatus is the answer of GET /v1/cluster/status: the Raft groups this
// node knows, as the cluster layer fills it.
type ClusterStatus struct {
	// Node is the id of the node answering ("" = Config.NodeID).
	Node string `json:"node"`
	// Groups holds one entry per Raft group (jurisdiction) known to the node.
	Groups []GroupStatus `json:"groups"`
}

// GroupStatus is one Raft group: one jurisdiction's replicated store.
type GroupStatus struct {
	// Group is the jurisdiction, e.g. "ar".
	Group string `json:"group"`
	// Leader is the id of the leader node, "" when there is none.
	Leader string `json:"leader"`
	// Term is the current Raft term.
	Term uint64 `json:"term"`
	// Members are the group's servers.
	Members []GroupMember `json:"members"`
}

// GroupMember is one server of a Raft group.
type GroupMember struct {
	ID string `json:"id"`
	// Role is "leader", "follower", "candidate", "nonvoter", "unreachable" (in
	// the Raft configuration but not alive in gossip), "joining", "shutdown" or
	// "unknown" (whatever the cluster layer reports, lower-case).
	Role string `json:"role"`
	// AppliedIndex is the last log index the member has applied.
	AppliedIndex uint64 `json:"applied_index"`
	// Lag is how many log entries the member is behind the leader.
	Lag uint64 `json:"lag"`
}

// statusFromMembers is the default Config.Status: the members grouped by Raft
// group, the leader being the member whose role is leader.
func statusFromMembers(ms []Member) ClusterStatus {
	st := ClusterStatus{Groups: []GroupStatus{}}
	for _, m := range ms {
		i := slices.IndexFunc(st.Groups, func(g GroupStatus) bool { return g.Group == m.Raft.Group })
		if i < 0 {
			st.Groups = append(st.Groups, GroupStatus{Group: m.Raft.Group, Members: []GroupMember{}})
			i = len(st.Groups) - 1
		}
		g := &st.Groups[i]
		if m.Raft.Role == "leader" {
			g.Leader = m.ID
		}
		g.Members = append(g.Members, GroupMember{ID: m.ID, Role: m.Raft.Role})
	}
	return st
}

// clusterStatus handles GET /v1/cluster/status.
func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) error {
	st, err := s.cfg.Status(r.Context())
	if err != nil {
		return err
	}
	if st.Node == "" {
		st.Node = s.cfg.NodeID
	}
	if st.Groups == nil {
		st.Groups = []GroupStatus{}
	}
	for i := range st.Groups {
		if st.Groups[i].Members == nil {
			st.Groups[i].Members = []GroupMember{}
		}
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// leaveOut is the answer of POST /v1/cluster/leave.
type leaveOut struct {
	Node   string `json:"node"`
	Status string `json:"status"`
}

// errNotWired answers the operator routes whose Config func is nil.
func errNotWired(what string) error {
	return &apiError{http.StatusServiceUnavailable, CodeJurisdictionUnavailable,
		what + " is not available on this node (Config." + what + " is not set)"}
}

// clusterLeave handles POST /v1/cluster/leave: 202 once Config.Leave accepted it.
func (s *Server) clusterLeave(w http.ResponseWriter, r *http.Request) error {
	var in struct{}
	if _, err := s.decodeBody(w, r, &in, true); err != nil {
		return err
	}
	if s.cfg.Leave == nil {
		return errNotWired("Leave")
	}
	if err := s.cfg.Leave(r.Context()); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, leaveOut{Node: s.cfg.NodeID, Status: "leaving"})
	return nil
}

// removeOut is the answer of POST /v1/cluster/members/{id}/remove.
type removeOut struct {
	Node   string `json:"node"`
	Member string `json:"member"`
	Status string `json:"status"`
}

// clusterRemove handles POST /v1/cluster/members/{id}/remove.
func (s *Server) clusterRemove(w http.ResponseWriter, r *http.Request) error {
	var in struct{}
	if _, err := s.decodeBody(w, r, &in, true); err != nil {
		return err
	}
	id := r.PathValue("id")
	if checkID("id", id) != nil {
		return notFound("member %q does not exist", id)
	}
	if s.cfg.Remove == nil {
		return errNotWired("Remove")
	}
	if err := s.cfg.Remove(r.Context(), id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, removeOut{Node: s.cfg.NodeID, Member: id, Status: "removed"})
	return nil
}
