package edge

import (
	"errors"
	"net/http"
	"slices"

	"github.com/barberpro/edge/edge/client"
)

// ErrUnknownMember is what Config.Remove returns (wrapped) for an id that is not
// a member of the cluster: POST /v1/cluster/members/{id}/remove answers 404.
var ErrUnknownMember = errors.New("edge: unknown cluster member")

// ErrMemberAlive is what Config.Remove returns (wrapped) for a member that gossip
// shows alive when the operator did not force the removal: POST
// /v1/cluster/members/{id}/remove answers 409 member_alive.
var ErrMemberAlive = errors.New("edge: the member is alive; stop it, make it leave, or force the removal")

// ClusterStatus is the answer of GET /v1/cluster/status, as the cluster layer
// fills it (Node "" = Config.NodeID); GroupStatus and GroupMember are its parts.
// They are edge/client's wire types, so server and client cannot drift.
type (
	ClusterStatus = client.ClusterStatus
	GroupStatus   = client.GroupStatus
	GroupMember   = client.GroupMember
)

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

// errNotWired answers the operator routes whose Config func is nil.
func errNotWired(what string) error {
	return &apiError{http.StatusServiceUnavailable, CodeJurisdictionUnavailable, what + " is not available on this node (Config." + what + " is not set)", nil}

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
	writeJSON(w, http.StatusAccepted, client.LeaveResult{Node: s.cfg.NodeID, Status: "leaving"})
	return nil
}

// clusterRemove handles POST /v1/cluster/members/{id}/remove[?force=true].
func (s *Server) clusterRemove(w http.ResponseWriter, r *http.Request) error {
	var in struct{}
	if _, err := s.decodeBody(w, r, &in, true); err != nil {
		return err
	}
	force := false
	switch v := r.URL.Query().Get("force"); v {
	case "", "false":
	case "true":
		force = true
	default:
		return badRequest("query parameter force must be true or false, not %q", v)
	}
	id := r.PathValue("id")
	if checkID("id", id) != nil {
		return notFound("member %q does not exist", id)
	}
	if s.cfg.Remove == nil {
		return errNotWired("Remove")
	}
	if err := s.cfg.Remove(r.Context(), id, force); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.RemoveResult{Node: s.cfg.NodeID, Member: id, Status: "removed"})
	return nil
}
