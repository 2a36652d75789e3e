package failpoint

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// wipeFounder is finding 1 of issue 7: the node that founded a group loses its
// disk and is started again with the command it was first started with (the
// README's: the founding flag, no --join). Code that decides to found a group
// from an empty data dir and an empty gossip view founds a second group with
// the same name; correct code never founds a group that exists, and the node
// joins it. The old group removes the dead node first (remove), as an operator
// replacing its disk, or the group keeper after its dead-server timeout, would;
// and the node comes back isolated from every other node for a while
// (isolate: its network to them not up yet), so that it decides alone, as it
// does when the others are slow to find it, and what it then serves shows.
type wipeFounder struct {
	group   string
	remove  bool
	isolate time.Duration

	node  string
	rules []Rule
	steps []string
}

func newWipeFounder(p Params, _ uint64) (Fault, error) {
	f := &wipeFounder{group: param(p, "group", "ar")}
	switch param(p, "remove", "true") {
	case "true":
		f.remove = true
	case "false":
	default:
		return nil, fmt.Errorf("fault \"wipe-founder\": remove %q (want true or false)", p["remove"])
	}
	var err error
	if f.isolate, err = time.ParseDuration(param(p, "isolate", "5s")); err != nil || f.isolate < 0 {
		return nil, fmt.Errorf("fault \"wipe-founder\": isolate %q: want a duration (0: none)", p["isolate"])
	}
	return f, nil
}

func (f *wipeFounder) Name() string { return "wipe-founder" }
func (f *wipeFounder) Available() error {
	if f.isolate > 0 {
		return NewIPTables("").Available()
	}
	return nil
}
func (f *wipeFounder) Affected() []string { return []string{f.group} }
func (f *wipeFounder) Describe() string   { return strings.Join(f.steps, "; ") }

func (f *wipeFounder) step(c *Cluster, format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	f.steps = append(f.steps, s)
	c.logf("wipe-founder: %s", s)
}

func (f *wipeFounder) Inject(ctx context.Context, c *Cluster) error {
	id, err := c.Founder(f.group)
	if err != nil {
		return err
	}
	if len(c.Group(f.group)) < 2 {
		return fmt.Errorf("failpoint: wipe-founder: %s is the only node of %s", id, f.group)
	}
	f.node = id
	p := c.procOf(id)
	if err := p.Kill(); err != nil && p.Running() {
		return err
	}
	if err := removeAll(p.Spec.DataDir); err != nil {
		return err
	}
	f.step(c, "kill -9 %s (founder of %s), rm -rf %s", id, f.group, p.Spec.DataDir)
	if f.remove {
		if err := c.removeMember(ctx, f.group, id); err != nil {
			return err
		}
		f.step(c, "removed %s from the group", id)
	}
	return nil
}

func (f *wipeFounder) Heal(ctx context.Context, c *Cluster) error {
	if f.node == "" {
		return nil
	}
	var errs []error
	p := c.procOf(f.node)
	if !p.Running() {
		if f.isolate > 0 {
			f.rules = c.cut([]string{f.node}, c.others(f.node))
			if err := c.IPTables.Add(f.rules...); err != nil {
				f.rules = nil
				errs = append(errs, err)
			}
		}
		if err := c.startOriginal(f.node); err != nil {
			errs = append(errs, err)
		} else {
			f.step(c, "started %s with its original command (%s)", f.node, strings.Join(p.Spec.Args(), " "))
		}
		if len(f.rules) > 0 {
			sleepCtx(ctx, f.isolate)
			f.step(c, "after %v isolated from the other nodes: %s", f.isolate, c.leaderLine(ctx, f.group, f.node))
		}
	}
	if len(f.rules) > 0 {
		if err := c.IPTables.Remove(f.rules...); err != nil {
			errs = append(errs, err)
		} else {
			f.rules = nil
		}
	}
	if p.Running() {
		t0 := time.Now()
		if err := c.waitReady(ctx, f.node); err != nil {
			errs = append(errs, err)
		} else {
			f.step(c, "%s ready %v later: %s", f.node, time.Since(t0).Round(100*time.Millisecond), c.leaderLine(ctx, f.group, f.node))
		}
	}
	f.node = ""
	return errors.Join(errs...)
}
