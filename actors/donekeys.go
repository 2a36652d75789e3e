package actors

import calendarv1 "github.com/barberpro/edge/protos/calendar/v1"

// doneKeys remembers the answers to idempotency keys of this activation: at
// least the max most recent keys, at most 2*max. Two generations of at most
// max keys each: a full current one becomes the previous one and the previous
// one is dropped whole. (A FIFO deleting its oldest key at every insert kept
// the map full of tombstones: its lookups probed long and it rehashed every
// few hundred bookings, ~1 % of a busy leader's CPU.)
type doneKeys struct {
	max       int
	cur, prev map[string]doneKey
}

type doneKey struct {
	kind  opKind
	hash  []byte
	reply *calendarv1.Reply
}

const doneKeysMax = 4096

func newDoneKeys(max int) *doneKeys { return &doneKeys{max: max, cur: map[string]doneKey{}} }

func (d *doneKeys) get(k string) (doneKey, bool) {
	if v, ok := d.cur[k]; ok {
		return v, true
	}
	v, ok := d.prev[k]
	return v, ok
}

func (d *doneKeys) put(k string, v doneKey) {
	if _, ok := d.cur[k]; !ok && len(d.cur) >= d.max {
		d.prev, d.cur = d.cur, make(map[string]doneKey, d.max)
	}
	d.cur[k] = v // shadows an older answer of k in prev
}
