package actors

import (
	"context"
	"strconv"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"google.golang.org/protobuf/proto"
)

// parkBehind makes req wait for the verdict of the write in flight that holds
// the reservation busyID, and reports whether it did (false: busyID is not a
// reservation of a write in flight). A reservation is not a booking: the write
// may still fail (no leader, a timeout, a forward that never reaches the
// leader, the FSM finding the slot taken), and a 409 answered because of it
// would report a conflict with a booking that never existed. Once the write
// settles, req is handled again: refused (after confirmConflict) if the write
// took the slot, judged afresh if it did not.
func (a *calendarActor) parkBehind(ctx actor.Context, busyID string, req proto.Message, w waiter) bool {
	o := a.reservationOwner(busyID)
	if o == nil {
		return false
	}
	if len(o.parked) >= maxParked {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE,
			"too many requests waiting for a write in flight on this calendar; retry"), nil)
		return true
	}
	o.parked = append(o.parked, parkedRequest{msg: req, w: w})
	return true
}

// reservationOwner is the write in flight whose reservation is busyID, or nil
// when busyID names a booking (or a reservation already released).
func (a *calendarActor) reservationOwner(busyID string) *op {
	n, ok := strings.CutPrefix(busyID, "r:")
	if !ok {
		return nil
	}
	n, _, _ = strings.Cut(n, ":")
	id, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return nil
	}
	if o := a.ops[id]; o != nil {
		for i := range o.reserved {
			if reservationID(o.id, i) == busyID {
				return o
			}
		}
	}
	return nil
}

// confirmConflict checks with the store, linearizably, that the bookings bs,
// which memory says are in the way of req, still hold their slots, before req
// is refused. Memory is exact while this is the calendar's only activation;
// during a membership change another activation may have moved or cancelled
// them (and the FSM cancels bookings itself on a consent withdrawal), and a
// refusal from stale memory would be a wrong answer the FSM never sees. The
// answer comes back as *confirmed. A booking request carrying audit records
// (psychology.md: every refused access is audited) is never refused from
// memory: it is proposed, and the FSM refuses it and appends its audit entries.
//
// With key set (a keyed request that overlaps a booking loaded from the store,
// whose key memory does not know), the check also reads whether a command
// with that key took effect: if none did, the FSM would refuse the request as
// it refuses any other (refusals record no key), and it is refused here
// without a Raft round trip; if one did, it may be this very request, and the
// FSM judges it (replay or mismatch).
func (a *calendarActor) confirmConflict(ctx actor.Context, bs []*bookingv1.Booking, req proto.Message, w waiter, key string) {
	o := a.newOp(opConfirm, "", nil, w)
	o.req, o.bookings = req, bs
	self, root, store, timeout, rctx := ctx.Self(), a.system.Root, a.store, a.cfg.RequestTimeout, a.lctx()
	ids := make([]string, len(bs))
	for i, b := range bs {
		ids[i] = b.GetId()
	}
	isNotFound := a.cfg.IsNotFound
	go func() {
		c, cancel := context.WithTimeout(rctx, timeout) // the request's ids, for the store's log lines
		defer cancel()
		err := store.LinearizableRead(c)
		cur := make([]*bookingv1.Booking, len(ids))
		for i := 0; err == nil && i < len(ids); i++ {
			cur[i], err = store.Booking(c, ids[i])
			if err != nil && isNotFound(err) {
				cur[i], err = nil, nil
			}
		}
		keyAbsent := false
		if err == nil && key != "" {
			if _, kerr := store.Idempotency(c, key); isNotFound(kerr) {
				keyAbsent = true
			} else if kerr != nil {
				err = kerr
			}
		}
		root.Send(self, &confirmed{op: o, current: cur, keyAbsent: keyAbsent, err: err})
	}()
}

// confirmed is the store's word on the bookings that memory says conflict with
// a request: current[i] is nil when op.bookings[i] is gone.
type confirmed struct {
	op      *op
	current []*bookingv1.Booking
	// keyAbsent: the request's idempotency key (confirmConflict's key) has
	// no record in the store.
	keyAbsent bool
	err       error
}

// onConfirmed refuses the request if the conflicting bookings still hold their
// slots (or the store cannot say), else refreshes memory from the store and
// handles the request again, without a second confirmation.
func (a *calendarActor) onConfirmed(ctx actor.Context, m *confirmed) {
	o := m.op
	a.finish(o)
	w := o.waiters[0]
	if m.err != nil {
		a.reply(ctx, w, errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store: %v", m.err), m.err)
		return
	}
	stale := false
	for i, was := range o.bookings {
		cur := m.current[i]
		stale = stale || cur == nil ||
			cur.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED ||
			cur.GetStartMs() != was.GetStartMs() || cur.GetBlockedUntilMs() != was.GetBlockedUntilMs()
	}
	if stale {
		a.reload("memory held a booking the store has moved or cancelled")
	}
	// keyAbsent was read before a reload: it says nothing of the bookings the
	// reload read (the key may have committed meanwhile), so the FSM judges.
	a.confirming, a.keyAbsent = true, m.keyAbsent && !stale
	defer func() { a.confirming, a.keyAbsent = false, false }()
	a.handle(ctx, o.req, w)
}
