package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

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

// BackupWriteTimeout bounds how long GET /v1/cluster/backup may stream.
const BackupWriteTimeout = time.Hour

// BackupFunc streams a backup of this node's own jurisdiction store to w
// (Config.Backup); it must not write anything before it knows it can serve
// the backup, so an early error becomes a problem answer.
type BackupFunc func(ctx context.Context, w io.Writer) error

// countingWriter counts what reached the client.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// clusterBackup handles GET /v1/cluster/backup?jurisdiction=J: a consistent
// copy of J's store (storage's backup format), streamed. Only a node of J
// serves it: a backup is every record of the jurisdiction, so another
// jurisdiction's node neither takes it nor relays it (403
// residency_violation).
func (s *Server) clusterBackup(w http.ResponseWriter, r *http.Request) error {
	j := r.URL.Query().Get("jurisdiction")
	if j == "" {
		return badRequest("query parameter jurisdiction is required")
	}
	if _, ok := s.firstCity(j); !ok {
		return invalid("jurisdiction %q is not a jurisdiction of the topology", j)
	}
	if j != s.jurisdiction {
		return &apiError{http.StatusForbidden, CodeResidencyViolation,
			fmt.Sprintf("a backup of jurisdiction %s holds all its records and may not be taken through or onto a node of %s: ask a node of %s", j, s.jurisdiction, j), nil}
	}
	if s.cfg.Backup == nil {
		return errNotWired("Backup")
	}
	// The server's write timeout (30 s) is for answers, not for streaming a
	// jurisdiction's store: a large one over a slow link takes longer.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(BackupWriteTimeout))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", j+".bpbackup"))
	w.Header().Set("Cache-Control", "no-store")
	cw := &countingWriter{w: w}
	if err := s.cfg.Backup(r.Context(), cw); err != nil {
		if cw.n == 0 {
			w.Header().Del("Content-Disposition")
			return err
		}
		// Too late for a problem: the client sees a short stream, which its
		// checksum check refuses.
		s.log.ErrorContext(r.Context(), "edge: backup stream broken", "jurisdiction", j, "bytes_sent", cw.n, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}
