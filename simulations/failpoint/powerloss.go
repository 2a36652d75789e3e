package failpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/barberpro/edge/simulations/lazyfs"
)

// powerLoss cuts the power of a group's leader and one follower mid-load:
// the group's data dirs are lazyfs mounts (package lazyfs: file data not yet
// fsynced lives only in the server's memory) from the start; at injection,
// with bookings in flight (the workload and Cluster.Load), both nodes are
// killed (kill -9), then each one's mount is cut (its server killed, so every
// write not fsynced is gone, and the mount with the kernel's page cache of it
// replaced by a fresh one over the same disk). Heal restarts both; the run's
// checks then find every acknowledged booking on every replica, or not.
type powerLoss struct {
	group     string
	pick      uint64
	load      time.Duration
	followers int // followers cut with the leader; -1: all

	disks map[string]*lazyfs.Process // node id → the server of its data dir's mount
	order []string                   // the node ids of disks, in layout order
	cut   []string
	desc  []string
}

// lazyFSCommand is the server process of a lazyfs of under at mountpoint:
// this barberpro, `sim lazyfs` (Serve).
var lazyFSCommand = func(under, mountpoint string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return exec.Command(exe, "sim", "lazyfs", "--under", under, "--mount", mountpoint), nil
}

// lazyFSReady bounds how long a lazyfs server may take to mount.
const lazyFSReady = 10 * time.Second

func newPowerLoss(p Params, pick uint64) (Fault, error) {
	f := &powerLoss{group: param(p, "group", "ar"), pick: pick}
	var err error
	if f.load, err = time.ParseDuration(param(p, "load", "2s")); err != nil || f.load < 0 {
		return nil, fmt.Errorf("fault \"power-loss\": load %q: want a duration", p["load"])
	}
	switch v := param(p, "followers", "1"); v {
	case "all":
		f.followers = -1
	default:
		if f.followers, err = strconv.Atoi(v); err != nil || f.followers < 1 {
			return nil, fmt.Errorf("fault \"power-loss\": followers %q: want a number of followers (1 or more) or all", v)
		}
	}
	if f.group == "us" {
		return nil, fmt.Errorf("fault \"power-loss\": group us has one node: it needs a leader and a follower")
	}
	return f, nil
}

func (f *powerLoss) Name() string { return "power-loss" }
func (f *powerLoss) Available() error {
	if err := lazyfs.Available(); err != nil {
		return fmt.Errorf("%w: %v", ErrSkip, err)
	}
	return nil
}
func (f *powerLoss) Affected() []string { return []string{f.group} }
func (f *powerLoss) Describe() string   { return strings.Join(f.desc, "; ") }

// NeedsLoad tells the runner this fault books through Cluster.Load.
func (f *powerLoss) NeedsLoad() bool { return true }

// disk is the directory under node id's data dir mount: its disk.
func disk(c *Cluster, id string) string { return c.procOf(id).Spec.DataDir + ".disk" }

// Prepare mounts a lazyfs over the data dir of every node of the group, after
// unmounting any an earlier run left there.
func (f *powerLoss) Prepare(ctx context.Context, c *Cluster) error {
	ids := c.Group(f.group)
	if len(ids) < 2 {
		return fmt.Errorf("failpoint: power-loss: group %q has %d node(s); it needs a leader and a follower", f.group, len(ids))
	}
	f.disks = map[string]*lazyfs.Process{}
	for _, id := range ids {
		dir := c.procOf(id).Spec.DataDir
		if lazyfs.Mounted(dir) {
			if err := lazyfs.Unmount(dir); err != nil {
				return err
			}
			c.logf("unmounted a lazyfs left by an earlier run: %s", dir)
		}
		for _, d := range []string{dir, disk(c, id)} {
			if err := os.MkdirAll(d, 0o750); err != nil {
				return err
			}
		}
		if err := f.mount(c, id); err != nil {
			return err
		}
		f.order = append(f.order, id)
		c.logf("power-loss: %s's data dir is a lazyfs over %s", id, disk(c, id))
	}
	return nil
}

