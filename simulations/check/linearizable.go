package check

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/barberpro/edge/simulations/history"
)

// Problem codes of the API that carry an observation (see edge/problem.go).
const (
	codeSlotUnavailable         = "slot_unavailable"
	codeNotFound                = "not_found"
	codeJurisdictionUnavailable = "jurisdiction_unavailable"
)

// never is the return time of an operation whose answer never came: porcupine
// may then linearize it anywhere after its call, including after every other
// operation, which is the same as "it never took effect".
const never int64 = math.MaxInt64

// Linearizable checks each provider's calendar for linearizability with porcupine,
// against a sequential model of one calendar (see calendarModel). Each provider is
// one partition, checked with its own timeout; a timeout is reported in
// Inconclusive, not as a pass or a violation. For every partition found not
// linearizable, porcupine's HTML rendering of the history and of its longest
// partial linearizations is written to htmlDir (when non-empty) as
// linearizability-<provider>.html.
//
// How the history becomes porcupine operations:
//   - An operation's provider is the provider of the booking it acts on (from the
//     acknowledged Book that created it), else its ProviderID.
//   - Outcomes: OK takes effect; Unknown, and any Fail with a 5xx status or code
//     jurisdiction_unavailable, may have: return at infinity. A Fail with code
//     slot_unavailable (409) or not_found (404) is an observation with no effect;
//     any other 4xx has no effect and observes nothing, so it is left out (counted
//     as linearizable.no_effect). A Get without an answer is left out too.
//   - Attempts of one request (same provider, kind and IdempotencyKey) that took or
//     may have taken effect are one logical operation: invoked at the first
//     attempt's call, returning at the first OK attempt's return (at infinity when
//     none is OK). A definite refusal among them stays its own observation, with
//     its window widened back to the first attempt's call (the server may replay
//     a stored answer). Disagreeing OK answers, or a refusal of a retry invoked
//     after the request was acknowledged, are "idempotency" violations.
//   - A Cancel, Reschedule or Get of a booking id that no acknowledged Book
//     returned cannot be tied to a booking in the model: left out, counted as
//     linearizable.orphan.
func Linearizable(ops []history.Op, timeout time.Duration, htmlDir string) Result {
	var res Result
	parts, order := buildPartitions(ops, &res)
	res.count("linearizable.providers", len(order))

	type outcome struct {
		violations, inconclusive []Violation
	}
	outcomes := make([]outcome, len(order))
	workers := min(runtime.GOMAXPROCS(0), len(order))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				v, u := checkPartition(parts[order[i]], timeout, htmlDir)
				outcomes[i] = outcome{v, u}
			}
		})
	}
	for i := range order {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, o := range outcomes {
		res.Violations = append(res.Violations, o.violations...)
		res.Inconclusive = append(res.Inconclusive, o.inconclusive...)
	}
	return res
}

// The model's operation kinds and outcomes.
type calKind uint8

const (
	kBook calKind = iota
	kCancel
	kReschedule
	kGet
)

type outKind uint8

const (
	outOK outKind = iota
	outConflict
	outNotFound
	outUnknown
)

// calInput is a porcupine input: one request against a calendar. id is the
// booking's index in the partition's id table (for a Book, the booking it
// created: the acknowledged id, or a fresh synthetic one when no attempt was
// acknowledged, since nothing else can refer to it).
type calInput struct {
	kind       calKind
	id         int32
	start, end int64 // Book, Reschedule: the blocked interval, unix ns
}

// calOutput is a porcupine output. For an OK Get, the observed booking:
// cancelled, and start/end (0 when not observed).
type calOutput struct {
	kind       outKind
	cancelled  bool
	start, end int64
}

// slot is one booking in the model's state.
type slot struct {
	id         int32
	cancelled  bool
	start, end int64
}

// calState is the model's state: the calendar's bookings sorted by id. It is
// never modified in place: steps copy on write.
type calState []slot

func (s calState) find(id int32) (int, bool) {
	return slices.BinarySearchFunc(s, id, func(b slot, id int32) int { return cmp.Compare(b.id, id) })
}

