package placement

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/barberpro/edge/cluster/membership"
)

// topologyChanged tells the placement actor the candidates changed.
type topologyChanged struct{ candidates []Candidate }

// staleCheck is the placement actor's periodic tick (LookupConfig.StaleCheck).
type staleCheck struct{}

// activationEnded tells the placement actor that an activation stopped
// somewhere in the cluster (an ActivationTerminated broadcast).
type activationEnded struct {
	ci  *cluster.ClusterIdentity
	pid *actor.PID
}

// Resync is what the placement actor sends a local activation when another
// activation of the same identity has stopped (on another member, after a
// partition healed or a handover): the two ran side by side, so the survivor's
// memory may lack what the other wrote. A grain that keeps state should re-read
// it from the store; one that keeps none may ignore it.
type Resync struct{}

type activation struct {
	ci    *cluster.ClusterIdentity
	pid   *actor.PID
	since time.Time // when it was activated
}

// activator is the per-member placement actor: it activates identities on
// request and stops the ones this member does not own: all of them that moved
// away when its topology changes, and every LookupConfig.StaleCheck those a
// requester with another view had it activate. Only it touches its maps, so it
// needs no lock.
type activator struct {
	lookup   *Lookup
	c        *cluster.Cluster
	byKey    map[string]activation // live activations by identity key
	stopping map[string]activation // poisoned ones by PID, until Terminated
	view     []Candidate           // the last topology it was told of
	hasView  bool
	tick     chan struct{} // closed to stop the stale-check ticker
}

func newActivator(l *Lookup, c *cluster.Cluster) *activator {
	return &activator{lookup: l, c: c, byKey: map[string]activation{}, stopping: map[string]activation{}}
}

func (a *activator) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.startTicker(ctx)
	case *cluster.ActivationRequest:
		a.activate(ctx, msg)
	case *topologyChanged:
		a.view, a.hasView = msg.candidates, true
		a.rebalance(ctx, msg.candidates, 0)
	case *staleCheck:
		if a.hasView {
			a.rebalance(ctx, a.view, a.lookup.cfg.StaleCheck)
		}
	case *activationEnded:
		if act, ok := a.byKey[msg.ci.AsKey()]; ok && !act.pid.Equal(msg.pid) {
			a.lookup.cfg.Logger.Debug("placement: another activation stopped; resyncing ours", "identity", msg.ci.Identity, "kind", msg.ci.Kind, "stopped", msg.pid.String())
			ctx.Send(act.pid, &Resync{})
		}
	case *actor.Terminated:
		a.terminated(ctx, msg.Who)
	case *actor.Restarting:
		a.stopTicker()
	case *actor.Stopping:
		a.stopTicker()
		a.stopAll(ctx)
	}
}

// startTicker sends the actor a staleCheck every LookupConfig.StaleCheck
// until stopTicker.
func (a *activator) startTicker(ctx actor.Context) {
	a.stopTicker()
	done := make(chan struct{})
	a.tick = done
	self, root, every := ctx.Self(), ctx.ActorSystem().Root, a.lookup.cfg.StaleCheck
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				root.Send(self, &staleCheck{})
			}
		}
	}()
}

func (a *activator) stopTicker() {
	if a.tick != nil {
		close(a.tick)
		a.tick = nil
	}
}

func (a *activator) activate(ctx actor.Context, req *cluster.ActivationRequest) {
	ci := req.ClusterIdentity
	if ci == nil {
		ctx.Respond(&cluster.ActivationResponse{Failed: true})
		return
	}
	key := ci.AsKey()
	if act, ok := a.byKey[key]; ok {
		ctx.Respond(&cluster.ActivationResponse{Pid: act.pid})
		return
	}
	kind, ok := a.c.TryGetClusterKind(ci.Kind)
	if !ok {
		// The requester's topology says we host a kind we do not: refuse rather
		// than run it where it was not registered.
		a.lookup.cfg.Logger.Error("placement: activation requested for a kind this node does not host", "identity", ci.Identity, "kind", ci.Kind)
		ctx.Respond(&cluster.ActivationResponse{Failed: true})
		return
	}
	// A node that withdrew its kinds (it is leaving the cluster) takes no new
	// activation, whatever an older view of the requester says: the requester
	// places the identity again.
	if d, ok := a.lookup.cfg.Directory.(interface{ LocalMeta() membership.Meta }); ok && (d.LocalMeta().Leaving || !d.LocalMeta().HasKind(ci.Kind)) {
		ctx.Respond(&cluster.ActivationResponse{Failed: true})
		return
	}
	// Activate even if our own view names another owner: the requester's view may
	// be newer. If it is older, rebalance stops the activation on our next
	// topology change or, failing one, the next stale check after StaleCheck.
	pid := ctx.SpawnPrefix(cluster.WithClusterIdentity(kind.Props, ci), ci.Identity)
	kind.Inc()
	a.byKey[key] = activation{ci: ci, pid: pid, since: time.Now()}
	ctx.Respond(&cluster.ActivationResponse{Pid: pid})
}

// rebalance stops the activations this member does not own under cands, except
// those younger than minAge.
func (a *activator) rebalance(ctx actor.Context, cands []Candidate, minAge time.Duration) {
	self := a.c.ActorSystem.ID
	now := time.Now()
	for key, act := range a.byKey {
		if minAge > 0 && now.Sub(act.since) < minAge {
			continue
		}
		owner, err := Place(act.ci.Identity, act.ci.Kind, cands)
		if err == nil && owner.MemberID == self {
			continue
		}
		a.lookup.cfg.Logger.Debug("placement: activation moves away", "identity", act.ci.Identity, "kind", act.ci.Kind, "owner", owner.MemberID, "err", err, "stale_check", minAge > 0)
		ctx.Poison(act.pid)
		delete(a.byKey, key)
		a.stopping[act.pid.String()] = act
	}
}

func (a *activator) terminated(ctx actor.Context, pid *actor.PID) {
	act, ok := a.stopping[pid.String()]
	if ok {
		delete(a.stopping, pid.String())
	} else {
		for key, live := range a.byKey {
			if live.pid.Equal(pid) {
				act, ok = live, true
				delete(a.byKey, key)
				break
			}
		}
	}
	if !ok {
		return
	}
	if kind, ok := a.c.TryGetClusterKind(act.ci.Kind); ok {
		kind.Dec()
	}
	// Every member drops the PID from its cache, and resyncs its own activation
	// of the identity if it has one (see Lookup.Setup). This is what
	// MemberList.BroadcastEvent does, over the lookup's candidates: that one
	// reads the member list without its lock, racing with the provider's
	// topology updates.
	ev := &cluster.ActivationTerminated{Pid: pid, ClusterIdentity: act.ci}
	for _, c := range a.lookup.Candidates() {
		ctx.Send(actor.NewPID(c.Address, "eventstream"), ev)
	}
}

// stopAll passivates every local activation, waiting a bounded time for each.
func (a *activator) stopAll(ctx actor.Context) {
	futures := make(map[string]*actor.Future, len(a.byKey))
	for key, act := range a.byKey {
		futures[key] = ctx.PoisonFuture(act.pid)
	}
	deadline := time.Now().Add(5 * time.Second)
	for key, f := range futures {
		if time.Now().After(deadline) {
			break
		}
		if err := f.Wait(); err != nil {
			a.lookup.cfg.Logger.Warn("placement: stopping activation", slog.String("identity", key), slog.Any("err", err))
		}
	}
}
