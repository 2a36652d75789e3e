// Package failpoint holds the faults a failover simulation injects into a
// cluster of real node processes: kill -9, SIGSTOP/SIGCONT, iptables
// partitions, a wiped data dir, a rolling restart, a flapping node and a
// power cut that loses every write not fsynced (package lazyfs). Each
// fault is a type with a Name, an Available check, Inject and Heal, built by
// name from one registry (New), after etcd's robustness tests.
//
// Every fault is healed — processes restarted or resumed, every iptables rule
// removed — by Heal, which is safe to call after a failed or partial Inject and
// more than once.
package failpoint

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Params are a fault's parameters as a scenario file gives them.
type Params map[string]string

// Fault is one kind of failure. Inject and Heal are called from one goroutine,
// Inject once, then Heal (also after Inject failed, and possibly twice).
type Fault interface {
	// Name is the registry name ("kill", "partition", ...).
	Name() string
	// Available reports why the fault cannot run here (nil if it can).
	Available() error
	// Inject breaks the cluster. It may block (a rolling restart takes a while).
	Inject(ctx context.Context, c *Cluster) error
	// Heal undoes Inject: every process running and resumed, every rule removed.
	Heal(ctx context.Context, c *Cluster) error
	// Describe says what Inject did, e.g. "kill -9 ar leader cba-1".
	Describe() string
	// Affected are the jurisdictions whose providers the fault may make
	// unavailable (known after Inject).
	Affected() []string
}

// Factory builds a fault from its parameters; pick is the seeded random number
// that makes its choices (which follower, which city).
type Factory func(p Params, pick uint64) (Fault, error)

type entry struct {
	doc     string
	params  []string
	factory Factory
}

var registry = map[string]entry{
	"kill": {"kill -9 a node, restart it on heal (target: leader|follower|hottest|us|city:<name>|<node id>; group: ar)",
		[]string{"target", "group"}, newKill},
	"pause": {"SIGSTOP a node past the election timeout, SIGCONT on heal (target, group as for kill; default leader)",
		[]string{"target", "group"}, newPause},
	"partition": {"iptables partition between loopback IPs (mode: isolate-city [city], majority-minority [the ar leader and us on the minority side], one-way [from: leader|<id>]; group: ar)",
		[]string{"mode", "city", "from", "group"}, newPartition},
	"wipe": {"kill -9 a node and delete its data dir; on heal it restarts empty, rejoins and catches up (by snapshot when the log is compacted) (target as for kill; default follower)",
		[]string{"target", "group"}, newWipe},
	"wipe-founder": {"finding 1 of issue 7: kill -9 the node that founded the group (the first of it started), delete its data dir and, with remove (default true), have the group's leader remove it as an operator replacing its disk or the group keeper after its dead-server timeout would; on heal start it with exactly the command it was first started with, isolated (iptables) from every other node for isolate (default 5s) so that it decides alone, then wait until it is ready (group: ar)",
		[]string{"group", "remove", "isolate"}, newWipeFounder},
	"rolling-restart": {"SIGTERM and restart every node in turn, waiting until each is ready (settle: pause between nodes, default 1s)",
		[]string{"settle"}, newRolling},
	"wipe-voter-kill-leader": {"finding 3 of issue 7: with three voters (a fourth follower is first killed and removed), cut one follower's Raft traffic (lag) while the leader and the other follower commit writes, kill -9 that other follower and wipe its disk, kill -9 the leader, restore the lagging follower's Raft traffic, restart the wiped one empty and let them run (window); on heal restart the leader and the removed node (group: ar)",
		[]string{"group", "lag", "window"}, newWipeVoterKillLeader},
	"snapshot-crash": {"finding 2 of issue 7: kill -9 a follower, book (through Cluster.Load) until the leader's log is compacted past it, restart it so it dies installing the snapshot (crash: failpoint = the failpoints build with BARBERPRO_FAILPOINTS=snapshot-restore=crash; kill = kill -9 when Raft has persisted the snapshot; auto = failpoint if the build exists, else or if it does not die, kill), then restart it normally, and (leader_change, default true) kill -9 and restart the leader so a new one replicates to it from what it reports (target: follower|<id>; trailing: the nodes' TrailingLogs, default 512; timeout: default 90s)",
		[]string{"target", "group", "crash", "trailing", "timeout", "leader_change"}, newSnapshotCrash},
	"disk-full": {"finding 5 of issue 7 (root, Linux): the data dirs are tmpfs mounts of size (default 256m) from the start; at injection each is remounted to leave margin (default 64k) free and the workload, with background bookings, fills it; a node's disk is full once it hit ENOSPC (in its log) or died (fill_timeout 30s); all stay full for hold (default 6s), then grow back to size and each node must be ready within resume (default 30s) without a restart (target: group = every node of group, default ar; or us, city:<name>, a node id)",
		[]string{"target", "group", "size", "margin", "hold", "fill_timeout", "resume"}, newDiskFull},
	"power-loss": {"issue 11 (root, /dev/fuse): the data dirs of the group (default ar) are lazyfs mounts from the start, which keep file data in memory until it is fsynced; at injection, after load (default 2s) of background bookings and with them in flight, kill -9 the group's leader and followers (default 1; a number, or all) of its followers, then cut their power: each mount's server is killed, so every write they had not fsynced is lost, and a fresh mount replaces it over the same disk (metadata — creates, renames, truncates — is durable at once; no torn writes); on heal restart both and wait until ready",
		[]string{"group", "load", "followers"}, newPowerLoss},
	"flapping": {"kill -9 and restart a node repeatedly until heal (target as for kill, default follower; period: default 3s)",
		[]string{"target", "group", "period"}, newFlapping},
}

