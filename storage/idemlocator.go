package storage

import (
	"encoding/binary"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Idempotency records are kept in time order (see DESIGN.md, "Idempotency
// records"): a record is the value of its idempotency_time entry,
// be64(created_at_ms) key, so the records a commit writes share the last
// pages of one bucket, as etcd's revisions do. Keyed by the client's key (a
// UUID: random) each landed on a page of its own, rewritten at the next
// commit: with random keys, 1 node, 100 clients, this layout measured +12 %
// bookings/s, -10 to -17 % node CPU and -40 % bytes written per booking
// (docs/PERFORMANCE.md, session 20). A lookup by key needs the record's
// time: idemLocator keeps it in memory (~115 bytes a key, for the
// idempotency TTL), built from idempotency_time whenever fsm.db is opened.
//
// A record written before this layout is still found where it was (the
// idempotency bucket, entry in idempotency_time empty) until Compact removes
// both; nothing is moved at open, so replicas stay byte-identical whenever
// each opened.

// idemLocator maps an idempotency key to the created_at_ms of its record in
// idempotency_time. It is a hint checked against the transaction that reads
// it: a time whose record the transaction does not hold (written by one that
// was rolled back, not yet committed for a read transaction, or deleted
// since) counts as none. A key may have more than one time (a transaction
// rolled back after Compact deleted a record and the key was used again):
// every one is tried, and a transaction holds at most one of the records.
// A time is never missing for a record a transaction holds: the FSM adds it
// when it writes the record, and removes it (forget) only once the
// transaction that deleted the record (Compact) committed, so a transaction
// rolled back and applied again (redo, retry, viewFailed) still finds every
// record it held; a rebuild (load) drops the times of records that are gone.
// Safe for concurrent use.
type idemLocator struct {
	mu    sync.RWMutex
	at    map[string]int64   // a key's time
	extra map[string][]int64 // a key's other times (rare: see above)
	// legacy is whether the idempotency bucket held a record at the last
	// load: nothing writes that bucket since the time-ordered layout, so
	// while it is false a key without a time has no record (mayHold).
	legacy bool
}

// idemEntry is an idempotency record's key and created_at_ms.
type idemEntry struct {
	key string
	at  int64
}

// set records that key's record was written at ms.
func (l *idemLocator) set(key string, ms int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at == nil {
		l.at = make(map[string]int64)
	}
	at, ok := l.at[key]
	switch {
	case !ok:
		l.at[key] = ms
	case at == ms || slices.Contains(l.extra[key], ms):
	default:
		if l.extra == nil {
			l.extra = make(map[string][]int64)
		}
		l.extra[key] = append(l.extra[key], ms)
	}
}

// forget removes the times of records deleted by a transaction that
// committed.
func (l *idemLocator) forget(deleted []idemEntry) {
	if len(deleted) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range deleted {
		more := slices.DeleteFunc(l.extra[e.key], func(ms int64) bool { return ms == e.at })
		if at, ok := l.at[e.key]; ok && at == e.at {
			if len(more) == 0 {
				delete(l.at, e.key)
			} else {
				l.at[e.key], more = more[0], more[1:]
			}
		}
		if len(more) == 0 {
			delete(l.extra, e.key)
		} else {
			l.extra[e.key] = more
		}
	}
}

// load replaces the times with those of the records idempotency_time holds
// in tx (entries with a value; an empty one is the index entry of a record
// in the idempotency bucket).
func (l *idemLocator) load(tx *bolt.Tx) {
	m := make(map[string]int64)
	var extra map[string][]int64
	_ = tx.Bucket(bucketIdempotencyTime).ForEach(func(k, v []byte) error {
		if len(k) <= 8 || len(v) == 0 {
			return nil
		}
		key, ms := string(k[8:]), int64(binary.BigEndian.Uint64(k))
		if _, ok := m[key]; !ok {
			m[key] = ms
			return nil
		}
		if extra == nil { // not written by this FSM, which keeps one per key
			extra = make(map[string][]int64)
		}
		extra[key] = append(extra[key], ms)
		return nil
	})
	k, _ := tx.Bucket(bucketIdempotency).Cursor().First()
	l.mu.Lock()
	l.at, l.extra, l.legacy = m, extra, k != nil
	l.mu.Unlock()
}

// mayHold reports whether a transaction of the fsm.db l was loaded from may
// hold a record of key: l has a time for it, or the idempotency bucket held
// records of the older layout. False answers a lookup without one.
func (l *idemLocator) mayHold(key string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.at[key]
	return ok || l.legacy
}

// len returns how many keys l locates.
func (l *idemLocator) len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.at)
}

// value returns the encoded record of key as get reads it (a bucket lookup
// in the caller's transaction, nil if absent): where l locates it in
// idempotency_time, else in the idempotency bucket (records written before
// the time-ordered layout). nil if neither holds one.
func (l *idemLocator) value(key string, get func(bucket []byte, key string) []byte) []byte {
	l.mu.RLock()
	at, ok := l.at[key]
	var more []int64
	if ok && l.extra != nil {
		more = slices.Clone(l.extra[key])
	}
	l.mu.RUnlock()
	if ok {
		for _, ms := range append([]int64{at}, more...) {
			if v := get(bucketIdempotencyTime, string(atKey(ms, key))); len(v) > 0 {
				return v
			}
		}
	}
	return get(bucketIdempotency, key)
}
