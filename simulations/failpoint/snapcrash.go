package failpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/barberpro/edge/simulations/procs"
)

// FailpointsEnv is the environment variable a barberpro built with the
// `failpoints` tag reads its failpoints from (storage.FailpointsEnv).
const FailpointsEnv = "BARBERPRO_FAILPOINTS"

// snapshotCrash is finding 2 of issue 7 as a schedule: a follower is killed, the
// cluster takes writes until the leader's log no longer covers what the
// follower lacks (so it must install a snapshot), and the follower is started
// again so as to die in the middle of that install; then it is started once
// more, normally. Correct code notices on open that its FSM is behind the
// snapshot Raft persisted and restores it before serving; the checks then find
// every replica equal and every acknowledged write present.
//
// How it dies (crash): "failpoint" starts it with the failpoints build and
// BARBERPRO_FAILPOINTS=snapshot-restore=crash (the process kills itself after
// Raft persisted the snapshot and the FSM wrote its copy, before the copy goes
// live); "kill" has the harness kill -9 it the moment Raft has persisted the
// snapshot (a new snapshot directory in its data dir), before the FSM restore
// is done; "auto" (default) uses the failpoint when the failpoints build
// exists and falls back to "kill" for a second round when the node does not
// die (a build without the hook, e.g. a release before it).
//
// Then (leader_change, default true) the leader is killed (kill -9) and
// restarted: the old leader would otherwise send the snapshot again, its last
// attempt having failed, and hide a follower that counts a snapshot as
// applied without having restored it; a new leader replicates from what the
// follower reports.
type snapshotCrash struct {
	target, group, crash string
	trailing             uint64
	pick                 uint64
	timeout              time.Duration
	leaderChange         bool

	node    string
	applied uint64 // the node's applied index when it was last killed
	steps   []string
}

func newSnapshotCrash(p Params, pick uint64) (Fault, error) {
	f := &snapshotCrash{target: param(p, "target", "follower"), group: param(p, "group", "ar"),
		crash: param(p, "crash", "auto"), pick: pick}
	switch f.crash {
	case "auto", "failpoint", "kill":
	default:
		return nil, fmt.Errorf("fault \"snapshot-crash\": crash %q (want auto, failpoint or kill)", f.crash)
	}
	var err error
	if _, err = fmt.Sscan(param(p, "trailing", "512"), &f.trailing); err != nil {
		return nil, fmt.Errorf("fault \"snapshot-crash\": trailing %q: want the nodes' TrailingLogs, a number", p["trailing"])
	}
	if f.timeout, err = time.ParseDuration(param(p, "timeout", "90s")); err != nil || f.timeout <= 0 {
		return nil, fmt.Errorf("fault \"snapshot-crash\": timeout %q: want a positive duration", p["timeout"])
	}
	switch param(p, "leader_change", "true") {
	case "true":
		f.leaderChange = true
	case "false":
	default:
		return nil, fmt.Errorf("fault \"snapshot-crash\": leader_change %q (want true or false)", p["leader_change"])
	}
	if f.target == "leader" || f.target == "us" {
		return nil, fmt.Errorf("fault \"snapshot-crash\": target %q: the node must be a follower of a group with others", f.target)
	}
	return f, checkTarget(f.target)
}

func (f *snapshotCrash) Name() string       { return "snapshot-crash" }
func (f *snapshotCrash) Available() error   { return nil }
func (f *snapshotCrash) Affected() []string { return []string{f.group} }
func (f *snapshotCrash) Describe() string   { return strings.Join(f.steps, "; ") }

// NeedsLoad tells the runner this fault books through Cluster.Load.
func (f *snapshotCrash) NeedsLoad() bool { return true }

func (f *snapshotCrash) step(c *Cluster, format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	f.steps = append(f.steps, s)
	c.logf("snapshot-crash: %s", s)
}

func (f *snapshotCrash) Inject(ctx context.Context, c *Cluster) error {
	if c.Load == nil {
		return errors.New("failpoint: snapshot-crash needs Cluster.Load")
	}
	id, err := c.Resolve(ctx, f.target, f.group, f.pick)
	if err != nil {
		return err
	}
	f.node, f.group = id, groupOf(c, id, f.group)
	mode := f.crash
	if mode == "auto" {
		mode = "kill"
		if c.FailpointBinary != "" {
			mode = "failpoint"
		}
	}
	for round := 1; round <= 2; round++ {
		crashed, err := f.round(ctx, c, mode)
		if err != nil {
			return err
		}
		if crashed {
			break
		}
		if f.crash != "auto" || mode == "kill" {
			return fmt.Errorf("failpoint: %s installed the snapshot without dying (%s)", id, mode)
		}
		f.step(c, "the failpoints build did not die at snapshot-restore (no hook in it?): again, with a kill -9 when the snapshot is persisted")
		mode = "kill"
	}
	// Start it again normally; with leader_change, the leader dies while it
	// starts, before it could send the snapshot again.
	p := c.procOf(id)
	restarted := make(chan error, 1)
	go func() { restarted <- c.Restart(ctx, id) }()
	if f.leaderChange {
		if !waitFor(ctx, 10*time.Second, p.Running) {
			return fmt.Errorf("failpoint: %s did not start", id)
		}
		sleepCtx(ctx, time.Second) // its Raft listener is up
		if err := f.changeLeader(ctx, c); err != nil {
			<-restarted
			return err
		}
	}
	if err := <-restarted; err != nil {
		return err
	}
	f.step(c, "%s ready (log %s)", id, p.LogPath)
	return nil
}