// overlaps reports whether [start, end) overlaps a non-cancelled booking other
// than except. Intervals are half-open: touching is fine.
func (s calState) overlaps(start, end int64, except int32) bool {
	for _, b := range s {
		if !b.cancelled && b.id != except && b.start < end && start < b.end {
			return true
		}
	}
	return false
}

func (s calState) insert(at int, b slot) calState {
	out := make(calState, 0, len(s)+1)
	out = append(out, s[:at]...)
	out = append(out, b)
	return append(out, s[at:]...)
}

func (s calState) replace(at int, b slot) calState {
	out := slices.Clone(s)
	out[at] = b
	return out
}

// step is the sequential specification of one provider's calendar. Operations
// with an unknown outcome are deterministic: they take effect if they could at
// the point porcupine places them. "Never took effect" needs no second branch:
// with a return at infinity, porcupine may place the operation after every other,
// where its effect is seen by nothing.
func step(s calState, in calInput, out calOutput) (bool, calState) {
	i, found := s.find(in.id)
	switch in.kind {
	case kBook:
		free := !found && !s.overlaps(in.start, in.end, -1)
		switch out.kind {
		case outOK:
			if !free {
				return false, s
			}
			return true, s.insert(i, slot{id: in.id, start: in.start, end: in.end})
		case outConflict:
			return s.overlaps(in.start, in.end, -1), s
		case outUnknown:
			if free {
				return true, s.insert(i, slot{id: in.id, start: in.start, end: in.end})
			}
			return true, s
		}
	case kCancel:
		switch out.kind {
		case outOK, outUnknown:
			if !found {
				return out.kind == outUnknown, s
			}
			if s[i].cancelled {
				return true, s // cancelling again is OK
			}
			b := s[i]
			b.cancelled = true
			return true, s.replace(i, b)
		case outNotFound:
			return !found, s
		}
	case kReschedule:
		movable := found && !s[i].cancelled && !s.overlaps(in.start, in.end, in.id)
		switch out.kind {
		case outOK, outUnknown:
			if !movable {
				return out.kind == outUnknown, s
			}
			b := s[i]
			b.start, b.end = in.start, in.end
			return true, s.replace(i, b)
		case outConflict:
			return found && s.overlaps(in.start, in.end, in.id), s
		case outNotFound:
			return !found, s
		}
	case kGet:
		switch out.kind {
		case outOK:
			if !found {
				return false, s
			}
			b := s[i]
			return b.cancelled == out.cancelled &&
				(out.start == 0 || out.start == b.start) &&
				(out.end == 0 || out.end == b.end), s
		case outNotFound:
			return !found, s
		}
	}
	return false, s
}

// calendarModel is the porcupine model of one provider's calendar; names maps
// the partition's booking indexes back to ids for the descriptions.
func calendarModel(names []string) porcupine.Model {
	name := func(id int32) string {
		if id >= 0 && int(id) < len(names) {
			return names[id]
		}
		return fmt.Sprintf("#%d", id)
	}
	return porcupine.Model{
		Init: func() any { return calState(nil) },
		Step: func(state, input, output any) (bool, any) {
			return step(state.(calState), input.(calInput), output.(calOutput))
		},
		Equal: func(a, b any) bool { return slices.Equal(a.(calState), b.(calState)) },
		Hash: func(state any) uint64 {
			const prime = 1099511628211
			h := uint64(14695981039346656037)
			mix := func(v uint64) { h = (h ^ v) * prime }
			for _, b := range state.(calState) {
				mix(uint64(b.id))
				mix(uint64(b.start))
				mix(uint64(b.end))
				if b.cancelled {
					mix(1)
				}
			}
			return h
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(calInput), output.(calOutput)
			var req string
			switch in.kind {
			case kBook:
				req = fmt.Sprintf("book %s", span(in.start, in.end))
			case kCancel:
				req = fmt.Sprintf("cancel %s", name(in.id))
			case kReschedule:
				req = fmt.Sprintf("reschedule %s to %s", name(in.id), span(in.start, in.end))
			case kGet:
				req = fmt.Sprintf("get %s", name(in.id))
			}
			var ans string
			switch out.kind {
			case outOK:
				switch in.kind {
				case kBook:
					ans = "ok " + name(in.id)
				case kGet:
					status := "confirmed"
					if out.cancelled {
						status = "cancelled"
					}
					ans = status
					if out.start != 0 || out.end != 0 {
						ans += " " + span(out.start, out.end)
					}
				default:
					ans = "ok"
				}
			case outConflict:
				ans = codeSlotUnavailable
			case outNotFound:
				ans = codeNotFound
			case outUnknown:
				ans = "unknown"
			}
			return req + " → " + ans
		},
		DescribeState: func(state any) string {
			s := state.(calState)
			parts := make([]string, 0, len(s))
			for _, b := range s {
				p := name(b.id) + " " + span(b.start, b.end)
				if b.cancelled {
					p += " cancelled"
				}
				parts = append(parts, p)
			}
			return "{" + strings.Join(parts, ", ") + "}"
		},
		DescribeOperationMetadata: func(info any) string {
			if ids, ok := info.([]int); ok {
				return "history ops " + joinInts(ids)
			}
			return ""
		},
	}
}

