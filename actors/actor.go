package actors

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/barberpro/edge/actors/calendar"
	"github.com/barberpro/edge/actors/internal/activation"
	"github.com/barberpro/edge/cluster/placement"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/reqtrace"
	"google.golang.org/protobuf/proto"
)

// opKind is the kind of a write (or store lookup) in flight.
type opKind int

const (
	opBook opKind = iota + 1
	opCancel
	opReschedule
	opUpdateProvider
	opFetch   // store lookup of a booking not in memory, then the request is re-handled
	opConfirm // linearizable store read of the bookings memory says are in the way
	opSeries
	opCancelSeries
)

// waiter is a requester waiting for the answer to an op.
type waiter struct {
	pid   *actor.PID
	local bool // answer with *localReply instead of *calendarv1.Reply
}

// op is a write in flight. Its reservations (one for a booking or a reschedule,
// one per occurrence for a series) count as busy until the store answers.
type op struct {
	id      uint64
	kind    opKind
	key     string // idempotency key, "" if none
	hash    []byte
	waiters []waiter

	reserved []calendar.Interval // the reserved intervals, busy ids reservationID(o.id, i)
	verify   bool                // proposed although memory said taken (possible idempotent replay)
	booking  *bookingv1.Booking
	provider *bookingv1.Provider
	req      proto.Message // opFetch, opConfirm: the request to re-handle
	// rctx is the context of the request that began the op (its request id
	// and trace), for the log lines of its verdict; nil if none.
	rctx context.Context
	// opSeries: the series and its occurrences as proposed; opConfirm: the
	// bookings memory says are in the way.
	series   *bookingv1.Series
	bookings []*bookingv1.Booking

	// parked are requests that overlapped this write's reservation: they wait
	// for its verdict and are handled again after it (see parkBehind).
	parked []parkedRequest
}

// parkedRequest is a request waiting for the verdict of a write in flight.
type parkedRequest struct {
	msg proto.Message
	w   waiter
}

// maxParked bounds the requests waiting on one write in flight; beyond it a
// request is answered unavailable (retryable), never refused with a conflict.
const maxParked = 1024

// proposed is Propose's answer, sent back to the actor by the proposing goroutine.
type proposed struct {
	op  *op
	res *bookingv1.CommandResult
	err error
}

// fetched is a store lookup's answer.
type fetched struct {
	op      *op
	booking *bookingv1.Booking
	err     error
}

var opIDs atomic.Uint64

// held is a confirmed booking in memory.
type held struct {
	b *bookingv1.Booking
	// loaded: it came from a store load, so its idempotency key is unknown here (a
	// keyed request that overlaps it is checked with the FSM, which may replay it).
	loaded bool
}

// calendarActor is the in-memory calendar of one provider.
type calendarActor struct {
	// confirming is set while a request is handled again after its conflict
	// was checked with the store (confirmConflict): it is then answered from
	// memory, which the check refreshed if needed.
	confirming bool
	// keyAbsent is set with confirming when the store said the request's
	// idempotency key took effect nowhere (confirmConflict's key).
	keyAbsent bool

	providerID string
	cfg        *Config
	store      Store
	dir        activations // may be nil
	log        *slog.Logger
	system     *actor.ActorSystem
	// rctx is the context of the request being handled (its request id and
	// trace: activation.Traced), nil between requests; log with lctx().
	rctx context.Context

	loadErr  error
	loadCode calendarv1.ErrorCode

	provider *bookingv1.Provider
	loadedTo time.Time // bookings are loaded up to here
	stale    bool      // the last reload failed: memory is what the store contradicted
	bookings map[string]*held
	busy     *calendar.Busy // "b:"+booking id, or reservationID for reservations
	avail    availCache     // the last availability answers (availcache.go)

	ops  map[uint64]*op
	keys map[string]*op // pending idempotency keys
	done *doneKeys      // idempotency keys answered by this activation

	retired  bool // the directory no longer routes to us
	stopSent bool

	grains  *grainCount // cluster mode: counts active grains
	counted bool
}

