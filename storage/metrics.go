package storage

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// commitBuckets are the bounds, in seconds, of the commit latency histogram:
// from a LAN round trip to past the default ApplyTimeout.
var commitBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// newCommitHistogram makes the histogram of Store.Collectors.
func newCommitHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "barberpro", Subsystem: "raft", Name: "commit_duration_seconds",
		Help: "Time from proposing a batch of commands to the Raft leader until it is " +
			"committed on a quorum and applied to this node's FSM (successful batches only).",
		Buckets: commitBuckets,
	})
}

// Collectors returns the Store's Prometheus collectors: the histogram
// barberpro_raft_commit_duration_seconds, observed for each batch this node
// proposes (as leader) that commits, and the counter
// barberpro_raft_foreign_group_refused_total (Raft connections refused as
// another group's, groupcheck.go). They carry no labels: the caller adds the
// node's (prometheus.WrapRegistererWith). Safe to call at any time; each call
// returns the same collectors.
func (s *Store) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.b.commitSeconds, s.foreignRefused}
}

// observeCommit records one committed batch's latency.
func (b *batcher) observeCommit(d time.Duration) { b.commitSeconds.Observe(d.Seconds()) }
