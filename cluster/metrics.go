package cluster

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/barberpro/edge/cluster/membership"
)

// registerMetrics exposes the store's Raft progress, the actor count, the
// gossip view and the data dir's disk as gauges read at scrape time, and the
// store's commit latency histogram. Every one carries the labels node, city
// and jurisdiction (nodeLabels); the edge's HTTP metrics carry none of them,
// and barberpro_node_info is there to join them on (see deploy/README.md).
func (n *Node) registerMetrics() {
	reg := prometheus.WrapRegistererWith(n.nodeLabels(), n.registry)
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "barberpro", Name: name, Help: help}, f))
	}
	gauge("node_info", "Always 1; its labels (node, city, jurisdiction) name this node.", func() float64 { return 1 })
	gauge("raft_applied_index", "Last Raft index applied to the FSM.", func() float64 { return float64(n.store.Stats().AppliedIndex) })
	gauge("raft_commit_index", "Last Raft index known committed.", func() float64 { return float64(n.store.Stats().CommitIndex) })
	gauge("raft_log_durable_index", "Last Raft index this node's log holds on disk (fdatasynced). A leader's appends return before their fdatasync, so it may trail the last index while one runs; no entry of the log is applied before it covers it.",
		func() float64 { return float64(n.store.Stats().LogDurableIndex) })
	gauge("storage_write_fault", "1 while this node refuses writes because its disk failed them (full, I/O error, or a failed fdatasync of the leader's log, which needs a restart), else 0; /readyz says which.",
		func() float64 {
			if n.store.WriteFault() != nil {
				return 1
			}
			return 0
		})
	gauge("raft_last_batch_size", "Commands in the last Raft entry this node proposed.", func() float64 { return float64(n.store.Stats().LastBatchSize) })
	gauge("raft_is_leader", "1 while this node leads its Raft group.", func() float64 {
		if n.store.Stats().State == "Leader" {
			return 1
		}
		return 0
	})
	gauge("raft_term", "Current Raft term of this node's group, as this node knows it (each election raises it).",
		func() float64 { return float64(n.store.Stats().Term) })
	gauge("raft_last_contact_seconds", "Seconds since this node last heard from its group's leader: 0 on the leader, -1 if never.",
		func() float64 {
			c := n.store.Stats().LastContact
			if c < 0 {
				return -1
			}
			return c.Seconds()
		})
	gauge("raft_voters", "Voters in the latest Raft configuration of this node's group.",
		func() float64 { return float64(n.store.Stats().Voters) })
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "barberpro", Name: "fsm_commits_total",
		Help: "bbolt commits of the FSM's deferred transaction: about one per FSMSyncInterval under steady writes, more when a snapshot, a backup or a full scan needed fsm.db to hold everything applied."},
		func() float64 { return float64(n.store.FSMCommits()) }))
	gauge("backup_last_success_timestamp_seconds", "Unix time of the last scheduled backup this node wrote (0 until the first; only the group's leader writes them).",
		func() float64 { return float64(n.backupLast.Load()) })
	gauge("backup_interval_seconds", "Interval of this node's scheduled backups (node start --backup-every), 0 if it takes none.",
		func() float64 {
			if n.cfg.BackupDir == "" {
				return 0
			}
			return n.cfg.BackupEvery.Seconds()
		})
	gauge("calendar_actors_active", "Calendar actors active on this node.", func() float64 { return float64(n.cals.Active()) })
	gauge("data_dir_avail_bytes", "Bytes available to the node on the file system of its data dir (-1 if unknown).",
		func() float64 { avail, _ := diskSpace(n.cfg.DataDir); return avail })
	gauge("data_dir_size_bytes", "Size in bytes of the file system of the node's data dir (-1 if unknown).",
		func() float64 { _, size := diskSpace(n.cfg.DataDir); return size })
	reg.MustRegister(&gossipCollector{members: n.members, desc: prometheus.NewDesc("barberpro_gossip_members",
		"Gossip members this node knows, itself included, by state (alive, dead, left).", []string{"state"}, nil)})
	reg.MustRegister(n.store.Collectors()...)
}

// nodeLabels are the constant labels of the node's own metrics.
func (n *Node) nodeLabels() prometheus.Labels {
	return prometheus.Labels{"node": n.cfg.ID, "city": n.cfg.City, "jurisdiction": n.city.Jurisdiction}
}

// gossipCollector counts the gossip members by state at scrape time.
type gossipCollector struct {
	members *membership.Membership
	desc    *prometheus.Desc
}

func (c *gossipCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *gossipCollector) Collect(ch chan<- prometheus.Metric) {
	count := map[string]int{membership.StateAlive: 0, membership.StateDead: 0, membership.StateLeft: 0}
	for _, m := range c.members.AllMembers() {
		count[m.State]++
	}
	for state, k := range count {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(k), state)
	}
}