func newCalendarActor(providerID string, cfg *Config, dir activations) *calendarActor {
	a := &calendarActor{
		providerID: providerID,
		cfg:        cfg,
		store:      cfg.Store,
		dir:        dir,
		log:        reqtrace.Logger(cfg.Logger),
	}
	if providerID != "" {
		a.log = a.log.With(slog.String("provider_id", providerID))
	}
	return a
}

func bookingKey(id string) string { return "b:" + id }

// Receive implements actor.Actor.
func (a *calendarActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.system = ctx.ActorSystem()
		a.ops = map[uint64]*op{}
		a.keys = map[string]*op{}
		a.done = newDoneKeys(doneKeysMax)
		if a.providerID != "" { // local activation; a grain learns its id from ClusterInit
			a.activate(ctx)
		}
	case *cluster.ClusterInit:
		a.providerID = m.Identity.GetIdentity()
		a.log = a.log.With(slog.String("provider_id", a.providerID))
		if a.grains != nil && !a.counted {
			a.counted = true
			a.grains.Add(1)
		}
		a.activate(ctx)
	case *actor.ReceiveTimeout:
		if len(a.ops) == 0 {
			a.retire(ctx)
		} else {
			ctx.SetReceiveTimeout(a.cfg.IdleTimeout)
		}
	case *placement.Resync:
		// Another activation of this calendar ran beside this one (a healed
		// partition, a handover) and has stopped: what it wrote is in the store,
		// not in memory.
		if a.loadErr == nil {
			a.reload("another activation of this calendar stopped")
		}
	case *retireNow:
		a.retired = true
	case *actor.Stopped:
		if a.dir != nil {
			a.dir.Stopped(a.providerID, ctx.Self())
		}
		if a.counted {
			a.counted = false
			a.grains.Add(-1)
		}
	case *proposed:
		a.rctx = m.op.rctx
		a.onProposed(ctx, m)
		a.rctx = nil
	case *fetched:
		a.rctx = m.op.rctx
		a.onFetched(ctx, m)
		a.rctx = nil
	case *confirmed:
		a.rctx = m.op.rctx
		a.onConfirmed(ctx, m)
		a.rctx = nil
	case *localRequest:
		a.handle(ctx, m.msg, waiter{pid: ctx.Sender(), local: true})
	case proto.Message:
		a.handle(ctx, m, waiter{pid: ctx.Sender()})
	}
	if a.retired && len(a.ops) == 0 && !a.stopSent {
		a.stopSent = true
		ctx.Stop(ctx.Self())
	}
}

func (a *calendarActor) now() time.Time { return a.cfg.Clock() }

// lctx is the context of the actor's log lines: the request's being handled
// (its request id and trace reach the line through reqtrace.Handler), else none.
func (a *calendarActor) lctx() context.Context {
	if a.rctx != nil {
		return a.rctx
	}
	return context.Background()
}

func (a *calendarActor) reply(ctx actor.Context, w waiter, r *calendarv1.Reply, cause error) {
	if w.pid == nil {
		return
	}
	if w.local {
		ctx.Send(w.pid, &localReply{reply: r, cause: cause})
		return
	}
	ctx.Send(w.pid, r)
}

func (a *calendarActor) newOp(kind opKind, key string, hash []byte, w waiter) *op {
	o := &op{id: opIDs.Add(1), kind: kind, key: key, hash: hash, waiters: []waiter{w}, rctx: a.rctx}
	a.ops[o.id] = o
	if key != "" {
		a.keys[key] = o
	}
	return o
}

// reserve makes the intervals busy until o settles.
func (a *calendarActor) reserve(o *op, ivs ...calendar.Interval) {
	o.reserved = append(o.reserved, ivs...)
	for i, iv := range o.reserved {
		a.busy.Add(reservationID(o.id, i), iv)
	}
}

