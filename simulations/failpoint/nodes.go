package failpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/procs"
	"github.com/barberpro/edge/storage"
)

// ErrSkip wraps the Available error of a fault that cannot run on this machine
// for a reason the operator chose (not root): the scenario is skipped, not
// failed.
var ErrSkip = errors.New("failpoint: skipped")

// Founder is the node that founded group j: the first node of the group in
// start order (procs.Cluster.StartAll starts the layout in order, and the
// first node of each jurisdiction founds its group).
func (c *Cluster) Founder(j string) (string, error) {
	g := c.Group(j)
	if len(g) == 0 {
		return "", fmt.Errorf("failpoint: no node of jurisdiction %q", j)
	}
	return g[0], nil
}

// StartOriginal starts node id (it must be stopped) with exactly the spec the
// cluster first started it with (Original), as an operator re-running the
// node's command would, and waits until it is ready.
func (c *Cluster) StartOriginal(ctx context.Context, id string) error {
	if err := c.startOriginal(id); err != nil {
		return err
	}
	return c.waitReady(ctx, id)
}

// startOriginal starts node id, if stopped, with its original spec; it does
// not wait for readiness.
func (c *Cluster) startOriginal(id string) error {
	p, err := c.Proc(id)
	if err != nil {
		return err
	}
	orig, ok := c.Original[id]
	if !ok {
		return fmt.Errorf("failpoint: the original command of %s is not known", id)
	}
	if p.Running() {
		return nil
	}
	p.Spec = orig.Clone()
	if err := p.Start(); err != nil {
		return err
	}
	c.logf("%s started with its original command: %s %s", id, filepath.Base(p.Binary), strings.Join(p.Spec.Args(), " "))
	return nil
}

// waitReady waits until node id answers /readyz 200, within ReadyTimeout.
func (c *Cluster) waitReady(ctx context.Context, id string) error {
	p, err := c.Proc(id)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, c.readyTimeout())
	defer cancel()
	if err := p.WaitReady(rctx); err != nil {
		return err
	}
	c.logf("%s ready", id)
	return nil
}

// Status asks node id for GET /v1/cluster/status.
func (c *Cluster) Status(ctx context.Context, id string) (*client.ClusterStatus, error) {
	p, err := c.Proc(id)
	if err != nil {
		return nil, err
	}
	return c.operator(p).Status(ctx)
}

// groupStatus is group j as node id reports it.
func (c *Cluster) groupStatus(ctx context.Context, id, j string) (*client.GroupStatus, error) {
	st, err := c.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	for i := range st.Groups {
		if st.Groups[i].Group == j {
			return &st.Groups[i], nil
		}
	}
	return nil, fmt.Errorf("failpoint: %s reports no group %q", id, j)
}

// AppliedIndex is node id's applied index as the running nodes of its group
// report it (the highest any of them reports).
func (c *Cluster) AppliedIndex(ctx context.Context, id string) (uint64, error) {
	j := c.Jurisdiction[id]
	var best uint64
	found := false
	for _, q := range c.Group(j) {
		if p, _ := c.Proc(q); p == nil || !p.Running() {
			continue
		}
		g, err := c.groupStatus(ctx, q, j)
		if err != nil {
			continue
		}
		for _, m := range g.Members {
			if m.ID == id {
				best, found = max(best, m.AppliedIndex), true
			}
		}
	}
	if !found {
		return 0, fmt.Errorf("failpoint: no running node reports the applied index of %s", id)
	}
	return best, nil
}

// waitFor polls cond every 100ms until it is true, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sleepCtx sleeps d or until ctx ends; false if ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// snapshotDir is where the Raft snapshots of a data dir live: raft's
// FileSnapshotStore keeps them in a "snapshots" directory under the directory
// it is given (storage.SnapshotsDir).
func snapshotDir(dataDir string) string {
	return filepath.Join(dataDir, storage.SnapshotsDir, "snapshots")
}

// snapshotMeta is the part of a Raft snapshot's meta.json the faults read.
type snapshotMeta struct {
	ID    string
	Index uint64
	Term  uint64
}

// snapshots lists the complete Raft snapshots of a data dir (a directory with
// a meta.json, not a .tmp one still being written), newest index last.
func snapshots(dataDir string) []snapshotMeta {
	dir := snapshotDir(dataDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []snapshotMeta
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "meta.json"))
		if err != nil {
			continue
		}
		var m snapshotMeta
		if json.Unmarshal(b, &m) == nil {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b snapshotMeta) int {
		switch {
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
	return out
}

// latestSnapshotIndex is the index of the newest complete snapshot in dataDir, 0
// if none.
func latestSnapshotIndex(dataDir string) uint64 {
	s := snapshots(dataDir)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].Index
}

// procOf returns node id's process; id comes from Resolve, so it exists.
func (c *Cluster) procOf(id string) *procs.Proc {
	p, _ := c.Proc(id)
	return p
}

// operator is a client of p's API with the run's operator token.
func (c *Cluster) operator(p *procs.Proc) *client.Client {
	return client.New(p.Spec.URL(), httpClient).WithToken(c.Procs.Secrets.Operator())
}