func span(start, end int64) string {
	if start == 0 && end == 0 {
		return "[?]"
	}
	s, e := time.Unix(0, start).UTC(), time.Unix(0, end).UTC()
	if s.YearDay() == e.YearDay() && s.Year() == e.Year() {
		return fmt.Sprintf("[%s, %s)", s.Format("01-02 15:04"), e.Format("15:04"))
	}
	return fmt.Sprintf("[%s, %s)", s.Format("01-02 15:04"), e.Format("01-02 15:04"))
}

// logical is one porcupine operation built from one or more history ops.
type logical struct {
	hist      []int // history op ids, ascending
	client    int
	call, ret int64
	in        calInput
	out       calOutput
}

// partition is one provider's logical operations and booking id table.
type partition struct {
	provider string
	ops      []logical
	names    []string
}

func (p *partition) intern(ids map[string]int32, id string) int32 {
	if n, ok := ids[id]; ok {
		return n
	}
	n := int32(len(p.names))
	p.names = append(p.names, id)
	ids[id] = n
	return n
}

// effectiveOutcome folds definite answers that are not definite into Unknown: a
// 5xx or a jurisdiction_unavailable may have taken effect.
func effectiveOutcome(op history.Op) history.Outcome {
	if op.Outcome == history.Fail && (op.Status >= 500 || op.Code == codeJurisdictionUnavailable) {
		return history.Unknown
	}
	return op.Outcome
}