// reservationID is the busy id of the i-th interval reserved by op id.
func reservationID(id uint64, i int) string { return fmt.Sprintf("r:%d:%d", id, i) }

// propose runs Propose in a goroutine; the answer comes back as *proposed.
func (a *calendarActor) propose(ctx actor.Context, o *op, cmd *bookingv1.Command) {
	cmd.IdempotencyKey = o.key
	cmd.RequestHash = o.hash
	cmd.ProposedAtMs = a.now().UnixMilli()
	self, root, store, timeout, rctx := ctx.Self(), a.system.Root, a.store, a.cfg.RequestTimeout, a.lctx()
	go func() {
		c, cancel := context.WithTimeout(rctx, timeout) // the request's ids, for the store's log lines
		res, err := store.Propose(c, cmd)
		cancel()
		root.Send(self, &proposed{op: o, res: res, err: err})
	}()
}

// fetch looks a booking up in the store in a goroutine; the answer comes back as
// *fetched and req is handled again.
func (a *calendarActor) fetch(ctx actor.Context, bookingID string, req proto.Message, w waiter) {
	o := a.newOp(opFetch, "", nil, w)
	o.req = req
	self, root, store, timeout, rctx := ctx.Self(), a.system.Root, a.store, a.cfg.RequestTimeout, a.lctx()
	isNotFound := a.cfg.IsNotFound
	go func() {
		c, cancel := context.WithTimeout(rctx, timeout) // the request's ids, for the store's log lines
		defer cancel()
		b, err := store.Booking(c, bookingID)
		if (err == nil && b == nil) || (err != nil && isNotFound(err)) {
			// This replica may lag (the calendar may have just moved here):
			// "not found" only counts once it has caught up with the leader.
			if err = store.LinearizableRead(c); err == nil {
				b, err = store.Booking(c, bookingID)
			}
		}
		root.Send(self, &fetched{op: o, booking: b, err: err})
	}()
}

// finish removes o from the writes in flight and releases its reservation.
func (a *calendarActor) finish(o *op) {
	if a.ops[o.id] != o {
		return // answered to a previous incarnation of the actor
	}
	delete(a.ops, o.id)
	if o.key != "" && a.keys[o.key] == o {
		delete(a.keys, o.key)
	}
	for i := range o.reserved {
		a.busy.Remove(reservationID(o.id, i))
	}
}

// handle dispatches a calendar request.
func (a *calendarActor) handle(ctx actor.Context, msg proto.Message, w waiter) {
	// The request's ids and trace (its trace field) for the log lines about it,
	// also when it is handled again (parked, confirmed, fetched).
	prev := a.rctx
	a.rctx = activation.Traced(context.Background(), msg)
	defer func() { a.rctx = prev }()
	if a.loadErr != nil {
		a.reply(ctx, w, &calendarv1.Reply{Error: a.loadCode, Detail: a.loadErr.Error()}, nil)
		return
	}
	var pid string
	switch r := msg.(type) {
	case *calendarv1.BookRequest:
		pid = r.GetProviderId()
	case *calendarv1.CancelRequest:
		pid = r.GetProviderId()
	case *calendarv1.RescheduleRequest:
		pid = r.GetProviderId()
	case *calendarv1.AvailabilityRequest:
		pid = r.GetProviderId()
	case *calendarv1.UpdateProviderRequest:
		pid = r.GetProvider().GetId()
	case *calendarv1.BookSeriesRequest:
		pid = r.GetProviderId()
	case *calendarv1.CancelSeriesRequest:
		pid = r.GetProviderId()
	case *calendarv1.RefreshRequest:
		pid = r.GetProviderId()
	default:
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "unknown calendar message %T", msg), nil)
		return
	}
	if pid != a.providerID {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID,
			"request for provider %q reached the calendar of %q", pid, a.providerID), nil)
		return
	}
	a.log.DebugContext(a.lctx(), "calendar request", slog.String("kind", string(msg.ProtoReflect().Descriptor().Name())))
	switch r := msg.(type) {
	case *calendarv1.BookRequest:
		a.book(ctx, r, w)
	case *calendarv1.CancelRequest:
		a.cancel(ctx, r, w)
	case *calendarv1.RescheduleRequest:
		a.reschedule(ctx, r, w)
	case *calendarv1.AvailabilityRequest:
		a.reply(ctx, w, a.availability(r), nil)
	case *calendarv1.UpdateProviderRequest:
		a.updateProvider(ctx, r, w)
	case *calendarv1.BookSeriesRequest:
		a.bookSeries(ctx, r, w)
	case *calendarv1.CancelSeriesRequest:
		a.cancelSeries(ctx, r, w)
	case *calendarv1.RefreshRequest:
		a.reply(ctx, w, a.refresh(), nil)
	}
}

