package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/status"
)

// valueSize is the size of every value the etcd driver puts, as in the issue's
// figures (etcd's benchmark put, 256-byte values).
const valueSize = 256

// etcdLoad is one closed-loop run against etcd, the same shape as `barberpro
// bench`: Clients workers, each with its own connection, each sending its next
// request when the last is answered, for Duration.
type etcdLoad struct {
	// Endpoints are member client URLs; worker w uses Endpoints[w%len] when
	// Spread, else Endpoints[0].
	Endpoints []string
	Spread    bool
	Clients   int
	Duration  time.Duration
	// Op is opPut (distinct keys) or opRange (a linearizable Get of the worker's
	// own existing key).
	Op string
}

// The operations of the etcd driver.
const (
	opPut   = "put"
	opRange = "range"
)

// run drives the load and measures throughput and latency of the successful
// requests; a request cut short by the end of the run is not counted. Keys carry
// a prefix unique to the run, so runs in one cluster never overwrite each other.
func (l etcdLoad) run(ctx context.Context) (Measure, error) {
	value := strings.Repeat("v", valueSize)
	prefix := fmt.Sprintf("anchor/%d", time.Now().UnixNano())
	clients := make([]*clientv3.Client, l.Clients)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	for w := range clients {
		ep := l.Endpoints[0]
		if l.Spread {
			ep = l.Endpoints[w%len(l.Endpoints)]
		}
		c, err := newEtcdClient(ep)
		if err != nil {
			return Measure{}, err
		}
		clients[w] = c
		if l.Op == opRange { // the key each worker reads
			if _, err := c.Put(ctx, fmt.Sprintf("%s/read/%d", prefix, w), value); err != nil {
				return Measure{}, fmt.Errorf("etcd: put the read key: %w", err)
			}
		}
	}

	var (
		mu    sync.Mutex
		lat   []time.Duration
		errs  int
		codes = map[string]int{}
		wg    sync.WaitGroup
	)
	runCtx, cancel := context.WithTimeout(ctx, l.Duration)
	defer cancel()
	start := time.Now()
	for w, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			failed := map[string]int{}
			readKey := fmt.Sprintf("%s/read/%d", prefix, w)
			for n := 0; runCtx.Err() == nil; n++ {
				t0 := time.Now()
				var err error
				if l.Op == opPut {
					_, err = c.Put(runCtx, fmt.Sprintf("%s/put/%d/%d", prefix, w, n), value)
				} else {
					_, err = c.Get(runCtx, readKey)
				}
				d := time.Since(t0)
				if err != nil {
					if runCtx.Err() == nil {
						failed[errCode(err)]++
					}
					continue
				}
				mine = append(mine, d)
			}
			mu.Lock()
			lat = append(lat, mine...)
			for c, n := range failed {
				codes[c] += n
				errs += n
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	m := summarize(lat, errs, time.Since(start))
	if len(codes) > 0 {
		m.Codes = codes
	}
	return m, nil
}

// errCode names an etcd client error for the report: its gRPC code, or its
// text (at most 60 bytes) when it has none.
func errCode(err error) string {
	if st, ok := status.FromError(err); ok {
		return st.Code().String()
	}
	s := err.Error()
	return s[:min(len(s), 60)]
}

// summarize makes the Measure of a run from its successful latencies, as
// `barberpro bench` does (simulations/load: throughput over the whole run,
// nearest-rank percentiles). It is not imported from there: that would bring the
// product's module, and its versions of etcd's dependencies, into this one.
func summarize(lat []time.Duration, errs int, elapsed time.Duration) Measure {
	slices.Sort(lat)
	m := Measure{OK: len(lat), Errors: errs}
	if elapsed > 0 {
		m.OpsPerSecond = float64(len(lat)) / elapsed.Seconds()
	}
	m.P50, m.P99 = percentile(lat, 0.50), percentile(lat, 0.99)
	return m
}

// percentile is the q-quantile (0..1) of sorted durations by nearest rank, 0 for none.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
