package failpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Preparer is a fault that must act before the cluster starts and clean up
// after the run's checks (a tmpfs under a data dir). The runner calls Prepare
// before the nodes start and Cleanup once they are stopped and checked,
// whatever happened in between (Ctrl-C included).
type Preparer interface {
	Prepare(ctx context.Context, c *Cluster) error
	// Cleanup undoes Prepare; keep asks it to leave what it held readable at the
	// same paths (a failed run keeps its data dirs).
	Cleanup(c *Cluster, keep bool) error
}

// DiskWindow is what a disk-full fault did to one node's data dir.
type DiskWindow struct {
	// Node is the node id.
	Node string
	// Full is when its tmpfs was first seen full (zero: it never filled).
	Full time.Time
	// Grown is when the tmpfs was grown back.
	Grown time.Time
	// Ready is when the node answered /readyz 200 after Grown (zero: not
	// within the fault's ready timeout, or only after a restart).
	Ready time.Time
	// Restarted is true when the node had died and the fault started it again.
	Restarted bool
}

// DiskWindows is implemented by faults that fill disks.
type DiskWindows interface {
	DiskWindows() []DiskWindow
}

// diskFull is finding 5 of issue 7: the nodes' data dirs are tmpfs mounts
// (mounted before the cluster starts); at injection each is remounted with a
// size just above what it uses, and the workload, helped by background
// bookings (Cluster.Load), fills it. A node's disk counts as full from the
// moment the node hit ENOSPC ("no space left on device" in its log) or died;
// once every one is, it stays so for hold, then each is grown back (mount -o
// remount,size=) and the node must resume by itself.
type diskFull struct {
	target, group             string
	size, margin              uint64
	hold, fillTimeout, resume time.Duration

	source  string
	mounted []string // node ids whose data dir is a tmpfs of ours
	windows map[string]*DiskWindow
	desc    []string
}

func parseBytes(s string) (uint64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		m      uint64
	}{{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, err
	}
	return n * mult, nil
}