// checkKey answers a request whose idempotency key this activation already knows:
// done or joined a pending op (handled), or mismatched.
func (a *calendarActor) checkKey(ctx actor.Context, kind opKind, key string, hash []byte, w waiter) (handled bool) {
	if key == "" {
		return false
	}
	if d, ok := a.done.get(key); ok {
		if d.kind == kind && bytes.Equal(d.hash, hash) {
			a.reply(ctx, w, proto.Clone(d.reply).(*calendarv1.Reply), nil)
		} else {
			a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_IDEMPOTENCY_MISMATCH,
				"idempotency key %q was used with another request", key), nil)
		}
		return true
	}
	if o := a.keys[key]; o != nil {
		if o.kind == kind && bytes.Equal(o.hash, hash) {
			o.waiters = append(o.waiters, w) // same request in flight: same answer
		} else {
			a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_IDEMPOTENCY_MISMATCH,
				"idempotency key %q is in use by another request", key), nil)
		}
		return true
	}
	return false
}

// checkBooking finds the service of a booking (or series) request and checks its
// client and session status; when one is wrong it answers w and returns nil.
func (a *calendarActor) checkBooking(ctx actor.Context, w waiter, serviceID, clientID string, status bookingv1.SessionStatus) *bookingv1.Service {
	svc := calendar.FindService(a.provider, serviceID)
	if svc == nil {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "unknown service %q", serviceID), nil)
		return nil
	}
	if clientID == "" {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "client_id is required"), nil)
		return nil
	}
	if err := checkSessionStatus(status); err != nil {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "%v", err), nil)
		return nil
	}
	return svc
}

func (a *calendarActor) book(ctx actor.Context, r *calendarv1.BookRequest, w waiter) {
	svc := a.checkBooking(ctx, w, r.GetServiceId(), r.GetClientId(), r.GetSessionStatus())
	if svc == nil {
		return
	}
	if a.checkKey(ctx, opBook, r.GetIdempotencyKey(), r.GetRequestHash(), w) {
		return
	}
	start := time.UnixMilli(r.GetStartMs())
	_, blockedUntil := calendar.Span(svc, start)
	iv := calendar.Interval{Start: start, End: blockedUntil}
	verify := false
	if id, taken := a.busy.Overlapping(iv, ""); taken {
		if a.parkBehind(ctx, id, r, w) {
			return
		}
		// A slot lost to another booking is a 409, even if the start is also invalid.
		h := a.bookings[id[min(2, len(id)):]]
		key := r.GetIdempotencyKey()
		switch {
		case refusedByStoreOnly(r):
			// proposed below: the FSM refuses it and audits it
		case key == "" || h == nil || !h.loaded || (a.confirming && a.keyAbsent) ||
			calendar.CheckStart(a.provider, svc, start, a.now()) != nil:
			if h != nil && !a.confirming {
				a.confirmConflict(ctx, []*bookingv1.Booking{h.b}, r, w, "")
				return
			}
			a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_SLOT_TAKEN,
				"%s overlaps another booking", a.local(start)), nil)
			return
		case !a.confirming && r.GetConsentPurpose() == "" && !r.GetRequireVerified():
			// It overlaps a booking loaded from the store, whose key we do not
			// know: it may be this very request, answered before this
			// activation. Unless the request carries policy the FSM checks
			// before the slot (consent, verification), ask the store whether
			// its key took effect: if not, it is refused like any other
			// (confirmConflict). Else let the FSM judge; it replays the first
			// answer or says SLOT_TAKEN.
			a.confirmConflict(ctx, []*bookingv1.Booking{h.b}, r, w, key)
			return
		}
		verify = true
	} else if err := calendar.CheckStart(a.provider, svc, start, a.now()); err != nil {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "%v", err), nil)
		return
	}
	id := r.GetBookingId()
	if id == "" {
		id = a.cfg.NewID()
	}
	b := a.newBooking(svc, id, r.GetClientId(), start, "", r.GetSessionStatus())
	o := a.newOp(opBook, r.GetIdempotencyKey(), r.GetRequestHash(), w)
	o.booking = b
	o.verify = verify
	if !verify {
		a.reserve(o, iv)
	}
	a.propose(ctx, o, &bookingv1.Command{Audit: r.GetAudit(), Op: &bookingv1.Command_CreateBooking{CreateBooking: &bookingv1.CreateBooking{
		Booking:         b,
		ConsentPurpose:  r.GetConsentPurpose(),
		RequireVerified: r.GetRequireVerified(),
	}}})
}

