package edge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/storage"
)

// TestCluster_OperatorRoutes drives status, leave and remove through the spec
// and through the Go client.
func TestCluster_OperatorRoutes(t *testing.T) {
	var leaves atomic.Int64
	var removed atomic.Value
	h := newHarnessWith(t, func(c *Config) {
		c.Status = func(context.Context) (ClusterStatus, error) {
			return ClusterStatus{Groups: []GroupStatus{{Group: "ar", Leader: "ba-1", Term: 7, Members: []GroupMember{
				{ID: "ba-1", Role: "leader", AppliedIndex: 42},
				{ID: "cba-1", Role: "follower", AppliedIndex: 40, Lag: 2},
				{ID: "ros-1", Role: "nonvoter", AppliedIndex: 12, Lag: 30},
			}}}}, nil
		}
		c.Leave = func(context.Context) error { leaves.Add(1); return nil }
		c.Remove = func(ctx context.Context, id string, force bool) error {
			if !strings.HasPrefix(Authorization(ctx), "Bearer ") {
				return fmt.Errorf("Config.Remove cannot pass the caller's token on: %q", Authorization(ctx))
			}
			switch id {
			case "cba-1":
				removed.Store(id)
				return nil
			case "alive-1":
				if !force {
					return fmt.Errorf("cluster: %q: %w", id, ErrMemberAlive)
				}
				removed.Store(id)
				return nil
			case "leaderless":
				return fmt.Errorf("cluster: %w", storage.ErrNotLeader)
			}
			return fmt.Errorf("cluster: %q: %w", id, ErrUnknownMember)
		}
	})

	rec := h.do(call{method: "GET", path: "/v1/cluster/status", valid: true})
	wantStatus(t, rec, http.StatusOK)
	st := decode[ClusterStatus](t, rec)
	if st.Node != "ba-1" || len(st.Groups) != 1 || st.Groups[0].Term != 7 || len(st.Groups[0].Members) != 3 ||
		st.Groups[0].Members[1] != (GroupMember{ID: "cba-1", Role: "follower", AppliedIndex: 40, Lag: 2}) {
		t.Errorf("status %+v", st)
	}
	rec = h.do(call{method: "POST", path: "/v1/cluster/leave", valid: true})
	wantStatus(t, rec, http.StatusAccepted)
	if got := decode[client.LeaveResult](t, rec); got != (client.LeaveResult{Node: "ba-1", Status: "leaving"}) || leaves.Load() != 1 {
		t.Errorf("leave %+v, %d calls", got, leaves.Load())
	}
	wantStatus(t, h.do(call{method: "POST", path: "/v1/cluster/leave", body: `{}`, valid: true}), http.StatusAccepted)
	wantStatus(t, h.do(call{method: "POST", path: "/v1/cluster/leave", body: `{"now": true}`}), http.StatusBadRequest)
	rec = h.do(call{method: "POST", path: "/v1/cluster/members/cba-1/remove", valid: true})
	wantStatus(t, rec, http.StatusOK)
	if got := decode[client.RemoveResult](t, rec); got != (client.RemoveResult{Node: "ba-1", Member: "cba-1", Status: "removed"}) || removed.Load() != "cba-1" {
		t.Errorf("remove %+v", got)
	}
	rec = h.do(call{method: "POST", path: "/v1/cluster/members/ghost/remove", valid: true})
	wantStatus(t, rec, http.StatusNotFound)
	if p := checkProblem(t, rec); p.Code != CodeNotFound {
		t.Errorf("unknown member: %+v", p)
	}
	wantStatus(t, h.do(call{method: "POST", path: "/v1/cluster/members/leaderless/remove", valid: true}), http.StatusServiceUnavailable)
	rec = h.do(call{method: "POST", path: "/v1/cluster/members/alive-1/remove", valid: true})
	wantStatus(t, rec, http.StatusConflict)
	if p := checkProblem(t, rec); p.Code != CodeMemberAlive {
		t.Errorf("live member without force: %+v", p)
	}
	wantStatus(t, h.do(call{method: "POST", path: "/v1/cluster/members/alive-1/remove?force=true", valid: true}), http.StatusOK)
	if removed.Load() != "alive-1" {
		t.Errorf("forced remove did not reach Config.Remove")
	}
	wantStatus(t, h.do(call{method: "POST", path: "/v1/cluster/members/alive-1/remove?force=yes"}), http.StatusBadRequest)
	wantStatus(t, h.do(call{method: "GET", path: "/v1/cluster/members/cba-1/remove"}), http.StatusMethodNotAllowed)

	// The same through the Go client.
	ts := httptest.NewServer(h.srv.Handler())
	defer ts.Close()
	c := client.New(ts.URL, nil).WithToken(h.tokens.Token(t, auth.RoleOperator, "ops"))
	ctx := context.Background()
	ms, err := c.Members(ctx)
	if err != nil || len(ms.Items) != 1 || ms.Items[0].ID != "ba-1" || ms.Items[0].Raft.Role != "leader" || ms.Items[0].Addresses["http"] == "" {
		t.Errorf("Members = %+v, %v", ms, err)
	}
	cs, err := c.Status(ctx)
	if err != nil || cs.Node != "ba-1" || cs.Groups[0].Leader != "ba-1" || cs.Groups[0].Members[2].Lag != 30 {
		t.Errorf("Status = %+v, %v", cs, err)
	}
	lr, err := c.Leave(ctx)
	if err != nil || *lr != (client.LeaveResult{Node: "ba-1", Status: "leaving"}) {
		t.Errorf("Leave = %+v, %v", lr, err)
	}
	rr, err := c.Remove(ctx, "cba-1", false)
	if err != nil || *rr != (client.RemoveResult{Node: "ba-1", Member: "cba-1", Status: "removed"}) {
		t.Errorf("Remove = %+v, %v", rr, err)
	}
	if _, err := c.Remove(ctx, "ghost", false); client.Code(err) != CodeNotFound {
		t.Errorf("Remove(ghost) = %v", err)
	}
	if _, err := c.Remove(ctx, "alive-1", false); client.Code(err) != CodeMemberAlive {
		t.Errorf("Remove(alive-1) = %v", err)
	}
	if _, err := c.Remove(ctx, "alive-1", true); err != nil {
		t.Errorf("Remove(alive-1, force) = %v", err)
	}
	if _, err := client.New(ts.URL, nil).Status(ctx); client.Code(err) != CodeUnauthorized {
		t.Errorf("Status without a token = %v", err)
	}
}

