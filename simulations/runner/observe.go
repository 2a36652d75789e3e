package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/check"
	"github.com/barberpro/edge/simulations/procs"
	"github.com/barberpro/edge/simulations/traffic"
)

// observeClient asks the nodes for their views; short, so a paused or
// partitioned node does not hold a round up.
var observeClient = &http.Client{Timeout: 1500 * time.Millisecond}

// statusSampler asks every running node for GET /v1/cluster/status every
// interval and keeps the answers, for the fork check.
type statusSampler struct {
	nodes    []sampled
	token    string // the operator's
	interval time.Duration
	done     chan struct{}

	mu      sync.Mutex
	samples []check.StatusSample
}

// sampled is a node the sampler asks; its URL is read once, since faults
// rewrite a node's spec while the sampler runs (its address never changes).
type sampled struct {
	id, url string
	p       *procs.Proc
}

func newStatusSampler(cl *procs.Cluster, interval time.Duration) *statusSampler {
	s := &statusSampler{interval: interval, done: make(chan struct{}), token: cl.Secrets.Operator()}
	for _, p := range cl.Procs {
		s.nodes = append(s.nodes, sampled{id: p.Spec.ID, url: p.Spec.URL(), p: p})
	}
	return s
}

// run samples until ctx ends.
func (s *statusSampler) run(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		s.sampleAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// wait blocks until run has returned (or was never started).
func (s *statusSampler) wait() {
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
}

// sampleAll asks every running node once, in parallel.
func (s *statusSampler) sampleAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, n := range s.nodes {
		if !n.p.Running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, err := statusOf(ctx, n.url, s.token); err == nil {
				st.Observer = n.id
				s.mu.Lock()
				s.samples = append(s.samples, st)
				s.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// statusOf decodes a node's status answer into the checker's view of it, the
// fields issue 7 added included when the node has them.
func statusOf(ctx context.Context, base, token string) (check.StatusSample, error) {
	var st check.StatusSample
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/cluster/status", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := observeClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return st, fmt.Errorf("status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, err
	}
	st.At = time.Now()
	return st, nil
}

// all returns every sample so far.
func (s *statusSampler) all() []check.StatusSample {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]check.StatusSample(nil), s.samples...)
}

// writeFile writes the samples as JSON lines.
func (s *statusSampler) writeFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, st := range s.all() {
		if err := enc.Encode(st); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// askPlacement asks every running node of each hot provider's jurisdiction
// where the provider's calendar lives, and every node its calendar actor
// count. A round where the nodes disagree is asked again, for up to 3 s, so a
// topology change under way is not taken for a split; the last round counts.
func (r *run) askPlacement(ctx context.Context, hot []traffic.Provider) ([]check.PlacementSample, map[string]int) {
	var samples []check.PlacementSample
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 && !sleepUntil(ctx, time.Now().Add(time.Second)) {
			break
		}
		samples = samples[:0]
		for _, p := range hot {
			for _, id := range r.fc.Group(p.Jurisdiction) {
				pr := r.cl.ByID(id)
				if !pr.Running() {
					continue
				}
				s := check.PlacementSample{At: time.Now(), Observer: id, Provider: p.ID}
				pl, err := client.New(pr.Spec.URL(), observeClient).WithToken(r.cl.Secrets.Operator()).Placement(ctx, p.ID)
				if err != nil {
					s.Err = err.Error()
				} else {
					s.Node = pl.Node
				}
				samples = append(samples, s)
			}
		}
		if check.Placement(samples, nil).OK() {
			break
		}
	}
	hosting := map[string]int{}
	for _, pr := range r.cl.Procs {
		if !pr.Running() {
			continue
		}
		if n, err := calendarActors(ctx, pr.Spec.URL()); err == nil {
			hosting[pr.Spec.ID] = n
		}
	}
	var parts []string
	for _, s := range samples {
		if s.Err != "" {
			parts = append(parts, fmt.Sprintf("%s@%s=error", short(s.Provider), s.Observer))
		} else {
			parts = append(parts, fmt.Sprintf("%s@%s=%s", short(s.Provider), s.Observer, s.Node))
		}
	}
	r.logf("placement %v after the last heal: %s; calendar actors per node: %v",
		r.sc.Checks.PlacementAfter, strings.Join(parts, " "), hosting)
	return samples, hosting
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// calendarActors reads barberpro_calendar_actors_active from a node's /metrics.
func calendarActors(ctx context.Context, base string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := observeClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "barberpro_calendar_actors_active") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, err
		}
		return int(v), nil
	}
	return 0, errors.New("no barberpro_calendar_actors_active in /metrics")
}

// exits lists every end of every node process, each with the first panic line
// of its log.
func (r *run) exits() []check.Exit {
	var out []check.Exit
	for _, p := range r.cl.Procs {
		var panicLine string
		for _, e := range p.Exits() {
			ce := check.Exit{Node: e.Node, At: e.At, Started: e.Started, Err: e.Err, Expected: e.Expected, Log: p.LogPath}
			if !e.Expected {
				if panicLine == "" {
					panicLine = firstPanic(p.LogPath)
				}
				ce.Panic = panicLine
			}
			out = append(out, ce)
		}
	}
	return out
}

// firstPanic is the first line of a node log that starts a Go panic or fatal
// error, with the line after it (the panic's value often continues there).
func firstPanic(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
			if len(line) > 300 {
				line = line[:300] + "…"
			}
			return line
		}
	}
	return ""
}