// Names lists the registered faults, sorted.
func Names() []string { return slices.Sorted(maps.Keys(registry)) }

// Doc is the one-line description of fault name.
func Doc(name string) string { return registry[name].doc }

// New builds fault name with params p; unknown names and parameters are errors
// that list what is known.
func New(name string, p Params, pick uint64) (Fault, error) {
	e, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown fault %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	for k := range p {
		if !slices.Contains(e.params, k) {
			return nil, fmt.Errorf("fault %q: unknown parameter %q (known: %s)", name, k, strings.Join(e.params, ", "))
		}
	}
	return e.factory(p, pick)
}

func param(p Params, key, def string) string {
	if v, ok := p[key]; ok && v != "" {
		return v
	}
	return def
}

func checkTarget(t string) error {
	switch t {
	case "leader", "follower", "hottest", "us", "founder":
		return nil
	}
	if strings.HasPrefix(t, "city:") && len(t) > 5 {
		return nil
	}
	if t == "" || strings.ContainsAny(t, " \t/") {
		return fmt.Errorf("bad target %q (leader, follower, hottest, us, founder, city:<name> or a node id)", t)
	}
	return nil // a node id, checked against the cluster at Inject
}

// groupOf is the jurisdiction a target belongs to.
func groupOf(c *Cluster, id, def string) string {
	if j := c.Jurisdiction[id]; j != "" {
		return j
	}
	return def
}

// ---- kill -9 ----

type kill struct {
	target, group string
	pick          uint64
	node          string
	desc          string
}

func newKill(p Params, pick uint64) (Fault, error) {
	f := &kill{target: param(p, "target", "leader"), group: param(p, "group", "ar"), pick: pick}
	return f, checkTarget(f.target)
}

func (f *kill) Name() string       { return "kill" }
func (f *kill) Available() error   { return nil }
func (f *kill) Describe() string   { return f.desc }
func (f *kill) Affected() []string { return []string{f.group} }

func (f *kill) Inject(ctx context.Context, c *Cluster) error {
	id, err := c.Resolve(ctx, f.target, f.group, f.pick)
	if err != nil {
		return err
	}
	f.node, f.group = id, groupOf(c, id, f.group)
	f.desc = fmt.Sprintf("kill -9 %s (%s)", id, f.target)
	p, _ := c.Proc(id)
	c.logf("kill -9 %s (%s of %s)", id, f.target, f.group)
	return p.Kill()
}

func (f *kill) Heal(ctx context.Context, c *Cluster) error {
	if f.node == "" {
		return nil
	}
	return c.Restart(ctx, f.node)
}

// ---- pause ----

type pause struct {
	target, group string
	pick          uint64
	node, desc    string
}

func newPause(p Params, pick uint64) (Fault, error) {
	f := &pause{target: param(p, "target", "leader"), group: param(p, "group", "ar"), pick: pick}
	return f, checkTarget(f.target)
}

func (f *pause) Name() string       { return "pause" }
func (f *pause) Available() error   { return nil }
func (f *pause) Describe() string   { return f.desc }
func (f *pause) Affected() []string { return []string{f.group} }

func (f *pause) Inject(ctx context.Context, c *Cluster) error {
	id, err := c.Resolve(ctx, f.target, f.group, f.pick)
	if err != nil {
		return err
	}
	f.node, f.group = id, groupOf(c, id, f.group)
	f.desc = fmt.Sprintf("SIGSTOP %s (%s)", id, f.target)
	p, _ := c.Proc(id)
	c.logf("SIGSTOP %s (%s of %s)", id, f.target, f.group)
	return p.Pause()
}

