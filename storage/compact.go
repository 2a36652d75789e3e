package storage

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// MaxCompactRemovals is the largest Compact.max_removals the FSM accepts: one
// Compact removes at most this many idempotency records and this many
// cancelled bookings, so its transaction stays short. DefaultCompactRemovals
// is what the leader sends.
const (
	MaxCompactRemovals     = 10000
	DefaultCompactRemovals = 2000
)

// atKey is be64(ms) suffix: the key layout of the time-ordered indexes
// (idempotency_time, cancelled_time). A negative ms is stored as 0.
func atKey(ms int64, suffix string) []byte {
	k := make([]byte, 0, 8+len(suffix))
	k = binary.BigEndian.AppendUint64(k, uint64(max(ms, 0)))
	return append(k, suffix...)
}

// ensureIndexes creates every missing index bucket and fills it from the
// records, so an fsm.db (or a restored snapshot) written before the index
// existed gets it, identical on every replica: it depends only on the
// records. An existing index bucket is left as it is (the FSM maintains it).
func ensureIndexes(tx *bolt.Tx) error {
	if tx.Bucket(bucketIdempotencyTime) == nil {
		ix, err := tx.CreateBucket(bucketIdempotencyTime)
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketIdempotency).ForEach(func(k, v []byte) error {
			rec := new(bookingv1.IdempotencyRecord)
			if proto.Unmarshal(v, rec) != nil {
				return nil
			}
			return ix.Put(atKey(rec.CreatedAtMs, string(k)), []byte{})
		})
		if err != nil {
			return err
		}
	}
	if tx.Bucket(bucketCancelledTime) == nil {
		ix, err := tx.CreateBucket(bucketCancelledTime)
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketBookings).ForEach(func(k, v []byte) error {
			b := new(bookingv1.Booking)
			if proto.Unmarshal(v, b) != nil || b.Status != bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
				return nil
			}
			return ix.Put(atKey(b.UpdatedAtMs, string(k)), []byte{})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// compact applies a Compact command: from the oldest entry of each time
// index, it removes up to max_removals idempotency records created before
// proposed_at_ms - idempotency_ttl_ms, and up to max_removals cancelled
// bookings cancelled before proposed_at_ms - cancelled_retention_ms (each with
// its client_bookings entry; its provider_time entry went at cancellation).
// The cutoffs come from the command alone, so every replica removes the same
// records. The result reports how many records went and whether more were
// already due (more: the leader proposes another Compact at once).
func (a *applier) compact(cmd *bookingv1.Command, op *bookingv1.Compact) *bookingv1.CommandResult {
	switch {
	case op == nil:
		return invalid("compact without parameters")
	case cmd.ProposedAtMs <= 0:
		return invalid("compact needs proposed_at_ms")
	case op.IdempotencyTtlMs < 0 || op.CancelledRetentionMs < 0:
		return invalid("compact ttl and retention must not be negative")
	case op.MaxRemovals < 1 || op.MaxRemovals > MaxCompactRemovals:
		return invalid("compact max_removals must be within 1..%d", MaxCompactRemovals)
	}
	limit := int(op.MaxRemovals)
	res := &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK}
	if ttl := op.IdempotencyTtlMs; ttl > 0 {
		due, more := a.oldest(bucketIdempotencyTime, cmd.ProposedAtMs-ttl, limit)
		for _, k := range due {
			a.deleteKey(bucketIdempotency, k[8:]) // a record of the older layout, if any
			a.deleteKey(bucketIdempotencyTime, k)
			a.idemRemoved = append(a.idemRemoved, idemEntry{key: string(k[8:]), at: int64(binary.BigEndian.Uint64(k))})
		}
		res.Removed += uint64(len(due))
		res.More = res.More || more
	}
	if keep := op.CancelledRetentionMs; keep > 0 {
		due, more := a.oldest(bucketCancelledTime, cmd.ProposedAtMs-keep, limit)
		for _, k := range due {
			id := string(k[8:])
			if b := a.booking(id); b != nil && b.Status == bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
				a.deleteKey(bucketBookings, []byte(id))
				a.deleteKey(bucketClientBookings, timeKey(b.ClientId, b.CreatedAtMs, id))
			}
			a.deleteKey(bucketCancelledTime, k)
		}
		res.Removed += uint64(len(due))
		res.More = res.More || more
	}
	return res
}

// oldest returns up to limit keys of the time index bucket whose time is
// before cutoff, oldest first (copies: they are deleted afterwards, and a
// bbolt cursor must not delete while it walks), and whether more are due.
func (a *applier) oldest(bucket []byte, cutoff int64, limit int) (keys [][]byte, more bool) {
	if cutoff <= 0 {
		return nil, false
	}
	c := a.tx.Bucket(bucket).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if len(k) < 8 {
			continue
		}
		if int64(binary.BigEndian.Uint64(k)) >= cutoff {
			return keys, false
		}
		if len(keys) == limit {
			return keys, true
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	return keys, false
}

// compactDue reports whether this replica holds an idempotency record older
// than ttl or a cancellation older than retention at now (Unix ms): the
// leader proposes a Compact only then, so an idle group's log stays still.
// Only the decision to propose reads the local state and clock; what a
// Compact removes depends on the command alone.
func (f *fsm) compactDue(now, ttl, retention int64) bool {
	due := false
	_ = f.view(func(tx *bolt.Tx) error {
		for _, c := range []struct {
			bucket []byte
			keep   int64
		}{{bucketIdempotencyTime, ttl}, {bucketCancelledTime, retention}} {
			if c.keep <= 0 {
				continue
			}
			if k, _ := tx.Bucket(c.bucket).Cursor().First(); len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) < now-c.keep {
				due = true
			}
		}
		return nil
	})
	return due
}
