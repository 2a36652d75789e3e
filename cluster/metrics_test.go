package cluster_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/edge/client"
)

// TestNode_Metrics checks the node's own metrics on a lone node after one
// write: each carries node, city and jurisdiction, and says what it should.
func TestNode_Metrics(t *testing.T) {
	n := clustertest.MustStartNode(t, nil)
	ops := clustertest.Operator(t, n)
	p := newProvider(t, ops, svc("corte", 30, 0))
	req := client.BookingRequest{ProviderID: p.ID, ServiceID: p.Services[0].ID, ClientID: "cli-ana", Start: tomorrowAt(10, 0)}
	if _, err := ops.Book(context.Background(), req, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.Book(context.Background(), req, ""); err == nil { // the same slot again
		t.Fatal("a second booking of one slot succeeded")
	}

	resp, err := http.Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name, extra string) float64 {
		t.Helper()
		re := regexp.MustCompile(`(?m)^` + name + `\{city="buenos-aires",jurisdiction="ar",node="ba-1"` + extra + `\} (\S+)$`)
		m := re.FindSubmatch(body)
		if m == nil {
			t.Fatalf("no %s{...%s} with the node's labels in /metrics:\n%s", name, extra, body)
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	checks := []struct {
		name, extra string
		ok          func(float64) bool
		want        string
	}{
		{"barberpro_node_info", "", func(v float64) bool { return v == 1 }, "1"},
		{"barberpro_raft_is_leader", "", func(v float64) bool { return v == 1 }, "1 (a lone node leads)"},
		{"barberpro_raft_term", "", func(v float64) bool { return v >= 1 }, ">= 1"},
		{"barberpro_raft_last_contact_seconds", "", func(v float64) bool { return v == 0 }, "0 on the leader"},
		{"barberpro_raft_voters", "", func(v float64) bool { return v == 1 }, "1"},
		{"barberpro_raft_applied_index", "", func(v float64) bool { return v >= 1 }, ">= 1"},
		{"barberpro_gossip_members", `,state="alive"`, func(v float64) bool { return v == 1 }, "1 (itself)"},
		{"barberpro_gossip_members", `,state="dead"`, func(v float64) bool { return v == 0 }, "0"},
		{"barberpro_data_dir_avail_bytes", "", func(v float64) bool { return v > 0 }, "> 0"},
		{"barberpro_data_dir_size_bytes", "", func(v float64) bool { return v > 0 }, "> 0"},
		{"barberpro_raft_commit_duration_seconds_count", "", func(v float64) bool { return v >= 1 }, ">= 1 (the provider was written)"},
	}
	// The calendar metrics carry the provider's city and vertical, and the node.
	for _, want := range []string{
		`barberpro_calendar_requests_total{city="buenos-aires",node="ba-1",op="book",outcome="ok",vertical="barber"} 1`,
		`barberpro_calendar_requests_total{city="buenos-aires",node="ba-1",op="book",outcome="slot_taken",vertical="barber"} 1`,
		`barberpro_calendar_request_duration_seconds_count{city="buenos-aires",node="ba-1",op="book",vertical="barber"} 2`,
	} {
		if !bytes.Contains(body, []byte(want+"\n")) {
			t.Errorf("no %s in /metrics:\n%s", want, body)
		}
	}
	for _, c := range checks {
		if v := value(c.name, c.extra); !c.ok(v) {
			t.Errorf("%s{%s} = %v, want %s", c.name, c.extra, v, c.want)
		}
	}
}
