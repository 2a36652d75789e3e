package storage

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Deferred FSM commits (see DESIGN.md, "Durability"). Once startSyncing ran,
// ApplyBatch applies into a bbolt write transaction it keeps open across
// batches and commits it (without fsync) when it is due (commitDue: commitEvery
// after it began, or maxPendingLogs / maxPendingBytes held), and whenever
// something needs fsm.db to hold it: a read that takes a read transaction
// (view), a snapshot, a backup, a restore, a shred's rewrite, Close. Point
// lookups and a page of a client's bookings run in the open transaction
// instead (peek; lists of providers and consents and a calendar's load still
// use view), so neither they nor the linearizable read before
// them (Store.waitApplied waits for applied, not committed) cost a commit: in
// mixed traffic reads came many times per interval and each one committed. A batch that erases a client, or that makes the group id known,
// commits at once (both are acted on after the commit). The sync
// loop commits what is pending at every tick before it fsyncs.
//
// Each batch's answers leave before the commit, as etcd answers before its
// backend's batched commit: the entries are durable in the raft log, and
// meta.applied_index is committed with the records, so after a crash raft
// applies the entries past it again, deterministically, to the same answers.
// Committing many batches at once writes each touched bbolt page once per
// commit instead of once per batch.
//
// Two applied indexes: applied is the last index applied to the open
// transaction (what raft handed the FSM), committed the last one committed to
// fsm.db (what a read transaction sees). A linearizable read waits for applied
// (Store.waitApplied); peek then reads the open transaction, view commits it.
//
// A commit that fails rolls back every batch of the transaction. Their logs
// are kept (failed) and applied again in a fresh transaction before anything
// else (redoLocked): by ApplyBatch, which retries with backoff as for any
// write failure, and by the sync loop at every tick. applied falls back to
// committed, the FSM reports the write fault (Propose refuses, Ready fails),
// and local reads still see every applied log (viewFailed).

// Bounds of the open transaction, whatever its age.
const (
	maxPendingLogs  = 1024
	maxPendingBytes = 16 << 20 // bytes of log data applied into it
)

// pendingTx is the FSM's open write transaction and the logs applied into it.
type pendingTx struct {
	tx                *bolt.Tx
	began             time.Time
	logs              []*raft.Log
	bytes             int
	lastIdx, lastTerm uint64 // the last log applied into tx (0: none yet)
	group             string // meta.cluster_id seen while the FSM had none
	idemRemoved       []idemEntry
}

// add records logs as applied into p.
func (p *pendingTx) add(logs []*raft.Log, r txApply) {
	p.logs = append(p.logs, logs...)
	for _, l := range logs {
		p.bytes += len(l.Data)
	}
	if r.lastIdx != 0 {
		p.lastIdx, p.lastTerm = r.lastIdx, r.lastTerm
	}
	if r.group != "" {
		p.group = r.group
	}
	p.idemRemoved = append(p.idemRemoved, r.idemRemoved...)
}

// beginLocked returns the open transaction, beginning one if none is.
// Callers hold mu (read) and pendMu.
func (f *fsm) beginLocked() (*pendingTx, error) {
	if f.pend != nil {
		return f.pend, nil
	}
	tx, err := f.db.Begin(true)
	if err != nil {
		return nil, err
	}
	f.pend = &pendingTx{tx: tx, began: time.Now()}
	f.uncommitted.Store(true)
	return f.pend, nil
}

// commitDue reports whether the open transaction must commit now: always
// while commits are not deferred (commitEvery 0, before startSyncing), when
// the caller says so (now: a batch that erased a client, or one applied
// during a write fault), for a batch that revealed the group id, and once
// it is commitEvery old or holds maxPendingLogs or maxPendingBytes.
func (f *fsm) commitDue(p *pendingTx, now bool) bool {
	return f.commitEvery <= 0 || now || p.group != "" ||
		time.Since(p.began) >= f.commitEvery || len(p.logs) >= maxPendingLogs || p.bytes >= maxPendingBytes
}

// commitLocked commits the open transaction, if any. On failure bbolt has
// rolled it back: its logs become failed (see failLocked; the last
// unanswered of them are the batch ApplyBatch is applying) and the error is
// returned. Callers hold mu (read or write) and pendMu.
func (f *fsm) commitLocked(unanswered int) error {
	p := f.pend
	if p == nil {
		return nil
	}
	f.pend = nil
	if err := p.tx.Commit(); err != nil {
		f.failLocked(p.logs, len(p.logs)-unanswered)
		return err
	}
	if p.lastIdx != 0 {
		f.committed.Store(p.lastIdx)
		f.committedTerm.Store(p.lastTerm)
	}
	f.idem.forget(p.idemRemoved)
	f.committedLocked(p.group)
	f.wake()
	return nil
}

// committedLocked is what follows every commit of the apply path (the open
// transaction's or a redo's), once committed holds its last log: the group
// id it revealed, if any, is set, and a write fault ends.
func (f *fsm) committedLocked(group string) {
	f.commits.Add(1)
	if group != "" {
		f.setGroup(group)
	}
	f.uncommitted.Store(f.pend != nil || len(f.failed) > 0)
	f.clearFault()
}

// abortLocked rolls the open transaction back after a failure while a batch
// was applied into it. The transaction's earlier logs (answered) become
// failed; the batch does not: its answers judged commands against writes
// that failed, so ApplyBatch's retry applies it afresh after them.
func (f *fsm) abortLocked(p *pendingTx) {
	f.pend = nil
	_ = p.tx.Rollback()
	f.failLocked(p.logs, len(p.logs))
}