func (f *pause) Heal(ctx context.Context, c *Cluster) error {
	if f.node == "" {
		return nil
	}
	p, _ := c.Proc(f.node)
	c.logf("SIGCONT %s", f.node)
	if err := p.Resume(); err != nil && p.Running() {
		return err
	}
	if !p.Running() { // it died while stopped: bring it back
		return c.Restart(ctx, f.node)
	}
	return nil
}

// ---- partition ----

type partition struct {
	mode, city, from, group string
	pick                    uint64
	rules                   []Rule
	desc                    string
	affected                []string
}

func newPartition(p Params, pick uint64) (Fault, error) {
	f := &partition{mode: param(p, "mode", "isolate-city"), city: p["city"], from: param(p, "from", "leader"),
		group: param(p, "group", "ar"), pick: pick}
	switch f.mode {
	case "isolate-city", "majority-minority", "one-way":
	default:
		return nil, fmt.Errorf("fault \"partition\": mode %q (want isolate-city, majority-minority or one-way)", f.mode)
	}
	return f, checkTarget(f.from)
}

func (f *partition) Name() string { return "partition" }
func (f *partition) Available() error {
	return NewIPTables("").Available()
}
func (f *partition) Describe() string   { return f.desc }
func (f *partition) Affected() []string { return f.affected }

// cut returns the rules that cut a from b in both directions.
func (c *Cluster) cut(a, b []string) []Rule {
	var rules []Rule
	for _, x := range a {
		for _, y := range b {
			rules = append(rules, Rule{Src: c.ip(x), Dst: c.ip(y)}, Rule{Src: c.ip(y), Dst: c.ip(x)})
		}
	}
	return rules
}

func (f *partition) Inject(ctx context.Context, c *Cluster) error {
	f.affected = []string{f.group}
	switch f.mode {
	case "isolate-city":
		var id string
		if f.city != "" {
			var err error
			if id, err = c.Resolve(ctx, "city:"+f.city, f.group, 0); err != nil {
				return err
			}
		} else {
			g := c.Group(f.group)
			id = g[f.pick%uint64(len(g))]
		}
		f.rules = c.cut([]string{id}, c.others(id))
		f.desc = fmt.Sprintf("isolate %s (%s) from every other node", c.City[id], id)
	case "majority-minority":
		leader, err := c.WaitLeader(ctx, f.group, 10*time.Second)
		if err != nil {
			return err
		}
		minority := []string{leader}
		for _, id := range c.IDs() {
			if c.Jurisdiction[id] != f.group {
				minority = append(minority, id)
			}
		}
		f.rules = c.cut(minority, c.others(minority...))
		f.desc = fmt.Sprintf("split {%s} (minority, with the %s leader) from {%s}", strings.Join(minority, ","), f.group,
			strings.Join(c.others(minority...), ","))
		f.affected = []string{f.group}
		for _, id := range minority {
			if j := c.Jurisdiction[id]; j != f.group && !slices.Contains(f.affected, j) {
				f.affected = append(f.affected, j)
			}
		}
	case "one-way":
		from, err := c.Resolve(ctx, f.from, f.group, f.pick)
		if err != nil {
			return err
		}
		for _, id := range c.others(from) {
			f.rules = append(f.rules, Rule{Src: c.ip(from), Dst: c.ip(id)})
		}
		f.desc = fmt.Sprintf("one-way: drop every packet from %s (%s) to the other nodes", from, f.from)
	}
	c.logf("partition: %s (%d iptables rules)", f.desc, len(f.rules))
	return c.IPTables.Add(f.rules...)
}

func (f *partition) Heal(ctx context.Context, c *Cluster) error {
	if len(f.rules) == 0 {
		return nil
	}
	err := c.IPTables.Remove(f.rules...)
	if err == nil {
		c.logf("partition healed: %d rules removed", len(f.rules))
		f.rules = nil
	}
	return err
}

// ---- wiped data dir ----

type wipe struct {
	target, group string
	pick          uint64
	node, desc    string
}

func newWipe(p Params, pick uint64) (Fault, error) {
	f := &wipe{target: param(p, "target", "follower"), group: param(p, "group", "ar"), pick: pick}
	if f.target == "us" {
		return nil, fmt.Errorf("fault \"wipe\": the us node is its group's only replica: wiping it loses the group")
	}
	return f, checkTarget(f.target)
}

func (f *wipe) Name() string       { return "wipe" }
func (f *wipe) Available() error   { return nil }
func (f *wipe) Describe() string   { return f.desc }
func (f *wipe) Affected() []string { return []string{f.group} }

