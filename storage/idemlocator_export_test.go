package storage

import (
	bolt "go.etcd.io/bbolt"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// FailPendingCommit fails the open transaction as a failed commit does
// (abortLocked: rolled back, its logs, all answered, kept to be redone).
func (t *TestFSM) FailPendingCommit() bool {
	t.f.mu.RLock()
	defer t.f.mu.RUnlock()
	t.f.pendMu.Lock()
	defer t.f.pendMu.Unlock()
	if t.f.pend == nil {
		return false
	}
	t.f.abortLocked(t.f.pend)
	return true
}

// PeekIdempotency reads key's record as Store.Idempotency does (peek).
func (t *TestFSM) PeekIdempotency(key string) (*bookingv1.IdempotencyRecord, error) {
	var rec *bookingv1.IdempotencyRecord
	err := t.f.peek(func(tx *bolt.Tx) error { rec = t.readIdempotency(tx, key); return nil })
	return rec, err
}

// ViewFailedIdempotency reads key's record through viewFailed (a read while
// the failed logs cannot be committed).
func (t *TestFSM) ViewFailedIdempotency(key string) (*bookingv1.IdempotencyRecord, error) {
	t.f.mu.RLock()
	defer t.f.mu.RUnlock()
	var rec *bookingv1.IdempotencyRecord
	err := t.f.viewFailed(func(tx *bolt.Tx) error { rec = t.readIdempotency(tx, key); return nil })
	return rec, err
}

// readIdempotency is key's record in tx, read as the FSM reads it (through
// the locator; nil when absent or undecodable).
func (t *TestFSM) readIdempotency(tx *bolt.Tx, key string) *bookingv1.IdempotencyRecord {
	a := applier{tx: tx, idem: &t.f.idem}
	return a.idempotency(key)
}
