package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// NodeMemory is one target's memory as its /metrics (public, Prometheus text
// format) reported it at the end of a run.
type NodeMemory struct {
	Target string `json:"target"`
	// RSSBytes is process_resident_memory_bytes.
	RSSBytes int64 `json:"rss_bytes"`
	// HeapInuseBytes and HeapAllocBytes are go_memstats_heap_inuse_bytes and
	// go_memstats_heap_alloc_bytes (0 when not exported).
	HeapInuseBytes int64 `json:"heap_inuse_bytes,omitempty"`
	HeapAllocBytes int64 `json:"heap_alloc_bytes,omitempty"`
	// Error says why the figures are missing.
	Error string `json:"error,omitempty"`
}

// memoryMetrics are the metrics NodeMemory reads, by its field.
var memoryMetrics = map[string]func(*NodeMemory) *int64{
	"process_resident_memory_bytes": func(m *NodeMemory) *int64 { return &m.RSSBytes },
	"go_memstats_heap_inuse_bytes":  func(m *NodeMemory) *int64 { return &m.HeapInuseBytes },
	"go_memstats_heap_alloc_bytes":  func(m *NodeMemory) *int64 { return &m.HeapAllocBytes },
}

// ReadNodesMemory reads each target's /metrics. /metrics is public; token, when
// set, is sent as the bearer token (it picks the rate limit of the request, a
// subject's rather than the IP's). A target that does not answer gets Error.
func ReadNodesMemory(ctx context.Context, hc *http.Client, token string, targets []string) []NodeMemory {
	out := make([]NodeMemory, len(targets))
	for i, t := range targets {
		out[i] = readNodeMemory(ctx, hc, token, t)
	}
	return out
}

func readNodeMemory(ctx context.Context, hc *http.Client, token, target string) NodeMemory {
	m := NodeMemory{Target: target}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(target, "/")+"/metrics", nil)
	if err != nil {
		m.Error = err.Error()
		return m
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		m.Error = err.Error()
		return m
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		m.Error = fmt.Sprintf("GET /metrics: %s", resp.Status)
		return m
	}
	if err := parseMemory(resp.Body, &m); err != nil {
		m.Error = err.Error()
	}
	return m
}

// parseMemory fills m's figures from a Prometheus text exposition.
func parseMemory(r io.Reader, m *NodeMemory) error {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return fmt.Errorf("parse /metrics: %w", err)
	}
	for name, field := range memoryMetrics {
		if v, ok := gaugeValue(fams[name]); ok {
			*field(m) = int64(v)
		}
	}
	if m.RSSBytes == 0 {
		return fmt.Errorf("/metrics has no process_resident_memory_bytes")
	}
	return nil
}

func gaugeValue(f *dto.MetricFamily) (float64, bool) {
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, false
	}
	mt := f.GetMetric()[0]
	switch {
	case mt.GetGauge() != nil:
		return mt.GetGauge().GetValue(), true
	case mt.GetUntyped() != nil:
		return mt.GetUntyped().GetValue(), true
	}
	return 0, false
}

// writeNodes prints one line per node's memory.
func writeNodes(w io.Writer, nodes []NodeMemory) {
	for _, n := range nodes {
		if n.Error != "" {
			fmt.Fprintf(w, "node %s: memory unknown (%s)\n", n.Target, n.Error)
			continue
		}
		fmt.Fprintf(w, "node %s: RSS %.1f MiB, Go heap in use %.1f MiB\n", n.Target, mib(n.RSSBytes), mib(n.HeapInuseBytes))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