func (f *wipe) Inject(ctx context.Context, c *Cluster) error {
	id, err := c.Resolve(ctx, f.target, f.group, f.pick)
	if err != nil {
		return err
	}
	if len(c.Group(groupOf(c, id, f.group))) < 2 {
		return fmt.Errorf("failpoint: wipe %s: the only replica of its group", id)
	}
	f.node, f.group = id, groupOf(c, id, f.group)
	p, _ := c.Proc(id)
	c.logf("kill -9 %s and wipe %s", id, p.Spec.DataDir)
	if err := p.Kill(); err != nil && p.Running() {
		return err
	}
	f.desc = fmt.Sprintf("kill -9 %s (%s), rm -rf its data dir", id, f.target)
	return removeAll(p.Spec.DataDir)
}

func (f *wipe) Heal(ctx context.Context, c *Cluster) error {
	if f.node == "" {
		return nil
	}
	p, _ := c.Proc(f.node)
	if p.Running() {
		return nil
	}
	if err := c.Restart(ctx, f.node); err != nil {
		return err
	}
	if snaps := snapshotCount(p.Spec.DataDir); snaps > 0 {
		f.desc += "; rejoined empty and installed a snapshot"
	} else {
		f.desc += "; rejoined empty and caught up by log replay (no snapshot yet)"
	}
	return nil
}

// ---- rolling restart ----

type rolling struct {
	settle time.Duration
	desc   string
	done   []string
}

func newRolling(p Params, _ uint64) (Fault, error) {
	d, err := time.ParseDuration(param(p, "settle", "1s"))
	if err != nil || d < 0 {
		return nil, fmt.Errorf("fault \"rolling-restart\": settle %q: want a duration", p["settle"])
	}
	return &rolling{settle: d}, nil
}

func (f *rolling) Name() string       { return "rolling-restart" }
func (f *rolling) Available() error   { return nil }
func (f *rolling) Describe() string   { return f.desc }
func (f *rolling) Affected() []string { return []string{"ar", "us"} }

func (f *rolling) Inject(ctx context.Context, c *Cluster) error {
	for _, p := range c.Procs.Procs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		id := p.Spec.ID
		c.logf("rolling restart: SIGTERM %s", id)
		if err := p.Stop(10 * time.Second); err != nil && p.Running() {
			return fmt.Errorf("failpoint: stop %s: %w", id, err)
		}
		if err := c.Restart(ctx, id); err != nil {
			return err
		}
		f.done = append(f.done, id)
		f.desc = "SIGTERM and restart, in turn: " + strings.Join(f.done, ", ")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.settle):
		}
	}
	return nil
}

func (f *rolling) Heal(ctx context.Context, c *Cluster) error { return c.EnsureUp(ctx) }

// ---- flapping ----

type flapping struct {
	target, group string
	period        time.Duration
	pick          uint64
	node, desc    string
	stop          chan struct{}
	done          chan struct{}
	flaps         atomic.Int64
}

func newFlapping(p Params, pick uint64) (Fault, error) {
	f := &flapping{target: param(p, "target", "follower"), group: param(p, "group", "ar"), pick: pick}
	d, err := time.ParseDuration(param(p, "period", "3s"))
	if err != nil || d < 200*time.Millisecond {
		return nil, fmt.Errorf("fault \"flapping\": period %q: want a duration of at least 200ms", p["period"])
	}
	f.period = d
	return f, checkTarget(f.target)
}

func (f *flapping) Name() string       { return "flapping" }
func (f *flapping) Available() error   { return nil }
func (f *flapping) Affected() []string { return []string{f.group} }
func (f *flapping) Describe() string {
	return fmt.Sprintf("%s (%d kill -9/restart cycles)", f.desc, f.flaps.Load())
}

func (f *flapping) Inject(ctx context.Context, c *Cluster) error {
	id, err := c.Resolve(ctx, f.target, f.group, f.pick)
	if err != nil {
		return err
	}
	f.node, f.group = id, groupOf(c, id, f.group)
	f.desc = fmt.Sprintf("flap %s (%s) every %v", id, f.target, f.period)
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	p, _ := c.Proc(id)
	go func() {
		defer close(f.done)
		for {
			c.logf("flapping: kill -9 %s", id)
			p.Kill()
			f.flaps.Add(1)
			select {
			case <-f.stop:
				return
			case <-time.After(f.period / 2):
			}
			if err := c.Restart(ctx, id); err != nil {
				c.logf("flapping: restart %s: %v", id, err)
			}
			select {
			case <-f.stop:
				return
			case <-time.After(f.period / 2):
			}
		}
	}()
	return nil
}

func (f *flapping) Heal(ctx context.Context, c *Cluster) error {
	if f.stop != nil {
		select {
		case <-f.stop:
		default:
			close(f.stop)
		}
		<-f.done
	}
	if f.node == "" {
		return nil
	}
	return c.Restart(ctx, f.node)
}
