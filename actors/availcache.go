package actors

import (
	"time"

	"github.com/barberpro/edge/actors/calendar"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// maxCachedAvailability bounds the answers one calendar keeps: the same day
// is read again and again; more distinct questions clear it. A day of
// 15-minute slots is ~7 KB of Reply, kept while the calendar is active.
const maxCachedAvailability = 2

// maxCachedSlots bounds the answer a calendar keeps: two days of 15-minute
// slots around the clock (~12 KB of Reply), a week of usual hours. A longer
// answer (up to 31 days, ~200 KB) is computed afresh each time: kept, any
// client reading months of many providers would make every active calendar
// (4-9 KB, PERFORMANCE.md) tens of times larger.
const maxCachedSlots = 2 * 96

// availKey is one availability question.
type availKey struct {
	service, from string
	days          int32
}

// availAnswer is a computed answer, the instant it was computed at and the
// last instant it holds (calendar.SlotsUntil: it holds for any now in
// [at, until], not before at: a wall clock stepped back moves the horizon and
// the notice back).
type availAnswer struct {
	reply     *calendarv1.Reply
	at, until time.Time
}

// availCache keeps a calendar's last availability answers so that the same
// question is not computed again until something changes it: an answer holds
// while the provider record is the one it was computed from (the actor swaps
// the pointer on every change, never edits it), the busy set is the same set
// at the same Gen (every booking, cancellation, reservation and reload changes
// one or the other) and now has not passed its until. The cached Reply is
// shared by every caller that gets it: nobody may modify it.
type availCache struct {
	provider *bookingv1.Provider
	busy     *calendar.Busy
	gen      uint64
	answers  map[availKey]availAnswer
}

// current reports whether the cache was filled from p and busy as they are now.
func (c *availCache) current(p *bookingv1.Provider, busy *calendar.Busy) bool {
	return c.provider == p && c.busy == busy && busy != nil && c.gen == busy.Gen()
}

// get returns the answer to k computed from p and busy as they are, if it
// holds at now: now is within [at, until] of the answer.
func (c *availCache) get(p *bookingv1.Provider, busy *calendar.Busy, k availKey, now time.Time) (*calendarv1.Reply, bool) {
	if !c.current(p, busy) {
		return nil, false
	}
	a, ok := c.answers[k]
	if !ok || now.Before(a.at) || now.After(a.until) {
		return nil, false
	}
	return a.reply, true
}

// put keeps reply, computed at at from p and busy as they are, as the answer
// to k until until, unless it has more than maxCachedSlots slots; answers from
// an older provider or busy set are dropped first.
func (c *availCache) put(p *bookingv1.Provider, busy *calendar.Busy, k availKey, reply *calendarv1.Reply, at, until time.Time) {
	if busy == nil || len(reply.GetSlots()) > maxCachedSlots {
		return
	}
	if !c.current(p, busy) || len(c.answers) >= maxCachedAvailability {
		clear(c.answers)
		c.provider, c.busy, c.gen = p, busy, busy.Gen()
	}
	if c.answers == nil {
		c.answers = make(map[availKey]availAnswer, maxCachedAvailability)
	}
	// at without its monotonic reading: now is then compared with it by the
	// wall clock, as SlotsUntil compares it with the slots (time.Now's
	// monotonic reading never steps back when the wall clock does).
	c.answers[k] = availAnswer{reply: reply, at: at.Round(0), until: until}
}
