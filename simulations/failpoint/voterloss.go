package failpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/barberpro/edge/simulations/procs"
)

// wipeVoterKillLeader is finding 3 of issue 7 as a schedule: on a group of three
// voters A (leader), B and C, C's Raft traffic is cut while A and B commit
// writes W; then B is killed and its disk wiped, A is killed, C's Raft traffic
// comes back and B restarts empty. A node that keeps its vote after losing its
// disk lets C (without W) win an election with B's vote, and W is lost when A
// comes back. Correct code keeps the group without a leader until A (who has W)
// returns. A group of four voters is first brought to three by killing a fourth
// follower E and removing it from the group (POST
// /v1/cluster/members/E/remove), as an operator — or the group keeper after its
// dead-server timeout — would.
type wipeVoterKillLeader struct {
	group       string
	lag, window time.Duration
	pick        uint64

	leader, lagging, wiped, removed string
	rules                           []Rule
	restartErr                      chan error
	steps                           []string
}

func newWipeVoterKillLeader(p Params, pick uint64) (Fault, error) {
	f := &wipeVoterKillLeader{group: param(p, "group", "ar"), pick: pick}
	var err error
	if f.lag, err = time.ParseDuration(param(p, "lag", "4s")); err != nil || f.lag <= 0 {
		return nil, fmt.Errorf("fault \"wipe-voter-kill-leader\": lag %q: want a positive duration", p["lag"])
	}
	if f.window, err = time.ParseDuration(param(p, "window", "5s")); err != nil || f.window <= 0 {
		return nil, fmt.Errorf("fault \"wipe-voter-kill-leader\": window %q: want a positive duration", p["window"])
	}
	return f, nil
}

func (f *wipeVoterKillLeader) Name() string       { return "wipe-voter-kill-leader" }
func (f *wipeVoterKillLeader) Available() error   { return NewIPTables("").Available() }
func (f *wipeVoterKillLeader) Affected() []string { return []string{f.group} }
func (f *wipeVoterKillLeader) Describe() string   { return strings.Join(f.steps, "; ") }

func (f *wipeVoterKillLeader) step(c *Cluster, format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	f.steps = append(f.steps, s)
	c.logf("wipe-voter-kill-leader: %s", s)
}

// raftCut are the rules that cut node id's Raft traffic (both directions) from
// every other node of the group, leaving gossip and actor traffic alone.
func (c *Cluster) raftCut(id, group string) []Rule {
	var rules []Rule
	for _, o := range c.Group(group) {
		if o == id {
			continue
		}
		rules = append(rules,
			Rule{Src: c.ip(o), Dst: c.ip(id), DPort: procs.RaftPort},
			Rule{Src: c.ip(id), Dst: c.ip(o), DPort: procs.RaftPort})
	}
	return rules
}

// voters lists the members of group j in leader's Raft configuration that are
// voters (neither joining nor non-voters), as leader reports them.
func (c *Cluster) voters(ctx context.Context, leader, j string) ([]string, error) {
	g, err := c.groupStatus(ctx, leader, j)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range g.Members {
		if m.Role != "joining" && m.Role != "nonvoter" {
			out = append(out, m.ID)
		}
	}
	sort.Strings(out)
	return out, nil
}

