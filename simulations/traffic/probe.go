package traffic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/history"
)

// Client numbers of the operations that are not the workload's.
const (
	// ProbeClient records liveness probes.
	ProbeClient = -1
	// PreloadClient records preload bookings.
	PreloadClient = -2
)

// ProbeResult is how long a provider took to accept a booking after the probe
// began; OK false if it did not within the bound.
type ProbeResult struct {
	ProviderID string        `json:"provider_id"`
	OK         bool          `json:"ok"`
	After      time.Duration `json:"after_ns"`
	Attempts   int           `json:"attempts"`
}

// Probe books one probe slot of every provider, through the targets in turn,
// until each succeeds or bound passes. Every attempt is recorded (client
// ProbeClient); an unknown outcome is retried with the same key, a refusal moves
// to the next slot with a new key.
func Probe(ctx context.Context, rec *history.Recorder, tokens Tokens, targets []Target, ps []Provider, seed uint64, bound, timeout time.Duration) []ProbeResult {
	hc := client.New("", nil).HTTP
	out := make([]ProbeResult, len(ps))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := ps[i]
			res := ProbeResult{ProviderID: p.ID}
			slot := 0
			key := fmt.Sprintf("sim-%d-probe-%d-%d", seed, i, slot)
			if p.Vertical == "psychology" {
				// The probe client's consent, before its first booking there (not
				// a calendar operation: not recorded).
				grantConsent(ctx, tokens, hc, targets, i, fmt.Sprintf("sim-psy-%d-probe", seed), p.Jurisdiction, seed, timeout, func() bool { return time.Since(t0) < bound })
			}
			for a := 0; time.Since(t0) < bound && ctx.Err() == nil; a++ {
				start, end := p.Blocked(p.Probe.Add(time.Duration(slot) * time.Hour))
				tg := targets[(i+a)%len(targets)]
				cid := fmt.Sprintf("sim-%d-probe", seed)
				if p.Vertical == "psychology" {
					cid = fmt.Sprintf("sim-psy-%d-probe", seed)
				}
				o := recordedBook(ctx, rec, tokens, hc, tg, p, ProbeClient, cid, key, start, end, timeout)
				res.Attempts++
				if o == history.OK {
					res.OK, res.After = true, time.Since(t0)
					break
				}
				if o == history.Fail {
					slot++
					key = fmt.Sprintf("sim-%d-probe-%d-%d", seed, i, slot)
				}
				time.Sleep(100 * time.Millisecond)
			}
			out[i] = res
		}()
	}
	wg.Wait()
	return out
}

// Preload books n distinct 15-minute slots of provider p (no buffer) through the
// targets with workers concurrent clients, recording each booking (client
// PreloadClient) and retrying unknown outcomes with the same key. It returns how
// many were acknowledged.
func Preload(ctx context.Context, rec *history.Recorder, tokens Tokens, targets []Target, p Provider, n, workers int, seed uint64, timeout time.Duration) int {
	return PreloadFrom(ctx, rec, tokens, targets, p, 0, n, workers, seed, timeout)
}

// PreloadFrom is Preload of the n slots that follow the first first ones, so
// successive calls book distinct slots.
func PreloadFrom(ctx context.Context, rec *history.Recorder, tokens Tokens, targets []Target, p Provider, first, n, workers int, seed uint64, timeout time.Duration) int {
	var (
		mu   sync.Mutex
		next = first
		ok   int
		wg   sync.WaitGroup
	)
	n += first
	hc := client.New("", nil).HTTP
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				k := next
				next++
				mu.Unlock()
				if k >= n {
					return
				}
				start, end := p.Blocked(p.Window.Add(time.Duration(k) * 15 * time.Minute))
				key := fmt.Sprintf("sim-%d-preload-%d", seed, k)
				cid := fmt.Sprintf("sim-%d-preload", seed)
				for a := 0; a < 5 && ctx.Err() == nil; a++ {
					tg := targets[(w+a)%len(targets)]
					o := recordedBook(ctx, rec, tokens, hc, tg, p, PreloadClient, cid, key, start, end, timeout)
					if o == history.OK {
						mu.Lock()
						ok++
						mu.Unlock()
					}
					if o != history.Unknown {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	return ok
}

// recordedBook books [start, end) of p through tg with key, recording the
// attempt in rec, and returns its outcome.
func recordedBook(ctx context.Context, rec *history.Recorder, tokens Tokens, hc *http.Client, tg Target, p Provider, clientN int,
	cid, key string, start, end time.Time, timeout time.Duration) history.Outcome {
	id := rec.Invoke(history.Op{Client: clientN, Node: tg.Node, Kind: history.Book, ProviderID: p.ID, Vertical: p.Vertical,
		ClientID: cid, Start: start, End: end, IdempotencyKey: key})
	rctx, cancel := context.WithTimeout(ctx, timeout)
	rctx, wrote := traceWrites(rctx)
	b, err := clientAs(tokens, tg.URL, hc, auth.RoleClient, cid).Book(rctx, client.BookingRequest{ProviderID: p.ID, ServiceID: p.ServiceID,
		ClientID: cid, Start: start.In(p.Loc).Format(time.RFC3339)}, key)
	cancel()
	o, st, code := Classify(err, wrote.Load())
	rec.Complete(id, func(op *history.Op) {
		op.Outcome, op.Status, op.Code = o, st, code
		if err == nil {
			op.Status, op.BookingID = 201, b.ID
		}
	})
	return o
}

// grantConsent grants clientID's psychology consent in jurisdiction j through
// the targets (from the first-th on), one idempotent key for every try, while
// more() holds; it reports whether a node acknowledged it.
func grantConsent(ctx context.Context, tokens Tokens, hc *http.Client, targets []Target, first int, clientID, j string, seed uint64,
	timeout time.Duration, more func() bool) bool {
	req := client.ConsentRequest{Purpose: client.ConsentPurposePsychology, Jurisdiction: j, TextVersion: TextVersion}
	key := fmt.Sprintf("sim-%d-consent-%s-%s", seed, clientID, j)
	for a := 0; more() && ctx.Err() == nil; a++ {
		tg := targets[(first+a)%len(targets)]
		rctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := clientAs(tokens, tg.URL, hc, auth.RoleClient, clientID).GrantConsent(rctx, clientID, req, key)
		cancel()
		if err == nil {
			return true
		}
		var p *client.Problem
		if errors.As(err, &p) && p.Status < 500 && p.Code != "jurisdiction_unavailable" {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}
