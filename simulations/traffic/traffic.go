// Package traffic is the workload of a failover simulation: concurrent clients
// sending bookings, cancels, reschedules, reads and availability queries through
// every node, contending on a few hot providers' calendars, each recording every
// request in a history.Recorder before it is sent and after its answer. A client
// retries a write whose outcome it does not know with the same Idempotency-Key,
// as a real app would; each attempt is its own recorded operation.
package traffic

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/history"
)

// Target is a node the clients send requests to.
type Target struct {
	Node string
	URL  string
}

// Mix weighs the operation kinds. Series, Session and Notes act on psychology
// providers (see psychology.go); without any, they book.
type Mix struct{ Book, Cancel, Reschedule, Get, Availability, Series, Session, Notes int }

// Config is one workload.
type Config struct {
	// Targets are the nodes; client i sends to Targets[i%len], and its retries
	// to the next ones.
	Targets []Target
	// Providers are the hot providers.
	Providers []Provider
	// Clients is the number of concurrent clients.
	Clients     int
	Mix         Mix
	WindowSlots int
	ThinkTime   time.Duration
	// RequestTimeout bounds one attempt.
	RequestTimeout time.Duration
	// Retries of a write with an unknown outcome.
	Retries int
	// Seed and Rand: client i draws its choices from Rand(i+1).
	Seed uint64
	Rand func(stream uint64) *rand.Rand
	// Recorder receives every booking operation.
	Recorder *history.Recorder
	// Tokens gives each client its bearer token (subject: its client id).
	Tokens Tokens
	// NoteMarker is written into every session note; default one made from
	// Seed and random bytes.
	NoteMarker string
}

// Tokens issues the bearer tokens the traffic speaks with; *procs.Secrets
// satisfies it.
type Tokens interface {
	Token(role auth.Role, sub string) (string, error)
}

// traceWrites returns ctx with a trace that notes whether the request was
// written on any connection (see Classify).
func traceWrites(ctx context.Context) (context.Context, *atomic.Bool) {
	var wrote atomic.Bool
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	}), &wrote
}

// clientAs is a client of the node at url that speaks as sub in role. Without
// a token (Tokens failed) it sends none, and the node's 401 is recorded as the
// failure it is.
func clientAs(tokens Tokens, url string, hc *http.Client, role auth.Role, sub string) *client.Client {
	c := client.New(url, hc)
	if t, err := tokens.Token(role, sub); err == nil {
		c.Token = t
	}
	return c
}

// speaker is who sends op: the booking's client for writes; for a Get of any
// client's booking (the pool), the booking's provider, who may read its
// calendar's bookings.
func speaker(op history.Op) (auth.Role, string) {
	if op.Kind == history.Get {
		return auth.RoleProvider, op.ProviderID
	}
	return auth.RoleClient, op.ClientID
}

// Sample is one request of any kind (availability included), for the report's
// latency, throughput and error figures.
type Sample struct {
	Kind    string          `json:"kind"`
	Node    string          `json:"node"`
	Call    time.Time       `json:"call"`
	Return  time.Time       `json:"return"` // when the answer (or the error) came
	Outcome history.Outcome `json:"outcome"`
	Status  int             `json:"status,omitempty"`
	Code    string          `json:"code,omitempty"`
}

// Traffic runs a workload; its counters are safe to read while it runs.
type Traffic struct {
	cfg Config
	hc  *http.Client

	mu      sync.Mutex
	samples []Sample
	pool    []poolEntry // acknowledged bookings any client may read

	psy    psy
	marker string

	OK, Fail, Unknown atomic.Int64
	// NotesMismatch counts notes read back unlike what was written.
	NotesMismatch atomic.Int64
}

type poolEntry struct {
	id string
	p  *Provider
}

