package storage

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Leader appends that fdatasync in the background (storage/DESIGN.md,
// "Leader appends"). hashicorp/raft's leader stores its new entries
// (dispatchLogs → StoreLogs) before it wakes the replicators, so with an
// fdatasync inside StoreLogs a commit waited for the leader's fdatasync, then
// the round trip and a follower's fdatasync. etcd's leader writes its WAL while
// the entries are on their way; so does this log now: a leader's append is
// written (readable by the replicators at once) and a background goroutine
// (syncLoop) fdatasyncs it. durable is the last index known to be on the disk.
//
// raft counts the leader's own copy as soon as StoreLogs returns, so raft's
// commit index may pass durable: an entry can be "committed" while only a
// follower holds it on disk. Nothing acts on it before durable reaches it:
//   - the FSM applies a batch only once durable covers it (fsm.ApplyBatch
//     waits for it), so no answer, read or snapshot sees it;
//   - the leader tells followers a commit index no higher than durable
//     (commitCap, on every outgoing AppendEntries), so no follower applies it.
//
// Once durable covers an entry, the leader and the followers that acked it
// hold it on disk: a majority, as raft's safety argument requires. A power cut
// before that loses at most entries nothing has applied or answered.
//
// Only a leader's appends of its own term defer their fdatasync, and only
// while no AppendEntries of that term or a later one has come in (fence): a
// follower's append, and every append after this server heard of another
// leader, is durable before StoreLogs returns, as before, so a follower
// never acks what is not on its disk. fence flushes what is pending before
// raft sees such a request: a leader stepping down acks nothing it has not
// fdatasynced.
//
// Locks: wmu (writers) before syncing (held by syncLoop across its
// fdatasync, and by every writer that fdatasyncs, cuts, removes, renames or
// closes a segment, so no fdatasync runs on a file being changed) before smu
// (the counters below, held briefly). An append that defers takes wmu and
// smu, never syncing: it waits for no fdatasync in progress, except the
// zero-ahead's (which holds wmu, as before deferred appends).
type asyncLog struct {
	syncing sync.Mutex
	smu     sync.Mutex
	// unsynced is the segment holding deferred bytes not yet fdatasynced
	// (nil: none) and written the last index they reach. durable is the last
	// index on the disk (read without a lock; written under smu, which also
	// guards the rest). durCh is closed (and replaced) when durable rises
	// or the log breaks.
	unsynced *segment
	written  uint64
	durable  atomic.Uint64
	durCh    chan struct{}
	// broken is the error of a failed fdatasync of deferred appends: what it
	// covered may not be on the disk, and this process cannot learn which of
	// it is (a retried fdatasync may report success for pages the kernel
	// dropped), so the log takes no write until the process restarts and
	// rescans the files. Set once.
	broken atomic.Pointer[error]
	// fenceTerm is the highest term of an AppendEntries this server has
	// received: appends of that term or older are durable on return.
	fenceTerm atomic.Uint64
	// fdatasync is durable.Fdatasync; tests replace it to make one fail.
	fdatasync func(*os.File) error

	syncKick chan struct{} // buffered 1
	syncStop chan struct{}
	syncDone chan struct{}
}

// ErrLogBroken wraps the error of a background fdatasync of the Raft log:
// the log takes no write until the process restarts (see asyncLog.broken).
var ErrLogBroken = fmt.Errorf("%w: raft log fdatasync failed; restart the node to rescan its log", ErrStorageUnavailable)

// startAsync sets durable to the log's last index (every record on the disk:
// openSegLog fdatasyncs the last segment) and, unless the log never syncs,
// starts syncLoop.
func (l *segLog) startAsync() {
	l.durable.Store(l.last)
	l.durCh = make(chan struct{})
	l.syncKick = make(chan struct{}, 1)
	l.syncStop, l.syncDone = make(chan struct{}), make(chan struct{})
	if l.noSync {
		close(l.syncDone)
		return
	}
	go l.syncLoop()
}

// stopAsync stops syncLoop and waits for it.
func (l *segLog) stopAsync() {
	select {
	case <-l.syncStop:
	default:
		close(l.syncStop)
	}
	<-l.syncDone
}

// mayDefer reports whether an append of logs may return before its
// fdatasync: the caller is the leader (leader), the entries are of a term
// no AppendEntries has come in for (fence), they are commands (nothing acts
// on them but the FSM, which waits), and the log syncs at all. wmu held.
func (l *segLog) mayDefer(logs []*raft.Log, leader bool) bool {
	if !leader || l.noSync || logs[0].Term <= l.fenceTerm.Load() {
		return false
	}
	for _, e := range logs {
		if e.Type != raft.LogCommand {
			// raft acts on the commit of the others outside the FSM (a
			// configuration's lets the next membership change start, a new
			// leader's no-op the first one; a batch of barriers alone is
			// answered without the FSM): they are durable on the leader,
			// with everything before them, before raft counts its copy.
			return false
		}
	}
	return true
}

// deferred records an append of the tail segment g up to index last whose
// fdatasync is left to syncLoop, and wakes it. wmu held.
func (l *segLog) deferred(g *segment, last uint64) {
	l.smu.Lock()
	l.unsynced, l.written = g, last
	l.smu.Unlock()
	select {
	case l.syncKick <- struct{}{}:
	default:
	}
}

// syncLoop fdatasyncs deferred appends, many at a time when they come faster
// than an fdatasync.
func (l *segLog) syncLoop() {
	defer close(l.syncDone)
	for {
		select {
		case <-l.syncStop:
			return
		case <-l.syncKick:
		}
		l.syncing.Lock()
		l.smu.Lock()
		g, target := l.unsynced, l.written
		l.unsynced = nil
		l.smu.Unlock()
		var err error
		if g != nil {
			err = l.fdatasync(g.f)
			l.smu.Lock()
			if err != nil {
				l.breakLocked(g, err)
			} else {
				l.advanceLocked(target)
			}
			l.smu.Unlock()
		}
		l.syncing.Unlock()
		if err != nil {
			l.wmu.Lock()
			l.syncing.Lock()
			l.dropUndurableLocked()
			l.syncing.Unlock()
			l.wmu.Unlock()
		}
	}
}

// setDurableLocked sets durable to idx and wakes the waiters if it rose
// (smu held).
func (l *segLog) setDurableLocked(idx uint64) {
	if l.durable.Swap(idx) < idx {
		close(l.durCh)
		l.durCh = make(chan struct{})
	}
}

// advanceLocked raises durable to idx (smu held).
func (l *segLog) advanceLocked(idx uint64) {
	if idx > l.durable.Load() {
		l.setDurableLocked(idx)
	}
}

// breakLocked latches the failure err of g's fdatasync as broken (smu
// held). The caller then drops what the fdatasync may not have written
// (dropUndurableLocked).
func (l *segLog) breakLocked(g *segment, err error) {
	if l.broken.Load() != nil {
		return
	}
	l.logger.Error("raft log: fdatasync of deferred appends failed; the node takes no log write until it restarts",
		"segment", g.path, "durable", l.durable.Load(), "written", l.written, "err", err.Error())
	broken := fmt.Errorf("%w: %w", ErrLogBroken, err)
	l.broken.Store(&broken)
	close(l.durCh)
	l.durCh = make(chan struct{})
}

// brokenErr returns the failure that broke the log, if any.
func (l *segLog) brokenErr() error {
	if p := l.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// flushLocked makes every deferred append durable: callers hold wmu and
// syncing and are about to fdatasync, cut, remove, rename or close a segment,
// or to append with an fdatasync of their own; they call synced once the
// log's files hold every record durably. A failure breaks the log.
func (l *segLog) flushLocked() error {
	if err := l.brokenErr(); err != nil {
		return err
	}
	l.smu.Lock()
	g, target := l.unsynced, l.written
	l.smu.Unlock()
	if g == nil {
		return nil
	}
	err := l.fdatasync(g.f)
	l.smu.Lock()
	if err != nil {
		l.breakLocked(g, err)
		l.smu.Unlock()
		err = l.brokenErr()
		l.dropUndurableLocked()
		return err
	}
	if l.unsynced == g {
		l.unsynced = nil
	}
	l.advanceLocked(target)
	l.smu.Unlock()
	return nil
}

// dropUndurableLocked cuts the tail segment back to the end of the last
// durable record once the log broke (wmu and syncing held). The records past
// it may be on the disk or not; the kernel keeps them readable in its page
// cache either way, and a later fdatasync (Open's, after a restart) would
// report success for them, so a restarted process would take them for
// durable. The cut (ftruncate) drops them from the cache and the file; the
// log's index follows, and raft, which still counts them, finds them gone
// (the log takes no more writes until the restart).
func (l *segLog) dropUndurableLocked() {
	d := l.durable.Load()
	if len(l.segs) == 0 {
		return
	}
	g := l.segs[len(l.segs)-1]
	if d >= g.last() {
		return
	}
	k := uint64(0)
	if d >= g.first {
		k = d + 1 - g.first
	}
	cut := g.offs[k]
	l.mu.Lock() // the index first: no reader finds a record past the cut
	g.offs = g.offs[:k]
	g.size, g.zeroed = cut, 0
	l.last = g.first + k - 1
	if l.last < l.first || (k == 0 && len(l.segs) == 1) {
		l.first, l.last = 0, 0 // no record left
	}
	l.mu.Unlock()
	err := g.f.Truncate(cut)
	if err == nil {
		err = l.fdatasync(g.f)
	}
	if err != nil {
		l.logger.Error("raft log: cutting the records a failed fdatasync may not have written failed; reboot the machine before restarting the node",
			"segment", g.path, "offset", cut, "err", err.Error())
	}
	l.smu.Lock()
	l.unsynced = nil
	l.smu.Unlock()
}

// synced records that every record up to last, the log's last, is on the
// disk (wmu and syncing held; nothing deferred is pending: the caller
// flushed first). last may be lower than durable after a cut.
func (l *segLog) synced(last uint64) {
	l.smu.Lock()
	defer l.smu.Unlock()
	l.setDurableLocked(last)
}

// lowered records a cut of the log to last that may not be durable (a failed
// cut or removal): durable goes no higher than last. wmu and syncing held.
func (l *segLog) lowered(last uint64) {
	l.smu.Lock()
	defer l.smu.Unlock()
	if l.durable.Load() > last {
		l.setDurableLocked(last)
	}
}

// durableIndex is the last index known to be on the disk.
func (l *segLog) durableIndex() uint64 { return l.durable.Load() }

// waitDurable returns once durable reaches idx, or the log broke (its error),
// or stop closed (errStopped).
func (l *segLog) waitDurable(idx uint64, stop <-chan struct{}) error {
	for {
		if l.durable.Load() >= idx {
			return nil
		}
		l.smu.Lock()
		ch := l.durCh
		l.smu.Unlock()
		// Checked after taking ch: a rise or a break since closed it.
		switch {
		case l.durable.Load() >= idx:
			return nil
		case l.brokenErr() != nil:
			return l.brokenErr()
		}
		select {
		case <-ch:
		case <-stop:
			return errStopped
		}
	}
}

// errStopped: waitDurable gave up because the store is closing.
var errStopped = fmt.Errorf("%w: closing", ErrClosed)

// fence notes an incoming AppendEntries of term: from now on an append of
// that term or older is durable on return, and what a deferred append left
// pending is made durable before fence returns (raft may ack it once it
// processes the request). Cheap when term raises nothing.
func (l *segLog) fence(term uint64) error {
	if err := l.brokenErr(); err != nil {
		return err
	}
	for {
		cur := l.fenceTerm.Load()
		if term <= cur {
			return nil
		}
		if l.fenceTerm.CompareAndSwap(cur, term) {
			break
		}
	}
	// An append that decided to defer before the fence holds wmu until it
	// recorded itself: take wmu to flush it too.
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.syncing.Lock()
	defer l.syncing.Unlock()
	return l.flushLocked()
}
