package cluster_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/storage/disktest"
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

	body := scrapeMetrics(t, n)
	value := func(name, extra string) float64 {
		t.Helper()
		return metricValue(t, body, name, extra)
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
		{"barberpro_raft_log_durable_index", "", func(v float64) bool { return v >= 1 }, ">= 1 (the provider's entry is on disk)"},
		{"barberpro_storage_write_fault", "", func(v float64) bool { return v == 0 }, "0"},
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
	// No entry is applied before the log holds it on disk (a fresh node: no
	// snapshot, every applied entry came through the log).
	if d, a := value("barberpro_raft_log_durable_index", ""), value("barberpro_raft_applied_index", ""); d < a {
		t.Errorf("durable index %v < applied index %v", d, a)
	}
}

// TestNode_MetricsReportAWriteFault: barberpro_storage_write_fault is 1 while
// the node's disk refuses its writes (its data dir on a small tmpfs, filled)
// and 0 again once space returned and the store's write probe passed. It
// skips without root (the tmpfs).
func TestNode_MetricsReportAWriteFault(t *testing.T) {
	var dir string
	n := clustertest.MustStartNode(t, func(c *cluster.Config) {
		dir = disktest.MountTmpfs(t, "32m")
		c.DataDir = dir
		c.Limits.PerIP, c.Limits.PerSubject = rate.Inf, rate.Inf // it polls /metrics while it books
	})
	ops := clustertest.Operator(t, n)
	p := newProvider(t, ops, svc("corte", 30, 0))
	fault := func() float64 {
		t.Helper()
		return metricValue(t, scrapeMetrics(t, n), "barberpro_storage_write_fault", "")
	}
	wait := func(want float64, what string) {
		t.Helper()
		for end := time.Now().Add(30 * time.Second); fault() != want; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("barberpro_storage_write_fault stayed %v for 30 s %s, want %v", fault(), what, want)
			}
		}
	}
	wait(0, "on a node with space")

	free := disktest.FillDisk(t, dir)
	end := time.Now().Add(30 * time.Second)
	for i := 0; fault() == 0; i++ { // book until a write fails on the full disk
		if time.Now().After(end) {
			t.Fatalf("%d bookings in 30 s on a full disk and no write fault", i)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = ops.Book(ctx, client.BookingRequest{ProviderID: p.ID, ServiceID: p.Services[0].ID,
			ClientID: "cli-ana", Start: tomorrowAt(8+i/2%12, 30*(i%2))}, "")
		cancel()
	}
	free()
	wait(0, "after space returned")
}

// scrapeMetrics returns n's /metrics.
func scrapeMetrics(t *testing.T, n *cluster.Node) []byte {
	t.Helper()
	resp, err := http.Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// metricValue is the value in body of the metric name with the labels of
// the lone test node (ba-1), then extra.
func metricValue(t *testing.T, body []byte, name, extra string) float64 {
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