// mount starts the lazyfs server of node id's data dir.
func (f *powerLoss) mount(c *Cluster, id string) error {
	dir := c.procOf(id).Spec.DataDir
	cmd, err := lazyFSCommand(disk(c, id), dir)
	if err != nil {
		return err
	}
	p, err := lazyfs.Start(cmd, dir, lazyFSReady)
	if err != nil {
		return err
	}
	f.disks[id] = p
	return nil
}

func (f *powerLoss) Inject(ctx context.Context, c *Cluster) error {
	if len(f.disks) == 0 {
		return errors.New("failpoint: power-loss: no lazyfs was mounted (Prepare did not run)")
	}
	leader, err := c.WaitLeader(ctx, f.group, 10*time.Second)
	if err != nil {
		return err
	}
	var followers []string
	for _, id := range c.Group(f.group) {
		if id != leader {
			followers = append(followers, id)
		}
	}
	n := f.followers
	if n < 0 || n > len(followers) {
		n = len(followers)
	}
	sort.Strings(followers)
	off := int(f.pick % uint64(len(followers)))
	followers = slices.Concat(followers[off:], followers[:off])[:n] // from the seeded pick on, as Resolve picks one
	cut := append([]string{leader}, followers...)
	// Book in the background, so that the cut comes with writes in flight.
	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	var booked int
	go func() {
		defer close(loadDone)
		for lctx.Err() == nil && c.Load != nil {
			if n := c.Load(lctx, 50); n > 0 {
				booked += n
			} else {
				sleepCtx(lctx, 100*time.Millisecond)
			}
		}
	}()
	defer func() { stopLoad(); <-loadDone }()
	sleepCtx(ctx, f.load)
	cutAt := time.Now()
	for _, id := range cut {
		if err := c.procOf(id).Kill(); err != nil && c.procOf(id).Running() {
			return err
		}
	}
	var lost []string
	for _, id := range cut {
		l, err := f.disks[id].Cut()
		if err != nil {
			return err
		}
		lost = append(lost, fmt.Sprintf("%s %v", id, l))
		f.cut = append(f.cut, id)
		if err := f.mount(c, id); err != nil {
			return err
		}
	}
	stopLoad()
	<-loadDone
	who := "follower " + followers[0]
	if len(followers) > 1 {
		who = "followers " + strings.Join(followers, ", ")
	}
	f.desc = append(f.desc, fmt.Sprintf("power cut of %s leader %s and %s after %v of background bookings (%d acknowledged before the cut was over): kill -9, then every write they had not fsynced dropped (%s) in %v",
		f.group, leader, who, f.load, booked, strings.Join(lost, ", "), time.Since(cutAt).Round(time.Millisecond)))
	c.logf("power-loss: %s", f.desc[len(f.desc)-1])
	return nil
}

// Heal restarts the nodes whose power was cut, together, and waits until
// both are ready.
func (f *powerLoss) Heal(ctx context.Context, c *Cluster) error {
	if len(f.cut) == 0 {
		return nil
	}
	errs := make([]error, len(f.cut))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, id := range f.cut {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.Restart(ctx, id) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	f.desc = append(f.desc, fmt.Sprintf("restarted %s, ready in %v", strings.Join(f.cut, " and "), time.Since(t0).Round(100*time.Millisecond)))
	f.cut = nil
	return nil
}

// Cleanup stops every lazyfs server (unsynced data is not written: the disk
// keeps what was fsynced) and unmounts it; with keep, each disk's files are
// moved to the data dir's path, else removed.
func (f *powerLoss) Cleanup(c *Cluster, keep bool) error {
	var errs []error
	for _, id := range f.order {
		dir, under := c.procOf(id).Spec.DataDir, disk(c, id)
		if err := f.disks[id].Stop(5 * time.Second); err != nil {
			errs = append(errs, err)
			continue
		}
		if keep {
			if err := os.Remove(dir); err == nil {
				errs = append(errs, os.Rename(under, dir))
			}
			continue
		}
		errs = append(errs, os.RemoveAll(under))
		os.Remove(dir) // the empty mount point of a data dir not kept
	}
	f.disks, f.order = nil, nil
	return errors.Join(errs...)
}
