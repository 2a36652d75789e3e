package placement

import (
	"github.com/barberpro/edge/cluster/membership"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
)

// topologyChanged tells the placement actor the candidates changed.
type topologyChanged struct{ candidates []Candidate }

type activation struct {
	ci  *cluster.ClusterIdentity
	pid *actor.PID
}

// activator is the per-member placement actor: it activates identities on
// request and stops the ones this member no longer owns. Only it touches its
// map, so it needs no lock.
type activator struct {
	lookup   *Lookup
	c        *cluster.Cluster
	byKey    map[string]activation // live activations by identity key
	stopping map[string]activation // poisoned ones by PID, until Terminated
}

func newActivator(l *Lookup, c *cluster.Cluster) *activator {
	return &activator{lookup: l, c: c, byKey: map[string]activation{}, stopping: map[string]activation{}}
}

func (a *activator) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *cluster.ActivationRequest:
		a.activate(ctx, msg)
	case *topologyChanged:
		a.rebalance(ctx, msg.candidates)
	case *actor.Terminated:
		a.terminated(msg.Who)
	case *actor.Stopping:
		a.stopAll(ctx)
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
	// be newer. rebalance corrects it on our next topology change.
	pid := ctx.SpawnPrefix(cluster.WithClusterIdentity(kind.Props, ci), ci.Identity)
	kind.Inc()
	a.byKey[key] = activation{ci: ci, pid: pid}
	ctx.Respond(&cluster.ActivationResponse{Pid: pid})
}

func (a *activator) rebalance(ctx actor.Context, cands []Candidate) {
	self := a.c.ActorSystem.ID
	for key, act := range a.byKey {
		owner, err := Place(act.ci.Identity, act.ci.Kind, cands)
		if err == nil && owner.MemberID == self {
			continue
		}
		a.lookup.cfg.Logger.Debug("placement: activation moves away", "identity", act.ci.Identity, "kind", act.ci.Kind, "owner", owner.MemberID, "err", err)
		ctx.Poison(act.pid)
		delete(a.byKey, key)
		a.stopping[act.pid.String()] = act
	}
}

func (a *activator) terminated(pid *actor.PID) {
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
	// Every member drops the PID from its cache (see Lookup.Setup).
	a.c.MemberList.BroadcastEvent(&cluster.ActivationTerminated{Pid: pid, ClusterIdentity: act.ci}, true)
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
