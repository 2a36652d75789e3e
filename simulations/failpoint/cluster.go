package failpoint

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/barberpro/edge/simulations/procs"
)

// Cluster is what faults act on: the node processes of a simulation and what the
// simulation knows about them. Faults run one at a time; Cluster is not safe for
// concurrent Inject/Heal calls.
type Cluster struct {
	// Procs are the node processes.
	Procs *procs.Cluster
	// Jurisdiction maps a node id to its jurisdiction ("ar", "us").
	Jurisdiction map[string]string
	// City maps a node id to its city.
	City map[string]string
	// Hot are the ids of the hot providers, hottest first.
	Hot []string
	// IPTables adds and removes the simulation's partition rules.
	IPTables *IPTables
	// ReadyTimeout bounds how long a restarted node may take to become ready.
	// Default 60 s.
	ReadyTimeout time.Duration
	// Logf receives one line per action a fault takes. Default: discard.
	Logf func(format string, args ...any)
	// Original holds each node's spec as the cluster first started it (a copy
	// procs.Spec.Clone made): the command an operator would run again.
	Original map[string]procs.Spec
	// FailpointBinary is a barberpro built with `-tags failpoints` (make
	// build-failpoints), or "" when there is none.
	FailpointBinary string
	// Load, when set, books n more slots of a background provider through the
	// cluster (every attempt recorded in the run's history) and returns how many
	// were acknowledged: the faults that need the Raft log to grow use it.
	Load func(ctx context.Context, n int) int
}

func (c *Cluster) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

func (c *Cluster) readyTimeout() time.Duration {
	if c.ReadyTimeout > 0 {
		return c.ReadyTimeout
	}
	return 60 * time.Second
}

// httpClient has a short timeout: a paused or partitioned node must not stall
// the fault machinery.
var httpClient = &http.Client{Timeout: 2 * time.Second}

// IDs are the node ids, in layout order.
func (c *Cluster) IDs() []string {
	ids := make([]string, 0, len(c.Procs.Procs))
	for _, p := range c.Procs.Procs {
		ids = append(ids, p.Spec.ID)
	}
	return ids
}

// Group lists the nodes of jurisdiction j, in layout order.
func (c *Cluster) Group(j string) []string {
	var ids []string
	for _, id := range c.IDs() {
		if c.Jurisdiction[id] == j {
			ids = append(ids, id)
		}
	}
	return ids
}

// Proc returns node id's process, or an error naming it.
func (c *Cluster) Proc(id string) (*procs.Proc, error) {
	p := c.Procs.ByID(id)
	if p == nil {
		return nil, fmt.Errorf("failpoint: no node %q (nodes: %v)", id, c.IDs())
	}
	return p, nil
}

// Leader asks the running nodes, in turn, who leads group j's Raft group.
func (c *Cluster) Leader(ctx context.Context, j string) (string, error) {
	var last error = errors.New("no running node answered")
	for _, p := range c.Procs.Procs {
		if !p.Running() {
			continue
		}
		st, err := c.operator(p).Status(ctx)
		if err != nil {
			last = err
			continue
		}
		for _, g := range st.Groups {
			if g.Group == j && g.Leader != "" {
				return g.Leader, nil
			}
		}
		last = fmt.Errorf("%s knows no leader of %q", p.Spec.ID, j)
	}
	return "", fmt.Errorf("failpoint: leader of %q: %w", j, last)
}

// WaitLeader polls Leader until group j has one, or timeout passes.
func (c *Cluster) WaitLeader(ctx context.Context, j string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		id, err := c.Leader(ctx, j)
		if err == nil {
			return id, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Hottest returns the node hosting the most hot providers' calendar actors of
// jurisdiction j (asked with client.Placement), ties broken by layout order.
func (c *Cluster) Hottest(ctx context.Context, j string) (string, error) {
	count := map[string]int{}
	for _, pid := range c.Hot {
		for _, p := range c.Procs.Procs {
			if !p.Running() {
				continue
			}
			pl, err := c.operator(p).Placement(ctx, pid)
			if err != nil {
				continue
			}
			if pl.Jurisdiction == j && pl.Node != "" {
				count[pl.Node]++
			}
			break
		}
	}
	best, n := "", 0
	for _, id := range c.Group(j) {
		if count[id] > n {
			best, n = id, count[id]
		}
	}
	if best == "" {
		return "", fmt.Errorf("failpoint: no node of %q hosts a hot provider's actor", j)
	}
	return best, nil
}

// Resolve turns a target word into a node id: "leader" and "follower" of group
// j (a follower chosen by pick among the sorted followers), "hottest" (see
// Hottest), "founder" (see Founder), "us" (the first node of jurisdiction us),
// "city:<name>" (the node of that city), or a node id.
func (c *Cluster) Resolve(ctx context.Context, target, j string, pick uint64) (string, error) {
	switch {
	case target == "leader":
		return c.WaitLeader(ctx, j, 10*time.Second)
	case target == "follower":
		leader, err := c.WaitLeader(ctx, j, 10*time.Second)
		if err != nil {
			return "", err
		}
		var f []string
		for _, id := range c.Group(j) {
			if id != leader {
				f = append(f, id)
			}
		}
		if len(f) == 0 {
			return "", fmt.Errorf("failpoint: group %q has no follower", j)
		}
		sort.Strings(f)
		return f[pick%uint64(len(f))], nil
	case target == "hottest":
		return c.Hottest(ctx, j)
	case target == "founder":
		return c.Founder(j)
	case target == "us":
		if g := c.Group("us"); len(g) > 0 {
			return g[0], nil
		}
		return "", errors.New("failpoint: no node of jurisdiction us")
	case len(target) > 5 && target[:5] == "city:":
		for _, id := range c.IDs() {
			if c.City[id] == target[5:] {
				return id, nil
			}
		}
		return "", fmt.Errorf("failpoint: no node in city %q", target[5:])
	default:
		if _, err := c.Proc(target); err != nil {
			return "", err
		}
		return target, nil
	}
}

// Restart starts node id again (it must be stopped) as a node rejoining a live
// cluster: no --bootstrap, --join every other node, and waits until it is ready.
func (c *Cluster) Restart(ctx context.Context, id string) error {
	p, err := c.Proc(id)
	if err != nil {
		return err
	}
	if p.Running() {
		return nil
	}
	var join []string
	for _, q := range c.Procs.Procs {
		if q.Spec.ID != id {
			join = append(join, q.Spec.GossipAddr())
		}
	}
	p.Spec.Bootstrap = false
	p.Spec.Join = join
	if err := p.Start(); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, c.readyTimeout())
	defer cancel()
	if err := p.WaitReady(rctx); err != nil {
		return err
	}
	c.logf("%s restarted and ready", id)
	return nil
}

// EnsureUp restarts every stopped node and resumes every paused one; the last
// resort of a heal.
func (c *Cluster) EnsureUp(ctx context.Context) error {
	var errs []error
	for _, p := range c.Procs.Procs {
		if p.Running() {
			p.Resume()
			continue
		}
		if err := c.Restart(ctx, p.Spec.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// others lists the node ids other than the given ones.
func (c *Cluster) others(ids ...string) []string {
	var out []string
	for _, id := range c.IDs() {
		if !slices.Contains(ids, id) {
			out = append(out, id)
		}
	}
	return out
}

// ip is node id's loopback address.
func (c *Cluster) ip(id string) string {
	if p := c.Procs.ByID(id); p != nil {
		return p.Spec.IP
	}
	return ""
}
