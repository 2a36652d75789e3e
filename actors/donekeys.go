package actors

import calendarv1 "github.com/barberpro/edge/protos/calendar/v1"

// doneKeys remembers the answers to idempotency keys of this activation (FIFO,
// bounded).
type doneKeys struct {
	max   int
	m     map[string]doneKey
	order []string
}

type doneKey struct {
	kind  opKind
	hash  []byte
	reply *calendarv1.Reply
}

const doneKeysMax = 4096

func newDoneKeys(max int) *doneKeys { return &doneKeys{max: max, m: map[string]doneKey{}} }

func (d *doneKeys) get(k string) (doneKey, bool) { v, ok := d.m[k]; return v, ok }

func (d *doneKeys) put(k string, v doneKey) {
	if _, ok := d.m[k]; !ok {
		d.order = append(d.order, k)
	}
	d.m[k] = v
	for len(d.order) > d.max {
		delete(d.m, d.order[0])
		d.order = d.order[1:]
	}
}