// New prepares a workload; Run starts it.
func New(cfg Config) *Traffic {
	tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 128, IdleConnTimeout: 30 * time.Second}
	t := &Traffic{cfg: cfg, hc: &http.Client{Transport: tr}, marker: cfg.NoteMarker}
	if t.marker == "" {
		var b [6]byte
		crand.Read(b[:])
		t.marker = fmt.Sprintf("SIMNOTE-%d-%x", cfg.Seed, b)
	}
	t.psy.granted = map[string]bool{}
	return t
}

// Samples returns every request so far.
func (t *Traffic) Samples() []Sample {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Sample(nil), t.samples...)
}

// Close releases idle connections.
func (t *Traffic) Close() { t.hc.Transport.(*http.Transport).CloseIdleConnections() }

// Run runs the clients until ctx ends.
func (t *Traffic) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range t.cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &worker{t: t, id: i, rng: t.cfg.Rand(uint64(i) + 1)}
			c.run(ctx)
		}()
	}
	wg.Wait()
}

// Classify turns a client error into an outcome, HTTP status and code: nil is
// OK; a 4xx, or a connection that could not be opened, is a definite Fail; a
// 5xx, a timeout or another transport error is Unknown (it may have taken effect).
func Classify(err error, wrote bool) (history.Outcome, int, string) {
	if err == nil {
		return history.OK, 0, ""
	}
	var p *client.Problem
	if errors.As(err, &p) {
		if p.Status >= 500 {
			return history.Unknown, p.Status, p.Code
		}
		return history.Fail, p.Status, p.Code
	}
	// A connection that was never established carried no request: no effect,
	// unless the request went out on an earlier connection (wrote): net/http
	// resends a request carrying an Idempotency-Key on a new connection when a
	// reused one fails after the write, and only the last error comes back.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" && !wrote {
		return history.Fail, 0, "unreachable"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return history.Unknown, 0, "timeout"
	}
	if errors.Is(err, context.Canceled) {
		return history.Unknown, 0, "canceled"
	}
	return history.Unknown, 0, "transport"
}

func (t *Traffic) sample(kind, node string, call time.Time, err error, wrote bool) {
	o, st, code := Classify(err, wrote)
	if code == "" && st == 0 && o == history.OK {
		st = 200
	}
	t.mu.Lock()
	t.samples = append(t.samples, Sample{Kind: kind, Node: node, Call: call, Return: time.Now(), Outcome: o, Status: st, Code: code})
	t.mu.Unlock()
	switch o {
	case history.OK:
		t.OK.Add(1)
	case history.Fail:
		t.Fail.Add(1)
	default:
		t.Unknown.Add(1)
	}
}

type own struct {
	id    string
	p     *Provider
	start time.Time
}

type worker struct {
	t    *Traffic
	id   int
	rng  *rand.Rand
	n    int
	mine []own
	// sessions are the worker's psychology bookings (single and series).
	sessions []session
}

func (w *worker) clientID(p *Provider) string {
	if p.Vertical == "psychology" {
		return fmt.Sprintf("sim-psy-%d-c%d", w.t.cfg.Seed, w.id)
	}
	return fmt.Sprintf("sim-%d-c%d", w.t.cfg.Seed, w.id)
}

func (w *worker) target(attempt int) Target {
	ts := w.t.cfg.Targets
	return ts[(w.id+attempt)%len(ts)]
}

func (w *worker) run(ctx context.Context) {
	m := w.t.cfg.Mix
	total := m.Book + m.Cancel + m.Reschedule + m.Get + m.Availability + m.Series + m.Session + m.Notes
	for ctx.Err() == nil {
		x := w.rng.IntN(total)
		switch {
		case x >= total-m.Notes:
			w.notes(ctx)
		case x >= total-m.Notes-m.Session:
			w.session(ctx)
		case x >= total-m.Notes-m.Session-m.Series:
			w.series(ctx)
		case x < m.Book:
			w.book(ctx)
		case x < m.Book+m.Cancel:
			w.cancel(ctx)
		case x < m.Book+m.Cancel+m.Reschedule:
			w.reschedule(ctx)
		case x < m.Book+m.Cancel+m.Reschedule+m.Get:
			w.get(ctx)
		default:
			w.availability(ctx)
		}
		if d := w.t.cfg.ThinkTime; d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d/2 + time.Duration(w.rng.Int64N(int64(d)))):
			}
		}
	}
}

