package actors

import (
	"context"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/barberpro/edge/actors/internal/activation"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"google.golang.org/protobuf/proto"
)

// Props are the props of the calendar actor as a cluster grain: register them as
// the calendar kind (cluster.NewKind(kind, c.Props())). The grain's identity is
// the provider id; it loads its calendar on cluster.ClusterInit and stops itself
// after IdleTimeout idle (the cluster then activates it afresh on demand).
func (c *Calendars) Props() *actor.Props {
	cfg := &c.cfg
	return actor.PropsFromProducer(func() actor.Actor {
		a := newCalendarActor("", cfg, nil)
		a.grains = &c.grains
		return a
	})
}

// UseCluster routes requests through the actor cluster as grain requests of the
// given kind instead of the in-process directory. Call it before Start.
func (c *Calendars) UseCluster(cl *cluster.Cluster, kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cluster = &clusterRequester{cl: cl, kind: kind}
}

// clusterRequester sends requests to calendar grains through the actor cluster
// (its identity lookup places them; its retries resend on timeout).
type clusterRequester struct {
	cl   *cluster.Cluster
	kind string
}

var _ requester = (*clusterRequester)(nil)

// Request implements requester. A request that gets no answer (the grain's node
// died or handed the grain over mid-request, a timeout, a dead letter) is sent
// again, to wherever the identity lookup places the grain now, until ctx ends:
// every calendar request is safe to repeat (writes carry their booking id and
// idempotency key down to the store).
func (r *clusterRequester) Request(ctx context.Context, providerID string, msg proto.Message) (*calendarv1.Reply, error) {
	rep, err := activation.RequestGrain[*calendarv1.Reply](ctx, r.cl, r.kind, providerID, msg, calendarNames)
	if err != nil {
		return nil, err
	}
	return rep, replyError(rep, nil)
}

// grainCount counts calendar grains active in this process.
type grainCount = atomic.Int64
