package cluster_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
)

// Test_Leave_TwiceAtOnce: two leaves at once (an operator's direct call racing
// the HTTP leave) start one leave; the other returns ErrLeaving. Before, the
// second closed an already closed channel and the process panicked.
func Test_Leave_TwiceAtOnce(t *testing.T) {
	n := clustertest.MustStartNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Leave(ctx)
		}()
	}
	wg.Wait()
	leaving := 0
	for _, err := range errs {
		if errors.Is(err, cluster.ErrLeaving) {
			leaving++
		}
	}
	if leaving != 1 {
		t.Fatalf("two leaves at once: %v, want exactly one ErrLeaving", errs)
	}
}
