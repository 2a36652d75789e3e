package edge

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRouteMetrics_CountsByStatus: the per-route observer counts each status
// in its own series and every request in the route's latency, and a route
// never answered has no series.
func TestRouteMetrics_CountsByStatus(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newHTTPMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	a := m.forRoute("GET /a")
	m.forRoute("GET /b") // never observes
	a.observe(200, time.Millisecond)
	a.observe(200, time.Millisecond)
	a.observe(409, time.Millisecond)
	m.forRoute("GET /a").observe(200, time.Millisecond) // the peer handler's wrapper of the same route
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count uint64
	byStatus := map[string]float64{}
	for _, mf := range mfs {
		for _, x := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range x.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "barberpro_http_request_duration_seconds":
				if labels["route"] != "GET /a" {
					t.Errorf("latency series of %q, which was never answered", labels["route"])
				}
				count += x.GetHistogram().GetSampleCount()
			case "barberpro_http_requests_total":
				byStatus[labels["route"]+" "+labels["status"]] = x.GetCounter().GetValue()
			}
		}
	}
	if len(byStatus) != 2 || byStatus["GET /a 200"] != 3 || byStatus["GET /a 409"] != 1 {
		t.Errorf("requests by status = %v, want GET /a 200: 3, 409: 1", byStatus)
	}
	if count != 4 {
		t.Errorf("latency samples = %d, want 4", count)
	}
}
