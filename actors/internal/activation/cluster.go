package activation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
)

// RequestGrain sends msg to the grain of kind with identity key through the
// actor cluster and returns its answer, which must be an R. A request that gets
// no answer (the grain's node died or handed the grain over mid-request, a
// timeout, a dead letter) is sent again, to wherever the identity lookup places
// the grain now, until ctx ends: msg must be safe to repeat. Errors wrap
// n.Unavailable.
func RequestGrain[R any](ctx context.Context, cl *cluster.Cluster, kind, key string, msg any, n Names) (R, error) {
	type result struct {
		v   any
		err error
	}
	var zero R
	var last error
	Stamp(ctx, msg) // the request msg serves, for the grain's log lines
	for attempt := 0; ; attempt++ {
		ch := make(chan result, 1)
		go func() {
			v, err := cl.Request(key, kind, msg)
			ch <- result{v, err}
		}()
		var res result
		select {
		case res = <-ch:
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return zero, fmt.Errorf("%w: %s: %w", n.Unavailable, n.Describe(key), last)
		}
		switch v := res.v.(type) {
		case nil:
		case R:
			if res.err == nil {
				return v, nil
			}
		default:
			return zero, fmt.Errorf("%w: unexpected answer %T", n.Unavailable, v)
		}
		last = res.err
		if last == nil {
			last = errors.New("no answer")
		}
		select {
		case <-ctx.Done():
			return zero, fmt.Errorf("%w: %s: %w", n.Unavailable, n.Describe(key), last)
		case <-time.After(min(time.Duration(attempt+1)*20*time.Millisecond, 200*time.Millisecond)):
		}
	}
}