// changeLeader kills the group's leader (unless it is the fault's node), waits
// for another to lead, and restarts it.
func (f *snapshotCrash) changeLeader(ctx context.Context, c *Cluster) error {
	leader, err := c.WaitLeader(ctx, f.group, 10*time.Second)
	if err != nil {
		return err
	}
	if leader == f.node {
		f.step(c, "%s leads: no leader change", f.node)
		return nil
	}
	pl := c.procOf(leader)
	if err := pl.Kill(); err != nil && pl.Running() {
		return err
	}
	next := ""
	waitFor(ctx, 15*time.Second, func() bool {
		l, err := c.Leader(ctx, f.group)
		next = l
		return err == nil && l != leader
	})
	if err := c.Restart(ctx, leader); err != nil {
		return err
	}
	f.step(c, "while %s started, kill -9 leader %s (then %s led) and restart it", f.node, leader, next)
	return nil
}

// round kills the node, grows the log past it, and starts it so that it dies
// installing the snapshot; crashed false means it installed it and lives.
func (f *snapshotCrash) round(ctx context.Context, c *Cluster, mode string) (crashed bool, err error) {
	id := f.node
	p := c.procOf(id)
	if err := f.kill(ctx, c); err != nil {
		return false, err
	}
	applied := f.applied
	// Write until the leader has a snapshot whose index, less the trailing
	// logs it keeps, is past what the follower has: it must send a snapshot.
	deadline := time.Now().Add(f.timeout)
	booked := 0
	var leader string
	var snap uint64
	for {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, fmt.Errorf("failpoint: no snapshot past index %d+%d on the leader after %d bookings", applied, f.trailing, booked)
		}
		if leader, err = c.WaitLeader(ctx, f.group, 10*time.Second); err != nil {
			return false, err
		}
		if snap = latestSnapshotIndex(c.procOf(leader).Spec.DataDir); snap > applied+f.trailing+64 {
			break
		}
		n := c.Load(ctx, 200)
		booked += n
		li, _ := c.AppliedIndex(ctx, leader)
		c.logf("snapshot-crash: %d bookings so far; leader %s applied %d, its newest snapshot at %d (need one past %d)",
			booked, leader, li, snap, applied+f.trailing+64)
		if n == 0 {
			sleepCtx(ctx, 500*time.Millisecond)
		}
	}
	f.step(c, "kill -9 %s (applied %d); %d bookings until leader %s's snapshot at index %d compacted its log past it",
		id, applied, booked, leader, snap)

	before := map[string]bool{}
	for _, s := range snapshots(p.Spec.DataDir) {
		before[s.ID] = true
	}
	opts := procs.StartOptions{ExpectExit: true}
	if mode == "failpoint" {
		if c.FailpointBinary == "" {
			return false, errors.New("failpoint: crash=failpoint needs the failpoints build (make build-failpoints)")
		}
		if _, err := os.Stat(c.FailpointBinary); err != nil {
			return false, fmt.Errorf("failpoint: failpoints build: %w", err)
		}
		opts.Binary, opts.Env = c.FailpointBinary, []string{FailpointsEnv + "=snapshot-restore=crash"}
	}
	if err := p.StartWith(opts); err != nil {
		return false, err
	}
	exited := p.Exited()
	var persisted time.Time
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	limit := time.After(f.timeout)
	for {
		select {
		case <-exited:
			if !persisted.IsZero() && mode == "kill" {
				f.step(c, "restarted %s; kill -9 %v after Raft persisted the snapshot, before its FSM restore was done",
					id, time.Since(persisted).Round(time.Millisecond))
				return true, nil
			}
			if mode == "failpoint" {
				f.step(c, "restarted %s with %s=snapshot-restore=crash: it died installing the snapshot (%v)", id, FailpointsEnv, p.ExitErr())
				return true, nil
			}
			return false, fmt.Errorf("failpoint: %s exited before installing a snapshot: %v (log %s)", id, p.ExitErr(), p.LogPath)
		case <-limit:
			if len(snapshots(p.Spec.DataDir)) > len(before) {
				// Installed and alive: the failpoint did not fire.
				return false, f.kill(ctx, c)
			}
			p.Kill()
			return false, fmt.Errorf("failpoint: %s received no snapshot within %v", id, f.timeout)
		case <-ctx.Done():
			p.Kill()
			return false, ctx.Err()
		case <-tick.C:
			if !persisted.IsZero() {
				if mode == "failpoint" && time.Since(persisted) > 10*time.Second {
					// The restore is long done: the failpoint did not fire.
					return false, f.kill(ctx, c)
				}
				continue
			}
			for _, s := range snapshots(p.Spec.DataDir) {
				if !before[s.ID] {
					persisted = time.Now()
					if mode == "kill" {
						p.Kill()
					}
					break
				}
			}
		}
	}
}

// kill notes the node's applied index, if it runs, and kills it.
func (f *snapshotCrash) kill(ctx context.Context, c *Cluster) error {
	p := c.procOf(f.node)
	if !p.Running() {
		return nil
	}
	applied, err := c.AppliedIndex(ctx, f.node)
	if err != nil {
		return err
	}
	f.applied = applied
	if err := p.Kill(); err != nil && p.Running() {
		return err
	}
	return nil
}

func (f *snapshotCrash) Heal(ctx context.Context, c *Cluster) error {
	if f.node == "" {
		return nil
	}
	return c.Restart(ctx, f.node)
}
