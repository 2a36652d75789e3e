package check

import (
	"cmp"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/barberpro/edge/simulations/history"
)

// generate simulates a correct (linearizable, idempotent) booking service under
// concurrent clients and records its history: ops operations over providers
// providers, clients clients per provider. Every operation takes effect at one
// instant between its call and its return; some (about 6%) time out: the client
// gives up after 50 ms, and the operation takes effect or not (half each) at some
// instant up to 300 ms after its call, possibly after the client gave up. A timed
// out Book is usually retried with the same idempotency key; the service replays
// an applied key's booking id.
func generate(seed uint64, providers, ops, clients int) []history.Op {
	rng := rand.New(rand.NewPCG(seed, 1))
	var all []history.Op
	for p := range providers {
		all = append(all, generateProvider(rng, fmt.Sprintf("prov-%02d", p), p*clients, ops/providers, clients)...)
	}
	slices.SortStableFunc(all, func(a, b history.Op) int { return a.Call.Compare(b.Call) })
	for i := range all {
		all[i].ID = i
	}
	return all
}

type simEvent struct {
	at     int // ms since t0
	seq    int
	kind   int // 0 call, 1 take effect, 2 return
	client int
	op     int
}

type simQueue []simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	return cmp.Or(cmp.Compare(q[i].at, q[j].at), cmp.Compare(q[i].seq, q[j].seq)) < 0
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func generateProvider(rng *rand.Rand, provider string, firstClient, n, clients int) []history.Op {
	type booking struct {
		start, end int
		cancelled  bool
	}
	type rec struct {
		op      history.Op
		timeout bool
		applied bool // for a timeout: whether it takes effect
		res     history.Op
	}
	bookings := map[string]*booking{}
	idem := map[string]string{} // applied key → booking id
	var known []string          // booking ids acknowledged to some client
	var recs []*rec
	retry := make([]*history.Op, clients)
	var q simQueue
	seq := 0
	push := func(e simEvent) { seq++; e.seq = seq; heap.Push(&q, e) }
	for c := range clients {
		push(simEvent{at: rng.IntN(20), kind: 0, client: c})
	}
	nextKey, nextID := 0, 0
	overlaps := func(start, end int, except string) bool {
		for id, b := range bookings {
			if id != except && !b.cancelled && b.start < end && start < b.end {
				return true
			}
		}
		return false
	}
	for q.Len() > 0 {
		e := heap.Pop(&q).(simEvent)
		switch e.kind {
		case 0: // call
			if len(recs) >= n {
				continue
			}
			var op history.Op
			switch r := rng.IntN(100); {
			case retry[e.client] != nil:
				op = *retry[e.client]
				retry[e.client] = nil
			case r < 45 || len(known) == 0:
				start := rng.IntN(24) * 30
				nextKey++
				op = history.Op{Kind: history.Book, Start: m(start), End: m(start + 30*(1+rng.IntN(3))),
					IdempotencyKey: fmt.Sprintf("%s-k%d", provider, nextKey)}
			case r < 58:
				op = history.Op{Kind: history.Cancel, BookingID: known[rng.IntN(len(known))]}
			case r < 72:
				start := rng.IntN(24) * 30
				op = history.Op{Kind: history.Reschedule, BookingID: known[rng.IntN(len(known))],
					Start: m(start), End: m(start + 30*(1+rng.IntN(3)))}
			default:
				op = history.Op{Kind: history.Get, BookingID: known[rng.IntN(len(known))]}
			}
			op.ProviderID, op.Client, op.Call = provider, firstClient+e.client, at(e.at)
			r := &rec{op: op, timeout: rng.IntN(100) < 6}
			recs = append(recs, r)
			i := len(recs) - 1
			if r.timeout {
				r.applied = rng.IntN(2) == 0
				if r.applied {
					push(simEvent{at: e.at + 1 + rng.IntN(300), kind: 1, op: i})
				}
				push(simEvent{at: e.at + 50, kind: 2, client: e.client, op: i})
			} else {
				lin := e.at + 1 + rng.IntN(40)
				push(simEvent{at: lin, kind: 1, op: i})
				push(simEvent{at: lin + 1 + rng.IntN(40), kind: 2, client: e.client, op: i})
			}
		case 1: // take effect
			r := recs[e.op]
			res := r.op
			res.Outcome, res.Status = history.OK, 200
			start, end := int(res.Start.Sub(day)/time.Minute), int(res.End.Sub(day)/time.Minute)
			switch res.Kind {
			case history.Book:
				if id, ok := idem[res.IdempotencyKey]; ok {
					res.BookingID, res.Status = id, 201
				} else if overlaps(start, end, "") {
					res.Outcome, res.Status, res.Code = history.Fail, 409, codeSlotUnavailable
				} else {
					nextID++
					id := fmt.Sprintf("%s-b%d", provider, nextID)
					bookings[id] = &booking{start: start, end: end}
					idem[res.IdempotencyKey] = id
					res.BookingID, res.Status = id, 201
				}
			case history.Cancel:
				bookings[res.BookingID].cancelled = true
			case history.Reschedule:
				b := bookings[res.BookingID]
				switch {
				case b.cancelled:
					res.Outcome, res.Status, res.Code = history.Fail, 422, "validation_failed"
				case overlaps(start, end, res.BookingID):
					res.Outcome, res.Status, res.Code = history.Fail, 409, codeSlotUnavailable
				default:
					b.start, b.end = start, end
				}
			case history.Get:
				b := bookings[res.BookingID]
				res.ObservedStatus = "confirmed"
				if b.cancelled {
					res.ObservedStatus = StatusCancelled
				}
				res.ObservedStart, res.ObservedEnd = m(b.start), m(b.end)
			}
			r.res = res
		case 2: // return
			r := recs[e.op]
			if r.timeout {
				r.op.Outcome = history.Unknown
				if r.op.Kind == history.Book && rng.IntN(100) < 70 {
					again := r.op
					again.Outcome = ""
					retry[e.client] = &again
				}
			} else {
				r.op = r.res
				r.op.Return = at(e.at)
				if r.op.Kind == history.Book && r.op.Outcome == history.OK && !slices.Contains(known, r.op.BookingID) {
					known = append(known, r.op.BookingID)
				}
			}
			push(simEvent{at: e.at + rng.IntN(20), kind: 0, client: e.client})
		}
	}
	out := make([]history.Op, len(recs))
	for i, r := range recs {
		out[i] = r.op
	}
	return out
}