// removeMember asks group j's leader to remove the (dead) node id from the
// group, as `barberpro cluster remove` does, and waits until the leader's
// configuration no longer lists it.
func (c *Cluster) removeMember(ctx context.Context, j, id string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		leader, err := c.WaitLeader(ctx, j, 10*time.Second)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = c.operator(c.procOf(leader)).Remove(rctx, id, false)
		cancel()
		if err == nil && waitFor(ctx, 5*time.Second, func() bool {
			vs, err := c.voters(ctx, leader, j)
			return err == nil && !slices.Contains(vs, id)
		}) {
			c.logf("%s removed from group %s by its leader %s", id, j, leader)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("failpoint: remove %s from group %s (leader %s): %v", id, j, leader, err)
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

func (f *wipeVoterKillLeader) Inject(ctx context.Context, c *Cluster) error {
	leader, err := c.WaitLeader(ctx, f.group, 10*time.Second)
	if err != nil {
		return err
	}
	voters, err := c.voters(ctx, leader, f.group)
	if err != nil {
		return err
	}
	var followers []string
	for _, id := range voters {
		if id != leader {
			followers = append(followers, id)
		}
	}
	if len(followers) < 2 || len(followers) > 3 {
		return fmt.Errorf("failpoint: wipe-voter-kill-leader needs a group of 3 or 4 voters; %s has %v", f.group, voters)
	}
	pick := f.pick
	if len(followers) == 3 {
		// Three voters first: remove a fourth, dead.
		f.removed = followers[pick%3]
		pick /= 3
		followers = slices.DeleteFunc(followers, func(id string) bool { return id == f.removed })
		if err := c.procOf(f.removed).Kill(); err != nil && c.procOf(f.removed).Running() {
			return err
		}
		if err := c.removeMember(ctx, f.group, f.removed); err != nil {
			return err
		}
		f.step(c, "kill -9 %s and removed it from the %s group (voters %s)", f.removed, f.group,
			strings.Join(slices.DeleteFunc(slices.Clone(voters), func(id string) bool { return id == f.removed }), ", "))
	}
	f.leader = leader
	f.lagging = followers[pick%2]
	f.wiped = followers[(pick+1)%2]

	// W: writes commit on the leader and the wiped-to-be voter only.
	f.rules = c.raftCut(f.lagging, f.group)
	if err := c.IPTables.Add(f.rules...); err != nil {
		f.rules = nil
		return err
	}
	f.step(c, "cut %s's Raft traffic for %v while %s (leader) and %s commit writes", f.lagging, f.lag, leader, f.wiped)
	if !sleepCtx(ctx, f.lag) {
		return ctx.Err()
	}
	// The wiped voter, then the leader.
	pw := c.procOf(f.wiped)
	if err := pw.Kill(); err != nil && pw.Running() {
		return err
	}
	if err := removeAll(pw.Spec.DataDir); err != nil {
		return err
	}
	pl := c.procOf(leader)
	if err := pl.Kill(); err != nil && pl.Running() {
		return err
	}
	f.step(c, "kill -9 %s and wiped its data dir; kill -9 %s (leader)", f.wiped, leader)
	if err := c.IPTables.Remove(f.rules...); err != nil {
		return err
	}
	f.rules = nil
	// The wiped voter comes back empty; do not wait for it to be ready: correct
	// code gives it nothing to be ready for until the leader returns.
	f.restartErr = make(chan error, 1)
	go func() { f.restartErr <- c.Restart(ctx, f.wiped) }()
	if !waitFor(ctx, 5*time.Second, pw.Running) {
		return fmt.Errorf("failpoint: %s did not start", f.wiped)
	}
	f.step(c, "restored %s's Raft traffic and restarted %s on an empty data dir", f.lagging, f.wiped)
	if !sleepCtx(ctx, f.window) {
		return ctx.Err()
	}
	f.step(c, "%v without %s: %s", f.window, leader, c.leaderLine(ctx, f.group, f.lagging, f.wiped))
	return nil
}

// leaderLine says who leads group j (and in which term) as the given nodes see
// it, for a fault's description.
func (c *Cluster) leaderLine(ctx context.Context, j string, ids ...string) string {
	var parts []string
	for _, id := range ids {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		g, err := c.groupStatus(sctx, id, j)
		cancel()
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s does not answer", id))
			continue
		}
		role := "not listed"
		var leaders []string
		for _, m := range g.Members {
			if m.ID == id {
				role = m.Role
			}
			if m.Role == "leader" {
				leaders = append(leaders, m.ID)
			}
		}
		switch len(leaders) {
		case 0:
			parts = append(parts, fmt.Sprintf("%s is %s and sees no leader (term %d)", id, role, g.Term))
		default:
			parts = append(parts, fmt.Sprintf("%s is %s and sees leader %s (term %d)", id, role, strings.Join(leaders, " and "), g.Term))
		}
	}
	return strings.Join(parts, ", ")
}

func (f *wipeVoterKillLeader) Heal(ctx context.Context, c *Cluster) error {
	var errs []error
	if len(f.rules) > 0 {
		if err := c.IPTables.Remove(f.rules...); err != nil {
			errs = append(errs, err)
		} else {
			f.rules = nil
		}
	}
	if f.leader != "" {
		if err := c.Restart(ctx, f.leader); err != nil {
			errs = append(errs, err)
		} else {
			f.step(c, "restarted %s", f.leader)
		}
		f.leader = ""
	}
	if f.restartErr != nil {
		select {
		case err := <-f.restartErr:
			if err != nil {
				errs = append(errs, err)
			}
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
		}
		f.restartErr = nil
	}
	if f.wiped != "" && !c.procOf(f.wiped).Running() {
		errs = append(errs, c.Restart(ctx, f.wiped))
	}
	if f.removed != "" {
		if err := c.Restart(ctx, f.removed); err != nil {
			errs = append(errs, err)
		} else {
			f.step(c, "restarted %s (removed earlier): it rejoins", f.removed)
		}
		f.removed = ""
	}
	return errors.Join(errs...)
}