// attempt runs one request with the request timeout, records it, and reports
// whether to retry (unknown outcome, ctx still live).
func (w *worker) attempt(ctx context.Context, op history.Op, kind string, a int,
	do func(ctx context.Context, c *client.Client) (*client.Booking, error)) (*client.Booking, history.Outcome) {
	tg := w.target(a)
	op.Node = tg.Node
	rec := w.t.cfg.Recorder
	id := rec.Invoke(op)
	call := time.Now()
	rctx, cancel := context.WithTimeout(ctx, w.t.cfg.RequestTimeout)
	rctx, wrote := traceWrites(rctx)
	role, sub := speaker(op)
	b, err := do(rctx, clientAs(w.t.cfg.Tokens, tg.URL, w.t.hc, role, sub))
	cancel()
	o, st, code := Classify(err, wrote.Load())
	rec.Complete(id, func(op *history.Op) {
		op.Outcome, op.Status, op.Code = o, st, code
		if err == nil {
			op.Status = 200
			if op.Kind == history.Book {
				op.BookingID = b.ID
				op.Status = 201
			}
			if op.Kind == history.Get {
				observe(op, b, w.t.cfg.Providers)
			}
		}
	})
	w.t.sample(kind, tg.Node, call, err, wrote.Load())
	return b, o
}

// write runs a write with retries on unknown outcomes (same key, next nodes).
func (w *worker) write(ctx context.Context, op history.Op, do func(ctx context.Context, c *client.Client) (*client.Booking, error)) (*client.Booking, history.Outcome) {
	var b *client.Booking
	var o history.Outcome
	for a := 0; a <= w.t.cfg.Retries; a++ {
		if ctx.Err() != nil {
			return nil, history.Unknown
		}
		b, o = w.attempt(ctx, op, string(op.Kind), a, do)
		if o != history.Unknown {
			return b, o
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50*(a+1)) * time.Millisecond):
		}
	}
	return b, o
}

func (w *worker) book(ctx context.Context) {
	ps := w.t.cfg.Providers
	p := &ps[w.rng.IntN(len(ps))]
	start, end := p.Blocked(p.Slot(w.rng.IntN(w.t.cfg.WindowSlots)))
	w.n++
	key := fmt.Sprintf("sim-%d-c%d-%d", w.t.cfg.Seed, w.id, w.n)
	op := history.Op{Client: w.id, Kind: history.Book, ProviderID: p.ID, Vertical: p.Vertical,
		ClientID: w.clientID(p), Start: start, End: end, IdempotencyKey: key}
	req := client.BookingRequest{ProviderID: p.ID, ServiceID: p.ServiceID, ClientID: op.ClientID, Start: start.In(p.Loc).Format(time.RFC3339)}
	if p.Vertical == "psychology" {
		// Consent first, as the app asks for it; a refusal of the booking
		// without one (422) is still a definite failure of the history.
		w.t.ensureConsent(ctx, w.id, op.ClientID, p.Jurisdiction)
	}
	b, o := w.write(ctx, op, func(ctx context.Context, c *client.Client) (*client.Booking, error) { return c.Book(ctx, req, key) })
	if o == history.OK {
		w.mine = append(w.mine, own{id: b.ID, p: p, start: start})
		if p.Vertical == "psychology" {
			w.sessions = append(w.sessions, session{id: b.ID, p: p})
		}
		w.t.mu.Lock()
		w.t.pool = append(w.t.pool, poolEntry{b.ID, p})
		if len(w.t.pool) > 256 {
			w.t.pool = w.t.pool[len(w.t.pool)-256:]
		}
		w.t.mu.Unlock()
	}
}