func TestLinearizableGenerated(t *testing.T) {
	ops := generate(1, 20, 2000, 4)
	counts := map[string]int{}
	for _, op := range ops {
		counts[string(op.Kind)+"/"+string(op.Outcome)]++
	}
	t.Logf("generated %d ops: %v", len(ops), counts)

	begin := time.Now()
	res := Linearizable(ops, 30*time.Second, "")
	elapsed := time.Since(begin)
	t.Logf("valid history: %d ops over %d providers checked in %v: %v", len(ops),
		res.Checked["linearizable.providers"], elapsed, res.Checked)
	if !res.Clean() {
		t.Fatalf("valid history judged: %v %v", res.Violations, res.Inconclusive)
	}
	if elapsed > 10*time.Second {
		t.Errorf("checking took %v", elapsed)
	}

	// The same history with one stale read of a booking nobody cancelled.
	bad := slices.Clone(ops)
	last := at(0)
	for _, op := range bad {
		if op.Return.After(last) {
			last = op.Return
		}
	}
	var victim history.Op
	for _, op := range bad {
		if op.Kind == history.Book && op.Outcome == history.OK && !slices.ContainsFunc(bad, func(o history.Op) bool {
			return o.Kind == history.Cancel && o.BookingID == op.BookingID
		}) {
			victim = op
			break
		}
	}
	if victim.BookingID == "" {
		t.Fatal("no booking to read")
	}
	stale := history.Op{ID: len(bad), Client: 999, Kind: history.Get, ProviderID: victim.ProviderID,
		BookingID: victim.BookingID, Call: last.Add(time.Millisecond), Return: last.Add(2 * time.Millisecond),
		Outcome: history.Fail, Status: 404, Code: codeNotFound}
	bad = append(bad, stale)
	begin = time.Now()
	res = Linearizable(bad, 30*time.Second, t.TempDir())
	t.Logf("history with a stale read checked in %v", time.Since(begin))
	if len(res.Violations) != 1 || !slices.Contains(res.Violations[0].Ops, stale.ID) ||
		!slices.Contains(res.Violations[0].Ops, victim.ID) {
		t.Fatalf("want one violation naming ops %d and %d, got %v (inconclusive %v)",
			victim.ID, stale.ID, res.Violations, res.Inconclusive)
	}
}

func TestLinearizableTimeoutIsInconclusive(t *testing.T) {
	ops := generate(2, 20, 2000, 4)
	res := Linearizable(ops, time.Nanosecond, "")
	if !res.OK() {
		t.Fatalf("a timeout must not be a violation: %v", res.Violations)
	}
	if len(res.Inconclusive) == 0 {
		t.Fatalf("want inconclusive partitions with a 1ns budget")
	}
	if res.Clean() {
		t.Fatal("an inconclusive result is not clean")
	}
}