// observation says what a definite refusal observed: conflict, not found, or
// nothing (ok=false: no effect, no observation).
func observation(op history.Op) (outKind, bool) {
	switch {
	case op.Code == codeSlotUnavailable || (op.Code == "" && op.Status == 409):
		if op.Kind == history.Book || op.Kind == history.Reschedule {
			return outConflict, true
		}
	case op.Code == codeNotFound || (op.Code == "" && op.Status == 404):
		if op.Kind != history.Book { // a Book's 404 is about the provider
			return outNotFound, true
		}
	}
	return 0, false
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// buildPartitions turns the history into one partition per provider, sorted by
// provider; idempotency violations and counts go to res.
func buildPartitions(ops []history.Op, res *Result) (map[string]*partition, []string) {
	res.count("linearizable.ops", len(ops))
	owner := map[string]string{} // booking id → provider, from acknowledged Books
	for _, op := range ops {
		if op.Kind == history.Book && effectiveOutcome(op) == history.OK && op.BookingID != "" {
			if _, ok := owner[op.BookingID]; !ok {
				owner[op.BookingID] = op.ProviderID
			}
		}
	}
	parts := map[string]*partition{}
	idTables := map[string]map[string]int32{}
	part := func(provider string) (*partition, map[string]int32) {
		p, ok := parts[provider]
		if !ok {
			p = &partition{provider: provider}
			parts[provider] = p
			idTables[provider] = map[string]int32{}
		}
		return p, idTables[provider]
	}

	type groupKey struct {
		provider string
		kind     history.Kind
		key      string
	}
	groups := map[groupKey][]history.Op{}
	var groupOrder []groupKey
	for _, op := range ops {
		provider := op.ProviderID
		switch op.Kind {
		case history.Book:
		case history.Cancel, history.Reschedule, history.Get:
			p, ok := owner[op.BookingID]
			if !ok {
				res.count("linearizable.orphan", 1)
				continue
			}
			provider = p
		default:
			res.count("linearizable.unknown_kind", 1)
			continue
		}
		if provider == "" {
			res.count("linearizable.no_provider", 1)
			continue
		}
		k := groupKey{provider, op.Kind, op.IdempotencyKey}
		if op.IdempotencyKey == "" || op.Kind == history.Get {
			k.key = fmt.Sprintf("\x00op%d", op.ID) // its own group
		}
		if _, ok := groups[k]; !ok {
			groupOrder = append(groupOrder, k)
		}
		groups[k] = append(groups[k], op)
	}

	for _, k := range groupOrder {
		attempts := groups[k]
		p, ids := part(k.provider)
		first := attempts[0]
		groupCall := nanos(first.Call)
		for _, a := range attempts {
			groupCall = min(groupCall, nanos(a.Call))
		}
		var effect []history.Op // OK or Unknown attempts
		var okAttempts []history.Op
		for _, a := range attempts {
			switch effectiveOutcome(a) {
			case history.OK:
				effect = append(effect, a)
				okAttempts = append(okAttempts, a)
			case history.Unknown:
				if a.Kind == history.Get {
					res.count("linearizable.no_effect", 1)
					continue
				}
				effect = append(effect, a)
			}
		}
		checkRetries(k.key, attempts, okAttempts, res)

		// Definite refusals: observations of their own.
		for _, a := range attempts {
			if effectiveOutcome(a) != history.Fail {
				continue
			}
			obs, ok := observation(a)
			if !ok {
				res.count("linearizable.no_effect", 1)
				continue
			}
			call := nanos(a.Call)
			if len(attempts) > 1 {
				call = groupCall
			}
			ret := nanos(a.Return)
			if ret == 0 {
				ret = never
			}
			p.ops = append(p.ops, logical{
				hist: []int{a.ID}, client: a.Client, call: call, ret: max(ret, call),
				in: input(p, ids, a, a.BookingID), out: calOutput{kind: obs},
			})
		}
		if len(effect) == 0 {
			continue
		}
		// Attempts that took or may have taken effect: one logical operation.
		l := logical{client: effect[0].Client, call: groupCall, ret: never}
		for _, a := range effect {
			l.hist = append(l.hist, a.ID)
		}
		slices.Sort(l.hist)
		if len(okAttempts) > 0 {
			l.out.kind = outOK
			for _, a := range okAttempts {
				if r := nanos(a.Return); r != 0 {
					l.ret = min(l.ret, r)
				}
			}
			ok := okAttempts[0]
			bookingID := ok.BookingID
			if ok.Kind == history.Book && bookingID == "" {
				bookingID = fmt.Sprintf("?op%d", ok.ID) // acknowledged without an id: nothing can refer to it
			}
			l.in = input(p, ids, ok, bookingID)
			if ok.Kind == history.Get {
				l.out.cancelled = ok.ObservedStatus == "cancelled"
				l.out.start, l.out.end = nanos(ok.ObservedStart), nanos(ok.ObservedEnd)
			}
		} else {
			l.out.kind = outUnknown
			bookingID := first.BookingID
			if first.Kind == history.Book {
				bookingID = fmt.Sprintf("?op%d", effect[0].ID) // an id nothing refers to
			}
			l.in = input(p, ids, effect[0], bookingID)
		}
		l.ret = max(l.ret, l.call)
		p.ops = append(p.ops, l)
	}

	order := make([]string, 0, len(parts))
	for provider, p := range parts {
		order = append(order, provider)
		res.count("linearizable.logical_ops", len(p.ops))
	}
	slices.Sort(order)
	return parts, order
}

func input(p *partition, ids map[string]int32, op history.Op, bookingID string) calInput {
	in := calInput{id: p.intern(ids, bookingID)}
	switch op.Kind {
	case history.Book:
		in.kind = kBook
	case history.Cancel:
		in.kind = kCancel
	case history.Reschedule:
		in.kind = kReschedule
	case history.Get:
		in.kind = kGet
	}
	if op.Kind == history.Book || op.Kind == history.Reschedule {
		in.start, in.end = nanos(op.Start), nanos(op.End)
	}
	return in
}

// checkRetries reports idempotency violations among the attempts of one request:
// acknowledged attempts that disagree on the booking id, and a definite refusal
// of an attempt invoked after the request had been acknowledged.
func checkRetries(key string, attempts, okAttempts []history.Op, res *Result) {
	if len(attempts) < 2 || len(okAttempts) == 0 {
		return
	}
	firstOK := okAttempts[0]
	for _, a := range okAttempts[1:] {
		if a.Kind == history.Book && a.BookingID != firstOK.BookingID {
			res.violate(CheckIdempotency, []int{firstOK.ID, a.ID}, []string{firstOK.BookingID, a.BookingID},
				"idempotency key %q: retries of one booking were acknowledged with two ids, %s (op %d) and %s (op %d)",
				key, firstOK.BookingID, firstOK.ID, a.BookingID, a.ID)
		}
	}
	for _, a := range attempts {
		// Only an answer from the server refuses; a request that never left the
		// client (Status 0: it could not connect) says nothing.
		if effectiveOutcome(a) != history.Fail || a.Status < 400 {
			continue
		}
		for _, ok := range okAttempts {
			if !ok.Return.IsZero() && a.Call.After(ok.Return) {
				res.violate(CheckIdempotency, []int{ok.ID, a.ID}, nil,
					"idempotency key %q: %s acknowledged (op %d) but a retry invoked after it was refused with %d %s (op %d)",
					key, a.Kind, ok.ID, a.Status, a.Code, a.ID)
				break
			}
		}
	}
}

// checkPartition runs porcupine on one provider's operations.
func checkPartition(p *partition, timeout time.Duration, htmlDir string) (violations, inconclusive []Violation) {
	model := calendarModel(p.names)
	pops := make([]porcupine.Operation, len(p.ops))
	for i, l := range p.ops {
		pops[i] = porcupine.Operation{
			ClientId: l.client, Input: l.in, Call: l.call, Output: l.out, Return: l.ret, Metadata: l.hist,
		}
	}
	result, info := porcupine.CheckOperationsVerbose(model, pops, timeout)
	if result == porcupine.Ok {
		return nil, nil
	}
	var html string
	if htmlDir != "" {
		path := filepath.Join(htmlDir, "linearizability-"+safeName(p.provider)+".html")
		if err := os.MkdirAll(htmlDir, 0o755); err == nil {
			if err := porcupine.VisualizePath(model, info, path); err == nil {
				html = "; history rendered in " + path
			}
		}
	}
	if result == porcupine.Unknown {
		return nil, []Violation{{
			Check: CheckLinearizable,
			Detail: fmt.Sprintf("provider %s: undecided after %v over %d operations%s",
				p.provider, timeout, len(p.ops), html),
		}}
	}
	return []Violation{explain(p, model, info, html)}, nil
}

// explain names the operations behind a non-linearizable partition: the first
// operation (by return time) that no linearization could place after porcupine's
// longest partial linearization, and the operations around it that touched its
// booking or its interval.
func explain(p *partition, model porcupine.Model, info porcupine.LinearizationInfo, html string) Violation {
	var longest []int
	if parts := info.PartialLinearizations(); len(parts) > 0 {
		for _, l := range parts[0] {
			if len(l) > len(longest) || (len(l) == len(longest) && slices.Compare(l, longest) < 0) {
				longest = l
			}
		}
	}
	placed := make([]bool, len(p.ops))
	for _, i := range longest {
		placed[i] = true
	}
	stuck := -1
	for i, l := range p.ops {
		if placed[i] {
			continue
		}
		if stuck < 0 || l.ret < p.ops[stuck].ret || (l.ret == p.ops[stuck].ret && l.call < p.ops[stuck].call) {
			stuck = i
		}
	}
	if stuck < 0 { // cannot happen for an illegal history; name everything
		var all []int
		for _, l := range p.ops {
			all = append(all, l.hist...)
		}
		return Violation{Check: CheckLinearizable, Ops: sortedUnique(all),
			Detail: fmt.Sprintf("provider %s: history not linearizable%s", p.provider, html)}
	}
	s := p.ops[stuck]
	// Intervals and bookings around the stuck operation.
	type iv struct{ start, end int64 }
	var ivs []iv
	if s.in.kind == kBook || s.in.kind == kReschedule {
		ivs = append(ivs, iv{s.in.start, s.in.end})
	}
	if s.out.start != 0 || s.out.end != 0 {
		ivs = append(ivs, iv{s.out.start, s.out.end})
	}
	for _, l := range p.ops {
		if l.in.id == s.in.id && (l.in.kind == kBook || l.in.kind == kReschedule) {
			ivs = append(ivs, iv{l.in.start, l.in.end})
		}
	}
	touches := func(l logical) bool {
		if l.in.kind != kBook && l.in.kind != kReschedule {
			return false
		}
		for _, v := range ivs {
			if l.in.start < v.end && v.start < l.in.end {
				return true
			}
		}
		return false
	}
	bookings := map[int32]bool{s.in.id: true}
	for _, l := range p.ops {
		if touches(l) {
			bookings[l.in.id] = true
		}
	}
	// Rank: writes of its own booking, reads of it, writes of its interval, other
	// operations on bookings of its interval; the most recent first in each.
	rank := func(l logical) int {
		switch {
		case l.in.id == s.in.id && l.in.kind != kGet:
			return 0
		case l.in.id == s.in.id:
			return 1
		case touches(l):
			return 2
		case bookings[l.in.id]:
			return 3
		}
		return -1
	}
	var related []int
	for i, l := range p.ops {
		if i == stuck || l.call > s.ret { // invoked after it returned: cannot explain it
			continue
		}
		if rank(l) >= 0 {
			related = append(related, i)
		}
	}
	slices.SortFunc(related, func(a, b int) int {
		return cmp.Or(cmp.Compare(rank(p.ops[a]), rank(p.ops[b])), cmp.Compare(p.ops[b].call, p.ops[a].call))
	})
	if len(related) > 15 {
		related = related[:15]
	}
	slices.SortFunc(related, func(a, b int) int { return cmp.Compare(p.ops[a].call, p.ops[b].call) })

	describe := func(l logical) string {
		return fmt.Sprintf("op %s %s", joinInts(l.hist), model.DescribeOperation(l.in, l.out))
	}
	ids := slices.Clone(s.hist)
	parts := make([]string, 0, len(related))
	for _, i := range related {
		ids = append(ids, p.ops[i].hist...)
		parts = append(parts, describe(p.ops[i]))
	}
	state := model.Init()
	for _, i := range longest {
		_, state = model.Step(state, p.ops[i].in, p.ops[i].out)
	}
	detail := fmt.Sprintf("provider %s: not linearizable: no order of the operations explains %s; "+
		"after the longest linearizable prefix (%d of %d operations) the calendar is %s; related: %s%s",
		p.provider, describe(s), len(longest), len(p.ops), model.DescribeState(state), strings.Join(parts, "; "), html)
	if len(parts) == 0 {
		detail = fmt.Sprintf("provider %s: not linearizable: no order of the operations explains %s; "+
			"after the longest linearizable prefix (%d of %d operations) the calendar is %s; no other operation touched its booking or interval%s",
			p.provider, describe(s), len(longest), len(p.ops), model.DescribeState(state), html)
	}
	var refs []string
	if s.in.id >= 0 && int(s.in.id) < len(p.names) && !strings.HasPrefix(p.names[s.in.id], "?op") && p.names[s.in.id] != "" {
		refs = []string{p.names[s.in.id]}
	}
	return Violation{Check: CheckLinearizable, Detail: detail, Ops: sortedUnique(ids), Refs: refs}
}

// safeName makes s usable in a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
