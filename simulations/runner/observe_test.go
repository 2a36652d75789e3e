package runner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestStatusOf_And_CalendarActors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/cluster/status":
			w.Write([]byte(`{"node":"ba-1","groups":[{"group":"ar","leader":"ba-1","term":3,"cluster_id":"c1",` +
				`"members":[{"id":"ba-1","role":"leader","term":3,"cluster_id":"c1","applied_index":9},{"id":"cba-1","role":"follower"}]}]}`))
		case "/metrics":
			w.Write([]byte("# HELP barberpro_calendar_actors_active Calendar actors active on this node.\n" +
				"# TYPE barberpro_calendar_actors_active gauge\n" +
				"barberpro_calendar_actors_active{node=\"ba-1\"} 3\nbarberpro_raft_is_leader{node=\"ba-1\"} 1\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	st, err := statusOf(context.Background(), srv.URL, "tok")
	if err != nil {
		t.Fatal(err)
	}
	g := st.Groups[0]
	if st.At.IsZero() || g.ClusterID != "c1" || g.Members[0].Term != 3 || g.Members[1].Role != "follower" {
		t.Fatalf("status %+v", st)
	}
	n, err := calendarActors(context.Background(), srv.URL)
	if err != nil || n != 3 {
		t.Fatalf("calendar actors %d, %v", n, err)
	}
	if _, err := statusOf(context.Background(), srv.URL+"/nowhere", "tok"); err == nil {
		t.Fatal("a 404 decoded as a status")
	}
}

func TestFirstPanic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.log")
	os.WriteFile(path, []byte(`{"level":"INFO","msg":"node started"}
panic: storage: fsm apply of logs 565..567 failed: write fsm.db: no space left on device

goroutine 1 [running]:
panic: second
`), 0o644)
	if got := firstPanic(path); got != "panic: storage: fsm apply of logs 565..567 failed: write fsm.db: no space left on device" {
		t.Fatalf("got %q", got)
	}
	if got := firstPanic(filepath.Join(t.TempDir(), "none.log")); got != "" {
		t.Fatalf("missing log: %q", got)
	}
}