// failLocked keeps logs, whose transaction did not commit, to be applied
// again (redoLocked), and brings applied back to what fsm.db holds. The
// first answered of them were answered (by earlier ApplyBatch calls): local
// reads still see those (viewFailed).
func (f *fsm) failLocked(logs []*raft.Log, answered int) {
	f.providersChanged() // what reads see goes back
	f.failed = append(f.failed, logs...)
	f.failedAnswered = answered
	f.uncommitted.Store(true)
	f.setApplied(f.committed.Load(), f.committedTerm.Load())
}

// redoLocked applies the failed logs again in a transaction of their own and
// commits it; nil when there are none. Their answers were given (or are
// ApplyBatch's prev): the new ones are dropped. Callers hold mu and pendMu.
func (f *fsm) redoLocked() error {
	if len(f.failed) == 0 {
		return nil
	}
	tx, err := f.db.Begin(true)
	if err != nil {
		return err
	}
	r := f.applyInTx(tx, f.failed, nil, nil)
	if r.err != nil {
		_ = tx.Rollback()
		return r.err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if r.providers {
		// The logs of the failed batch that were not answered become
		// visible: readers must not keep what they read without them.
		f.providersChanged()
	}
	f.failed, f.failedAnswered = nil, 0
	f.idem.forget(r.idemRemoved)
	idx, term := r.lastIdx, r.lastTerm
	if idx == 0 { // every failed log had reached the file (see ApplyBatch)
		idx, term = r.storedIdx, r.storedTerm
	}
	f.committed.Store(idx)
	f.committedTerm.Store(term)
	f.committedLocked(r.group)
	f.setApplied(idx, term)
	return nil
}

// flush commits what is pending (applying failed logs again first) so that
// fsm.db holds every log applied so far. Callers hold mu (read or write).
// A failure is recorded as the write fault and returned wrapping
// ErrStorageUnavailable.
func (f *fsm) flush() error {
	if !f.dirty() {
		return nil
	}
	f.pendMu.Lock()
	defer f.pendMu.Unlock()
	return f.flushLocked()
}

// flushLocked is flush with pendMu held.
func (f *fsm) flushLocked() error {
	if f.db == nil {
		return ErrClosed
	}
	err := f.redoLocked()
	if err == nil {
		if err = f.commitLocked(0); err == nil {
			return nil
		}
	}
	f.setFault(err, f.failed)
	return fmt.Errorf("%w: fsm commit failed: %w", ErrStorageUnavailable, err)
}

// dirty reports whether logs were applied that fsm.db does not hold yet (an
// open transaction, or failed logs).
func (f *fsm) dirty() bool { return f.uncommitted.Load() }

// discardPendingLocked rolls back the open transaction and forgets failed
// logs (Close after a failed flush: raft applies them again after a restart,
// from its log, past meta.applied_index). Callers hold mu (write).
func (f *fsm) discardPendingLocked() {
	f.pendMu.Lock()
	defer f.pendMu.Unlock()
	if f.pend != nil {
		_ = f.pend.tx.Rollback()
		f.pend = nil
	}
	f.failed, f.failedAnswered = nil, 0
	f.uncommitted.Store(false)
	f.setApplied(f.committed.Load(), f.committedTerm.Load())
}

// viewFailed runs fn while logs the FSM answered could not be committed (a
// write fault): in a write transaction that applies them again and is rolled
// back, so a local read still sees every log answered before it (nothing is
// written: bbolt allocates pages at commit). The batch ApplyBatch retries is
// not answered yet: reads do not see it, as before deferred commits.
// Callers hold mu.
func (f *fsm) viewFailed(fn func(tx *bolt.Tx) error) error {
	f.pendMu.Lock()
	defer f.pendMu.Unlock()
	if f.failedAnswered == 0 {
		// No answered log is missing from fsm.db: only a batch being retried
		// (not answered), or the fault ended meanwhile and a new transaction
		// may be open (failed logs are redone before any begins).
		if err := f.commitLocked(0); err != nil {
			return err
		}
		return f.db.View(fn)
	}
	tx, err := f.db.Begin(true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if r := f.applyInTx(tx, f.failed[:f.failedAnswered], nil, nil); r.err != nil {
		return r.err
	}
	return fn(tx)
}

// idemAbsent reports that fsm.db holds no idempotency record of key, from
// the locator alone (idemLocator.mayHold), under the lock that keeps a
// restore or a shred from reopening fsm.db (and reloading the locator)
// meanwhile. ErrClosed when fsm.db is not open.
func (f *fsm) idemAbsent(key string) (bool, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return false, ErrClosed
	}
	return !f.idem.mayHold(key), nil
}

// peek runs fn, a brief read (point lookups, or one bounded page of a list:
// fn must not walk a whole bucket), on every log applied so far without
// committing them: in the open transaction, under pendMu (the FSM goroutine
// waits meanwhile, for less than a commit would hold it), or in a read
// transaction when nothing is pending. A write fault falls back to view's
// rules. fn must not write nor keep anything it read past its return.
func (f *fsm) peek(fn func(tx *bolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return ErrClosed
	}
	if f.dirty() {
		f.pendMu.Lock()
		if p := f.pend; p != nil && len(f.failed) == 0 {
			defer f.pendMu.Unlock()
			return fn(p.tx)
		}
		f.pendMu.Unlock()
		if err := f.flush(); err != nil {
			return f.viewFailed(fn)
		}
	}
	return f.db.View(fn)
}

// providersChanged moves providersVer on: called after provider records were
// written into the open transaction (with pendMu held, so a reader that sees
// the new version and then reads waits for the apply and sees its writes),
// when a rollback takes writes back, and when a snapshot replaces the db.
func (f *fsm) providersChanged() { f.providersVer.Add(1) }