func (a *calendarActor) cancel(ctx actor.Context, r *calendarv1.CancelRequest, w waiter) {
	if r.GetBookingId() == "" {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "booking_id is required"), nil)
		return
	}
	if a.bookings[r.GetBookingId()] == nil {
		a.fetch(ctx, r.GetBookingId(), r, w)
		return
	}
	o := a.newOp(opCancel, "", nil, w)
	o.booking = a.bookings[r.GetBookingId()].b
	a.propose(ctx, o, &bookingv1.Command{Audit: r.GetAudit(), Op: &bookingv1.Command_CancelBooking{CancelBooking: &bookingv1.CancelBooking{BookingId: r.GetBookingId()}}})
}

func (a *calendarActor) reschedule(ctx actor.Context, r *calendarv1.RescheduleRequest, w waiter) {
	if r.GetBookingId() == "" {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "booking_id is required"), nil)
		return
	}
	if a.checkKey(ctx, opReschedule, r.GetIdempotencyKey(), r.GetRequestHash(), w) {
		return
	}
	h := a.bookings[r.GetBookingId()]
	if h == nil {
		a.fetch(ctx, r.GetBookingId(), r, w)
		return
	}
	b := h.b
	dur := time.Duration(b.GetEndMs()-b.GetStartMs()) * time.Millisecond
	blocked := time.Duration(b.GetBlockedUntilMs()-b.GetStartMs()) * time.Millisecond
	start := time.UnixMilli(r.GetStartMs())
	iv := calendar.Interval{Start: start, End: start.Add(blocked)}
	if other, taken := a.busy.Overlapping(iv, bookingKey(b.GetId())); taken && !refusedByStoreOnly(r) {
		if a.parkBehind(ctx, other, r, w) {
			return
		}
		if oh := a.bookings[other[min(2, len(other)):]]; oh != nil && !a.confirming {
			a.confirmConflict(ctx, []*bookingv1.Booking{oh.b}, r, w, "")
			return
		}
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_SLOT_TAKEN,
			"%s overlaps another booking", a.local(start)), nil)
		return
	}
	// Same duration and buffer as the booking had, even if the service changed since.
	svc := &bookingv1.Service{Id: b.GetServiceId(), DurationMinutes: int32(dur / time.Minute),
		BufferMinutes: int32((blocked - dur) / time.Minute)}
	if err := calendar.CheckStart(a.provider, svc, start, a.now()); err != nil {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "%v", err), nil)
		return
	}
	o := a.newOp(opReschedule, r.GetIdempotencyKey(), r.GetRequestHash(), w)
	o.booking = b
	a.reserve(o, iv)
	a.propose(ctx, o, &bookingv1.Command{Audit: r.GetAudit(), Op: &bookingv1.Command_RescheduleBooking{RescheduleBooking: &bookingv1.RescheduleBooking{
		BookingId:      b.GetId(),
		StartMs:        start.UnixMilli(),
		EndMs:          start.Add(dur).UnixMilli(),
		BlockedUntilMs: iv.End.UnixMilli(),
		ConsentPurpose: r.GetConsentPurpose(),
	}}})
}