// TestCluster_OperatorDefaults checks the routes without their Config funcs:
// status from Members, leave and remove 503.
func TestCluster_OperatorDefaults(t *testing.T) {
	h := newHarness(t)
	rec := h.do(call{method: "GET", path: "/v1/cluster/status", valid: true})
	wantStatus(t, rec, http.StatusOK)
	st := decode[ClusterStatus](t, rec)
	if st.Node != "ba-1" || len(st.Groups) != 1 || st.Groups[0].Group != "ar" || st.Groups[0].Leader != "ba-1" ||
		len(st.Groups[0].Members) != 1 || st.Groups[0].Members[0].Role != "leader" {
		t.Errorf("default status %+v", st)
	}
	for _, path := range []string{"/v1/cluster/leave", "/v1/cluster/members/x/remove"} {
		rec := h.do(call{method: "POST", path: path, valid: true})
		wantStatus(t, rec, http.StatusServiceUnavailable)
		if p := checkProblem(t, rec); p.Code != CodeJurisdictionUnavailable {
			t.Errorf("%s: %+v", path, p)
		}
	}
	h2 := newHarnessWith(t, func(c *Config) {
		c.Status = func(context.Context) (ClusterStatus, error) { return ClusterStatus{}, storage.ErrClosed }
	})
	wantStatus(t, h2.do(call{method: "GET", path: "/v1/cluster/status", valid: true}), http.StatusServiceUnavailable)
}

// TestCluster_BackupRoute: GET /v1/cluster/backup streams what Config.Backup
// writes for the node's own jurisdiction; another jurisdiction is refused 403
// residency_violation (never relayed); a missing or unknown one is a 400/422;
// an error before any byte is a problem answer.
func TestCluster_BackupRoute(t *testing.T) {
	var fail atomic.Bool
	h := newHarnessWith(t, func(c *Config) {
		c.Backup = func(ctx context.Context, w io.Writer) error {
			if fail.Load() {
				return fmt.Errorf("cluster: %w", storage.ErrNotLeader)
			}
			_, err := io.WriteString(w, "BPBACKUP-body")
			return err
		}
	})
	rec := h.do(call{method: "GET", path: "/v1/cluster/backup?jurisdiction=ar", valid: true})
	wantStatus(t, rec, http.StatusOK)
	if rec.Body.String() != "BPBACKUP-body" || rec.Header().Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("backup answer: %q %v", rec.Body.String(), rec.Header())
	}
	rec = h.do(call{method: "GET", path: "/v1/cluster/backup?jurisdiction=us", valid: true})
	wantStatus(t, rec, http.StatusForbidden)
	if !strings.Contains(rec.Body.String(), CodeResidencyViolation) {
		t.Fatalf("a backup of us on an ar node: %s", rec.Body.String())
	}
	wantStatus(t, h.do(call{method: "GET", path: "/v1/cluster/backup"}), http.StatusBadRequest)
	wantStatus(t, h.do(call{method: "GET", path: "/v1/cluster/backup?jurisdiction=zz"}), http.StatusUnprocessableEntity) // outside the spec's enum: the server refuses it too
	fail.Store(true)
	rec = h.do(call{method: "GET", path: "/v1/cluster/backup?jurisdiction=ar", valid: true})
	wantStatus(t, rec, http.StatusServiceUnavailable)
	if rec.Header().Get("Content-Disposition") != "" {
		t.Fatalf("a refused backup answers as an attachment: %v", rec.Header())
	}
}