func newDiskFull(p Params, _ uint64) (Fault, error) {
	f := &diskFull{target: param(p, "target", "group"), group: param(p, "group", "ar")}
	bad := func(k string) error {
		return fmt.Errorf("fault \"disk-full\": %s %q: want %s", k, p[k], map[string]string{
			"size": "a size (256m)", "margin": "a size (64k)",
			"hold": "a positive duration", "fill_timeout": "a positive duration", "resume": "a positive duration"}[k])
	}
	var err error
	for _, b := range []struct {
		key, def string
		v        *uint64
	}{{"size", "256m", &f.size}, {"margin", "64k", &f.margin}} {
		if *b.v, err = parseBytes(param(p, b.key, b.def)); err != nil || *b.v == 0 {
			return nil, bad(b.key)
		}
	}
	for _, d := range []struct {
		key, def string
		v        *time.Duration
	}{{"hold", "6s", &f.hold}, {"fill_timeout", "30s", &f.fillTimeout}, {"resume", "30s", &f.resume}} {
		if *d.v, err = time.ParseDuration(param(p, d.key, d.def)); err != nil || *d.v <= 0 {
			return nil, bad(d.key)
		}
	}
	switch {
	case f.target == "group":
	case f.target == "leader" || f.target == "follower" || f.target == "hottest" || f.target == "founder":
		return nil, fmt.Errorf("fault \"disk-full\": target %q: the data dirs are mounted before the cluster starts; want group, us, city:<name> or a node id", f.target)
	default:
		if err := checkTarget(f.target); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (f *diskFull) Name() string     { return "disk-full" }
func (f *diskFull) Available() error { return mountAvailable() }
func (f *diskFull) Affected() []string {
	return []string{f.group}
}
func (f *diskFull) Describe() string { return strings.Join(f.desc, "; ") }

// NeedsLoad tells the runner this fault books through Cluster.Load.
func (f *diskFull) NeedsLoad() bool { return true }

// DiskWindows reports, per node, when its disk was full, grown and ready again.
func (f *diskFull) DiskWindows() []DiskWindow {
	var out []DiskWindow
	for _, id := range f.mounted {
		if w := f.windows[id]; w != nil {
			out = append(out, *w)
		}
	}
	return out
}

func (f *diskFull) nodes(ctx context.Context, c *Cluster) ([]string, error) {
	if f.target == "group" {
		g := c.Group(f.group)
		if len(g) == 0 {
			return nil, fmt.Errorf("failpoint: disk-full: no node of group %q", f.group)
		}
		return g, nil
	}
	id, err := c.Resolve(ctx, f.target, f.group, 0)
	if err != nil {
		return nil, err
	}
	f.group = groupOf(c, id, f.group)
	return []string{id}, nil
}

// Prepare mounts a tmpfs of the fault's size on each target node's data dir,
// after unmounting any left by an earlier run on the same addresses.
func (f *diskFull) Prepare(ctx context.Context, c *Cluster) error {
	f.source = "barberpro-sim-tmpfs"
	if c.IPTables != nil {
		f.source = c.IPTables.Tag + "-tmpfs"
	}
	for _, dir := range mountsOf(f.source) {
		if err := unmount(dir); err == nil {
			c.logf("unmounted a tmpfs left by an earlier run: %s", dir)
		}
	}
	ids, err := f.nodes(ctx, c)
	if err != nil {
		return err
	}
	f.windows = map[string]*DiskWindow{}
	for _, id := range ids {
		dir := c.procOf(id).Spec.DataDir
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		if err := mountTmpfs(f.source, dir, f.size); err != nil {
			return err
		}
		f.mounted = append(f.mounted, id)
		f.windows[id] = &DiskWindow{Node: id}
		c.logf("disk-full: %s's data dir is a %s tmpfs: %s", id, human(f.size), dir)
	}
	return nil
}

func human(n uint64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func (f *diskFull) Inject(ctx context.Context, c *Cluster) error {
	if len(f.mounted) == 0 {
		return errors.New("failpoint: disk-full: no tmpfs was mounted (Prepare did not run)")
	}
	var shrunk []string
	logFrom := map[string]int64{}
	for _, id := range f.mounted {
		p := c.procOf(id)
		if fi, err := os.Stat(p.LogPath); err == nil {
			logFrom[id] = fi.Size()
		}
		var err error
		for range 5 {
			var used uint64
			if _, used, _, err = diskUsage(p.Spec.DataDir); err != nil {
				break
			}
			size := (used + f.margin + 4095) &^ 4095
			if err = resizeTmpfs(f.source, p.Spec.DataDir, size); err == nil {
				shrunk = append(shrunk, fmt.Sprintf("%s %s used → size %s", id, human(used), human(size)))
				break
			}
		}
		if err != nil {
			return err
		}
	}
	shrunkAt := time.Now()
	f.desc = append(f.desc, "shrank the data dirs' tmpfs to leave "+human(f.margin)+" free: "+strings.Join(shrunk, ", "))
	c.logf("disk-full: %s", f.desc[len(f.desc)-1])
	// Book in the background until every disk is full.
	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for lctx.Err() == nil && c.Load != nil {
			if c.Load(lctx, 50) == 0 {
				sleepCtx(lctx, 200*time.Millisecond)
			}
		}
	}()
	defer func() { stopLoad(); <-loadDone }()
	deadline := time.Now().Add(f.fillTimeout)
	for {
		left := 0
		for _, id := range f.mounted {
			w, p := f.windows[id], c.procOf(id)
			if !w.Full.IsZero() {
				continue
			}
			how := ""
			switch {
			case !p.Running():
				how = "died"
			case logHas(p.LogPath, logFrom[id], "no space left on device"):
				how = "hit ENOSPC"
			}
			if how == "" {
				left++
				continue
			}
			w.Full = time.Now()
			_, _, free, _ := diskUsage(p.Spec.DataDir)
			c.logf("disk-full: %s's data dir is full: it %s (%s free)", id, how, human(free))
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("failpoint: disk-full: %d node(s) did not hit a full disk within %v", left, f.fillTimeout)
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
	stopLoad()
	var last time.Time
	for _, w := range f.windows {
		if w.Full.After(last) {
			last = w.Full
		}
	}
	f.desc = append(f.desc, fmt.Sprintf("every node hit the full disk within %v of the shrink; kept full %v", last.Sub(shrunkAt).Round(100*time.Millisecond), f.hold))
	sleepCtx(ctx, f.hold)
	return nil
}

// logHas reports whether the file at path contains needle after offset from.
func logHas(path string, from int64, needle string) bool {
	fh, err := os.Open(path)
	if err != nil {
		return false
	}
	defer fh.Close()
	if _, err := fh.Seek(from, io.SeekStart); err != nil {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(fh, 64<<20))
	return err == nil && bytes.Contains(bytes.ToLower(b), []byte(needle))
}

// Heal grows every tmpfs back and waits until each node is ready again; a
// node that died meanwhile is restarted (the run's crash check reports it).
func (f *diskFull) Heal(ctx context.Context, c *Cluster) error {
	var errs []error
	var grown []string
	for _, id := range f.mounted {
		w := f.windows[id]
		if !w.Grown.IsZero() {
			continue
		}
		if err := resizeTmpfs(f.source, c.procOf(id).Spec.DataDir, f.size); err != nil {
			errs = append(errs, err)
			continue
		}
		w.Grown = time.Now()
		grown = append(grown, id)
	}
	if len(grown) == 0 {
		return errors.Join(errs...)
	}
	// Every node in parallel: a dead one is started again (so the run goes
	// on; the crash check reports it), a live one must become ready by itself.
	res := make([]string, len(grown))
	errc := make([]error, len(grown))
	var wg sync.WaitGroup
	rctx, cancel := context.WithTimeout(ctx, f.resume)
	defer cancel()
	for i, id := range grown {
		w, p := f.windows[id], c.procOf(id)
		dead := !p.Running()
		w.Restarted = dead
		if dead {
			if err := p.Start(); err != nil {
				errc[i], res[i] = err, id+" had died; its restart failed"
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.WaitReady(rctx)
			switch {
			case err != nil && dead:
				errc[i], res[i] = err, fmt.Sprintf("%s had died; restarted, not ready within %v", id, f.resume)
			case err != nil:
				errc[i] = fmt.Errorf("failpoint: disk-full: %s not ready %v after its disk was grown", id, f.resume)
				res[i] = fmt.Sprintf("%s not ready within %v", id, f.resume)
			case dead:
				res[i] = fmt.Sprintf("%s had died; restarted, ready %v later", id, time.Since(w.Grown).Round(100*time.Millisecond))
			default:
				w.Ready = time.Now()
				res[i] = fmt.Sprintf("%s ready %v later", id, w.Ready.Sub(w.Grown).Round(100*time.Millisecond))
			}
		}()
	}
	wg.Wait()
	errs = append(errs, errc...)
	f.desc = append(f.desc, fmt.Sprintf("grew them back to %s: %s", human(f.size), strings.Join(res, ", ")))
	return errors.Join(errs...)
}

// Cleanup unmounts every tmpfs; with keep, each one's files are first copied
// aside and moved back to the same path afterwards.
func (f *diskFull) Cleanup(c *Cluster, keep bool) error {
	var errs []error
	for _, id := range f.mounted {
		dir := c.procOf(id).Spec.DataDir
		saved := ""
		if keep {
			saved = dir + ".saved"
			if err := os.CopyFS(saved, os.DirFS(dir)); err != nil {
				errs = append(errs, fmt.Errorf("failpoint: keep %s: %w", dir, err))
				saved = ""
			}
		}
		if err := unmount(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case saved != "":
			if err := os.Remove(dir); err == nil {
				errs = append(errs, os.Rename(saved, dir))
			}
		case !keep:
			os.Remove(dir) // the empty mount point of a data dir not kept
		}
	}
	f.mounted = nil
	return errors.Join(errs...)
}