func (a *calendarActor) availability(r *calendarv1.AvailabilityRequest) *calendarv1.Reply {
	svc := calendar.FindService(a.provider, r.GetServiceId())
	if svc == nil {
		return errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "unknown service %q", r.GetServiceId())
	}
	from, err := calendar.ParseDate(r.GetFromDate())
	if err != nil {
		return errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "from: %v", err)
	}
	if r.GetDays() < 1 || r.GetDays() > MaxAvailabilityDays {
		return errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "days must be within 1..%d, got %d", MaxAvailabilityDays, r.GetDays())
	}
	now := a.now()
	if err := a.loadFor(svc, from, int(r.GetDays()), now); err != nil {
		return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "the calendar cannot be read from the store: %v", err)
	}
	k := availKey{service: r.GetServiceId(), from: r.GetFromDate(), days: r.GetDays()}
	if out, ok := a.avail.get(a.provider, a.busy, k, now); ok {
		return out
	}
	slots, until, err := calendar.SlotsUntil(a.provider, svc, from, int(r.GetDays()), now, a.busy)
	if err != nil {
		return errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "%v", err)
	}
	out := &calendarv1.Reply{Timezone: a.provider.GetTimezone(), Slots: make([]*calendarv1.Slot, len(slots))}
	backing := make([]calendarv1.Slot, len(slots)) // one allocation for the day
	for i, s := range slots {
		backing[i].StartMs, backing[i].EndMs = s.Start.UnixMilli(), s.End.UnixMilli()
		out.Slots[i] = &backing[i]
	}
	a.avail.put(a.provider, a.busy, k, out, now, until)
	return out
}

func (a *calendarActor) updateProvider(ctx actor.Context, r *calendarv1.UpdateProviderRequest, w waiter) {
	p := r.GetProvider()
	if _, err := calendar.Location(p); err != nil {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "%v", err), nil)
		return
	}
	if a.checkKey(ctx, opUpdateProvider, r.GetIdempotencyKey(), r.GetRequestHash(), w) {
		return
	}
	o := a.newOp(opUpdateProvider, r.GetIdempotencyKey(), r.GetRequestHash(), w)
	o.provider = p
	a.propose(ctx, o, &bookingv1.Command{Op: &bookingv1.Command_UpdateProvider{UpdateProvider: &bookingv1.UpdateProvider{Provider: p}}})
}

