package calendar

import (
	"sort"
	"time"
)

// Busy is a set of named busy intervals kept sorted by start, for overlap queries
// in O(log n + k). Intervals may overlap each other (a stale calendar may hold
// both sides of a conflict the store resolved). The zero value is not usable:
// call NewBusy. Busy is not safe for concurrent use.
type Busy struct {
	items  []busyItem // sorted by start, then id
	maxEnd []int64    // maxEnd[i] = max end of items[0..i]
	byID   map[string]Interval
	gen    uint64 // counts changes (Gen)
}

type busyItem struct {
	start, end int64 // unix nanoseconds
	id         string
}

// NewBusy returns an empty set.
func NewBusy() *Busy { return &Busy{byID: map[string]Interval{}} }

// Len is the number of intervals in the set.
func (b *Busy) Len() int { return len(b.items) }

// Gen counts the changes of the set: it differs after every Add and every
// Remove that removed something, so an answer computed from the set at one Gen
// holds while Gen is the same.
func (b *Busy) Gen() uint64 { return b.gen }

// Get returns the interval named id.
func (b *Busy) Get(id string) (Interval, bool) {
	iv, ok := b.byID[id]
	return iv, ok
}

// Add puts iv under id, replacing any interval that had that id.
func (b *Busy) Add(id string, iv Interval) {
	b.Remove(id)
	it := busyItem{start: iv.Start.UnixNano(), end: iv.End.UnixNano(), id: id}
	i := sort.Search(len(b.items), func(i int) bool {
		x := b.items[i]
		return x.start > it.start || (x.start == it.start && x.id >= it.id)
	})
	b.items = append(b.items, busyItem{})
	copy(b.items[i+1:], b.items[i:])
	b.items[i] = it
	b.byID[id] = iv
	b.gen++
	b.fixMax(i)
}

// Remove drops the interval named id; it reports whether there was one.
func (b *Busy) Remove(id string) bool {
	iv, ok := b.byID[id]
	if !ok {
		return false
	}
	delete(b.byID, id)
	b.gen++
	s := iv.Start.UnixNano()
	i := sort.Search(len(b.items), func(i int) bool {
		x := b.items[i]
		return x.start > s || (x.start == s && x.id >= id)
	})
	if i < len(b.items) && b.items[i].id == id {
		b.items = append(b.items[:i], b.items[i+1:]...)
		b.fixMax(i)
	}
	return true
}

func (b *Busy) fixMax(from int) {
	if cap(b.maxEnd) < len(b.items) {
		b.maxEnd = make([]int64, len(b.items), 2*len(b.items)+8)
		from = 0
	}
	b.maxEnd = b.maxEnd[:len(b.items)]
	for i := from; i < len(b.items); i++ {
		m := b.items[i].end
		if i > 0 && b.maxEnd[i-1] > m {
			m = b.maxEnd[i-1]
		}
		b.maxEnd[i] = m
	}
}

// Overlaps reports whether iv overlaps an interval of the set other than the one
// named except ("" excludes nothing).
func (b *Busy) Overlaps(iv Interval, except string) bool {
	_, ok := b.Overlapping(iv, except)
	return ok
}

// Overlapping returns the id of an interval (the latest-starting one) overlapping
// iv, other than the one named except.
func (b *Busy) Overlapping(iv Interval, except string) (string, bool) {
	s, e := iv.Start.UnixNano(), iv.End.UnixNano()
	// Candidates start before e; walk back while some earlier interval may still
	// end after s.
	j := sort.Search(len(b.items), func(i int) bool { return b.items[i].start >= e })
	for i := j - 1; i >= 0 && b.maxEnd[i] > s; i-- {
		if it := b.items[i]; it.end > s && it.id != except {
			return it.id, true
		}
	}
	return "", false
}

// Intervals returns the intervals of the set sorted by start.
func (b *Busy) Intervals() []Interval {
	out := make([]Interval, len(b.items))
	for i, it := range b.items {
		out[i] = Interval{Start: time.Unix(0, it.start), End: time.Unix(0, it.end)}
	}
	return out
}

// OverlappingAll returns the ids of every interval overlapping iv other than the
// one named except, in no particular order.
func (b *Busy) OverlappingAll(iv Interval, except string) []string {
	s, e := iv.Start.UnixNano(), iv.End.UnixNano()
	var out []string
	j := sort.Search(len(b.items), func(i int) bool { return b.items[i].start >= e })
	for i := j - 1; i >= 0 && b.maxEnd[i] > s; i-- {
		if it := b.items[i]; it.end > s && it.id != except {
			out = append(out, it.id)
		}
	}
	return out
}