func (w *worker) cancel(ctx context.Context) {
	if len(w.mine) == 0 {
		w.book(ctx)
		return
	}
	i := w.rng.IntN(len(w.mine))
	b := w.mine[i]
	op := history.Op{Client: w.id, Kind: history.Cancel, ProviderID: b.p.ID, Vertical: b.p.Vertical,
		ClientID: w.clientID(b.p), BookingID: b.id}
	_, o := w.write(ctx, op, func(ctx context.Context, c *client.Client) (*client.Booking, error) { return c.Cancel(ctx, b.id) })
	if o != history.Unknown { // cancelled, or refused for good: no longer ours to move
		w.mine = append(w.mine[:i], w.mine[i+1:]...)
		w.sessions = slices.DeleteFunc(w.sessions, func(s session) bool { return s.id == b.id })
	}
}

func (w *worker) reschedule(ctx context.Context) {
	if len(w.mine) == 0 {
		w.book(ctx)
		return
	}
	i := w.rng.IntN(len(w.mine))
	b := w.mine[i]
	start, end := b.p.Blocked(b.p.Slot(w.rng.IntN(w.t.cfg.WindowSlots)))
	w.n++
	key := fmt.Sprintf("sim-%d-c%d-%d", w.t.cfg.Seed, w.id, w.n)
	op := history.Op{Client: w.id, Kind: history.Reschedule, ProviderID: b.p.ID, Vertical: b.p.Vertical,
		ClientID: w.clientID(b.p), BookingID: b.id, Start: start, End: end, IdempotencyKey: key}
	s := start.In(b.p.Loc).Format(time.RFC3339)
	_, o := w.write(ctx, op, func(ctx context.Context, c *client.Client) (*client.Booking, error) {
		return c.Reschedule(ctx, b.id, s, key)
	})
	if o == history.OK {
		w.mine[i].start = start
	}
}

func (w *worker) get(ctx context.Context) {
	w.t.mu.Lock()
	var e poolEntry
	if len(w.t.pool) > 0 {
		e = w.t.pool[w.rng.IntN(len(w.t.pool))]
	}
	w.t.mu.Unlock()
	if e.p == nil {
		w.availability(ctx)
		return
	}
	op := history.Op{Client: w.id, Kind: history.Get, ProviderID: e.p.ID, Vertical: e.p.Vertical, BookingID: e.id}
	w.attempt(ctx, op, "get", 0, func(ctx context.Context, c *client.Client) (*client.Booking, error) {
		return c.Booking(ctx, e.id)
	})
}

// observe fills a Get's observed status and interval (End as blocked: the
// service's end plus the provider's buffer).
func observe(op *history.Op, b *client.Booking, ps []Provider) {
	op.ObservedStatus = b.Status
	var buffer time.Duration
	for _, p := range ps {
		if p.ID == op.ProviderID {
			buffer = p.Buffer
		}
	}
	if s, err := time.Parse(time.RFC3339, b.Start); err == nil {
		op.ObservedStart = s
	}
	if e, err := time.Parse(time.RFC3339, b.End); err == nil {
		op.ObservedEnd = e.Add(buffer)
	}
}

func (w *worker) availability(ctx context.Context) {
	ps := w.t.cfg.Providers
	p := ps[w.rng.IntN(len(ps))]
	tg := w.target(0)
	call := time.Now()
	rctx, cancel := context.WithTimeout(ctx, w.t.cfg.RequestTimeout)
	rctx, wrote := traceWrites(rctx)
	_, err := client.New(tg.URL, w.t.hc).Availability(rctx, p.ID, p.ServiceID, p.Window.Format(time.DateOnly), 1)
	cancel()
	if ctx.Err() != nil {
		return
	}
	w.t.sample("availability", tg.Node, call, err, wrote.Load())
}