// onProposed settles a write: memory follows the store's verdict, then every
// waiter gets the answer.
func (a *calendarActor) onProposed(ctx actor.Context, m *proposed) {
	o := m.op
	a.finish(o)
	code, detail, cause := verdict(m.res, m.err, a.cfg.IsStorageUnavailable)
	var rep *calendarv1.Reply
	if code != calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		rep = &calendarv1.Reply{Error: code, Detail: detail}
		// The FSM contradicted memory: another activation wrote (membership change)
		// or memory is stale. Reload; a verified replay that lost was expected.
		switch code {
		case calendarv1.ErrorCode_ERROR_CODE_SLOT_TAKEN:
			rep.Conflicts = m.res.GetConflicts()
			if !o.verify {
				a.reload("store said slot taken where memory had it free")
			}
		case calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND, calendarv1.ErrorCode_ERROR_CODE_INVALID_TRANSITION:
			if o.kind == opCancel || o.kind == opReschedule {
				a.reload("store disagreed about a booking") // no ids in logs
			}
		}
	} else {
		rep = &calendarv1.Reply{}
		switch o.kind {
		case opBook, opCancel, opReschedule:
			b := m.res.GetBooking()
			if b == nil { // a store that answers without the record: rebuild it
				b = a.expected(o)
			}
			if b != nil {
				_, known := a.bookings[b.GetId()]
				a.upsert(b, false)
				if o.verify && !known && b.GetStatus() == bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED {
					a.reload("store accepted a booking memory had as taken")
				}
				rep.Booking = b
			}
		case opUpdateProvider:
			p := m.res.GetProvider()
			if p == nil {
				p = o.provider
			}
			a.setProvider(p)
			rep.Provider = p
		case opSeries, opCancelSeries:
			a.settleSeries(o, m.res, rep)
		}
		if o.key != "" {
			a.done.put(o.key, doneKey{kind: o.kind, hash: o.hash, reply: rep})
		}
	}
	// Every waiter gets rep itself, not a copy: rep and its records are
	// never modified once settled (memory replaces a record, it does not
	// change it), and receivers only read them (Calendars' contract). A copy
	// per answer was the actor's largest cost after the store.
	for _, w := range o.waiters {
		a.reply(ctx, w, rep, cause)
	}
	// Memory now follows the store's verdict on o: the requests that were
	// waiting for it are judged against that.
	parked := o.parked
	o.parked = nil
	for _, p := range parked {
		a.handle(ctx, p.msg, p.w)
	}
}

// expected is what the booking looks like after o, for stores that return no
// record with OK.
func (a *calendarActor) expected(o *op) *bookingv1.Booking {
	switch o.kind {
	case opBook:
		return o.booking
	case opCancel:
		if h := a.bookings[o.booking.GetId()]; h != nil {
			b := proto.Clone(h.b).(*bookingv1.Booking)
			b.Status = bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED
			return b
		}
	case opReschedule:
		b := proto.Clone(o.booking).(*bookingv1.Booking)
		d := b.GetEndMs() - b.GetStartMs()
		bl := b.GetBlockedUntilMs() - b.GetStartMs()
		b.StartMs = o.reserved[0].Start.UnixMilli()
		b.EndMs, b.BlockedUntilMs = b.StartMs+d, b.StartMs+bl
		return b
	}
	return nil
}

// onFetched continues a cancel or reschedule of a booking that was not in memory.
func (a *calendarActor) onFetched(ctx actor.Context, m *fetched) {
	o := m.op
	a.finish(o)
	w := o.waiters[0]
	b := m.booking
	if m.err != nil && !a.cfg.IsNotFound(m.err) {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store: %v", m.err), m.err)
		return
	}
	if m.err != nil || b == nil || b.GetProviderId() != a.providerID {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND, "booking not found"), nil)
		return
	}
	if b.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED {
		if _, ok := o.req.(*calendarv1.CancelRequest); ok {
			a.reply(ctx, w, &calendarv1.Reply{Booking: b}, nil) // cancelling again: same answer
		} else {
			a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID_TRANSITION,
				"booking %s is %s", b.GetId(), b.GetStatus()), nil)
		}
		return
	}
	a.upsert(b, true) // confirmed but outside the loaded window: now it is in memory
	switch r := o.req.(type) {
	case *calendarv1.CancelRequest:
		a.cancel(ctx, r, w)
	case *calendarv1.RescheduleRequest:
		a.reschedule(ctx, r, w)
	}
}

// local formats t in the provider's zone for messages.
func (a *calendarActor) local(t time.Time) string {
	if loc, err := calendar.Location(a.provider); err == nil {
		t = t.In(loc)
	}
	return t.Format(time.RFC3339)
}

// refusedByStoreOnly reports whether a request must not be refused from the
// actor's memory: it carries audit records (psychology.md: every allowed or
// refused access appends an entry), which only the FSM appends, so it is
// proposed and the FSM refuses it and audits it.
func refusedByStoreOnly(r interface {
	GetAudit() []*bookingv1.AuditRecord
}) bool {
	return len(r.GetAudit()) > 0
}
