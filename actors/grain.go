package actors

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
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

// Request implements requester.
func (r *clusterRequester) Request(ctx context.Context, providerID string, msg proto.Message) (*calendarv1.Reply, error) {
	type result struct {
		v   any
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := r.cl.Request(providerID, r.kind, msg)
		ch <- result{v, err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: calendar of provider %s: %w", ErrUnavailable, providerID, ctx.Err())
	}
	if res.err != nil {
		return nil, fmt.Errorf("%w: calendar of provider %s: %w", ErrUnavailable, providerID, res.err)
	}
	switch v := res.v.(type) {
	case *calendarv1.Reply:
		return v, replyError(v, nil)
	case nil:
		return nil, fmt.Errorf("%w: calendar of provider %s gave no answer", ErrUnavailable, providerID)
	default:
		return nil, fmt.Errorf("%w: unexpected answer %T", ErrUnavailable, v)
	}
}

// grainCount counts calendar grains active in this process.
type grainCount = atomic.Int64
