package cluster

import "github.com/prometheus/client_golang/prometheus"

// registerMetrics exposes the store's Raft progress and the actor count as gauges
// read at scrape time.
func (n *Node) registerMetrics() {
	gauge := func(name, help string, f func() float64) {
		n.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "barberpro", Name: name, Help: help,
			ConstLabels: prometheus.Labels{"node": n.cfg.ID},
		}, f))
	}
	gauge("raft_applied_index", "Last Raft index applied to the FSM.", func() float64 { return float64(n.store.Stats().AppliedIndex) })
	gauge("raft_commit_index", "Last Raft index known committed.", func() float64 { return float64(n.store.Stats().CommitIndex) })
	gauge("raft_last_batch_size", "Commands in the last Raft entry this node proposed.", func() float64 { return float64(n.store.Stats().LastBatchSize) })
	gauge("raft_is_leader", "1 while this node leads its Raft group.", func() float64 {
		if n.store.Stats().State == "Leader" {
			return 1
		}
		return 0
	})
	gauge("calendar_actors_active", "Calendar actors active on this node.", func() float64 { return float64(n.cals.Active()) })
}
