package storage

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/barberpro/edge/simulations/lazyfs/lazyfstest"
)

// termEntries returns entries from..to of term.
func termEntries(from, to, term uint64) []*raft.Log {
	out := testEntries(from, to)
	for _, e := range out {
		e.Term = term
	}
	return out
}

// heldSync makes a log's fdatasyncs wait until release (then fail with fail,
// if set, or run); calls counts them.
type heldSync struct {
	gate  chan struct{}
	once  sync.Once
	calls atomic.Int32
}

// holdSync holds l's fdatasyncs (a heldSync). It turns the zero-ahead off
// first (waiting out a step in flight): its
// fdatasync runs under the writers' lock, so a held one there would stall
// every append, the test's included, until a release the test never reaches
// (TestSegmentLog_ZeroAheadSyncsDeferred covers the zero-ahead's fdatasync).
func holdSync(t *testing.T, l *segLog, fail error) *heldSync {
	t.Helper()
	h := &heldSync{gate: make(chan struct{})}
	noZeroAhead(l)
	l.syncing.Lock() // every reader of fdatasync holds syncing
	real := l.fdatasync
	l.fdatasync = func(f *os.File) error {
		h.calls.Add(1)
		<-h.gate
		if fail != nil {
			return fail
		}
		return real(f)
	}
	l.syncing.Unlock()
	t.Cleanup(h.release)
	return h
}

func (h *heldSync) release() { h.once.Do(func() { close(h.gate) }) }

func openAsyncTestLog(t *testing.T) *segLog {
	t.Helper()
	l, err := openSegLog(t.TempDir(), false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	noZeroAhead(l)
	return l
}

// noZeroAhead turns l's zero-ahead off; taking the writers' lock waits for a
// step in flight, and a step after it does nothing (no zeros, no fdatasync).
func noZeroAhead(l *segLog) {
	l.wmu.Lock()
	l.zeroAhead = 0
	l.wmu.Unlock()
}

// within runs fn in a goroutine and returns its error, failing the test if
// it takes longer than d.
func within(t *testing.T, d time.Duration, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		return nil
	}
}

// notWithin starts fn and checks that it has not returned after d; the
// returned func waits for its error (failing the test past 5 s), to call
// once what held it is released.
func notWithin(t *testing.T, d time.Duration, what string, fn func() error) func() error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		t.Fatalf("%s returned (%v) while the fdatasync was held", what, err)
	case <-time.After(d):
	}
	return func() error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not return within 5s of the release", what)
			return nil
		}
	}
}

// deferHeld holds l's fdatasyncs and appends entries as the leader: the
// append must return at once, leaving durable where it was.
func deferHeld(t *testing.T, l *segLog, entries []*raft.Log) *heldSync {
	t.Helper()
	before := l.durableIndex()
	h := holdSync(t, l, nil)
	if err := within(t, 5*time.Second, "a leader's StoreLogs", func() error { return l.StoreLogs(entries, true) }); err != nil {
		t.Fatal(err)
	}
	wantDurable(t, l, before, "before the leader's fdatasync ran")
	return h
}

// wantDurable fails the test unless l's durable index is want.
func wantDurable(t *testing.T, l *segLog, want uint64, when string) {
	t.Helper()
	if d := l.durableIndex(); d != want {
		t.Fatalf("durable %s = %d, want %d", when, d, want)
	}
}

// A leader's append returns before its fdatasync, readable at once; durable
// reaches it only when the fdatasync has run. A follower's append is durable
// on return.
func TestSegmentLog_LeaderAppendReturnsBeforeItsFdatasync(t *testing.T) {
	l := openAsyncTestLog(t)
	if err := l.StoreLogs(termEntries(1, 3, 1), false); err != nil {
		t.Fatal(err)
	}
	wantDurable(t, l, 3, "after a follower's append")
	h := deferHeld(t, l, termEntries(4, 6, 2))
	var got raft.Log
	if err := l.GetLog(6, &got); err != nil || got.Term != 2 {
		t.Fatalf("GetLog(6) before the fdatasync = %+v, %v", got, err)
	}
	stop := make(chan struct{})
	waited := notWithin(t, 100*time.Millisecond, "waitDurable(6)", func() error { return l.waitDurable(6, stop) })
	h.release()
	if err := waited(); err != nil {
		t.Fatal(err)
	}
	wantDurable(t, l, 6, "after the fdatasync")
	// waitDurable gives up when told to.
	close(stop)
	if err := l.waitDurable(7, stop); !errors.Is(err, ErrClosed) {
		t.Fatalf("waitDurable past the log with stop closed = %v, want ErrClosed", err)
	}
}

// An AppendEntries of the leader's term or a later one (fence) makes what is
// pending durable before fence returns, and every later append of that term
// durable before StoreLogs returns; a later term of its own defers again.
func TestSegmentLog_FenceFlushesAndStopsDeferring(t *testing.T) {
	l := openAsyncTestLog(t)
	if err := l.StoreLogs(termEntries(1, 1, 2), false); err != nil {
		t.Fatal(err) // an empty log's first append creates a segment: never deferred
	}
	h := deferHeld(t, l, termEntries(2, 2, 3))
	fenced := notWithin(t, 100*time.Millisecond, "fence(3)", func() error { return l.fence(3) })
	h.release()
	if err := fenced(); err != nil {
		t.Fatal(err)
	}
	wantDurable(t, l, 2, "after fence")
	if err := within(t, time.Second, "fence(2)", func() error { return l.fence(2) }); err != nil {
		t.Fatal(err)
	}

	h = holdSync(t, l, nil)
	stored := notWithin(t, 100*time.Millisecond, "StoreLogs of the fenced term", func() error {
		return l.StoreLogs(termEntries(3, 3, 3), true)
	})
	h.release()
	if err := stored(); err != nil {
		t.Fatal(err)
	}
	wantDurable(t, l, 3, "after an append of the fenced term")

	h = deferHeld(t, l, termEntries(4, 4, 4)) // a new term of its own
	h.release()
	if err := l.waitDurable(4, nil); err != nil {
		t.Fatal(err)
	}
}

// A cut of the tail while a deferred append is pending waits for its
// fdatasync and leaves durable at the cut; a compaction leaves it alone.
func TestSegmentLog_CutLowersDurable(t *testing.T) {
	l := openAsyncTestLog(t)
	if err := l.StoreLogs(termEntries(1, 1, 1), false); err != nil {
		t.Fatal(err)
	}
	h := deferHeld(t, l, termEntries(2, 10, 1))
	cut := notWithin(t, 100*time.Millisecond, "DeleteRange(6, 10)", func() error { return l.DeleteRange(6, 10) })
	h.release()
	if err := cut(); err != nil {
		t.Fatal(err)
	}
	if _, last := l.bounds(); last != 5 || l.durableIndex() != 5 {
		t.Fatalf("after the cut: last %d, durable %d; want 5, 5", last, l.durableIndex())
	}
	if err := l.StoreLogs(termEntries(6, 7, 2), true); err != nil {
		t.Fatal(err)
	}
	if err := within(t, 5*time.Second, "waitDurable(7)", func() error { return l.waitDurable(7, nil) }); err != nil {
		t.Fatal(err)
	}
	// Compaction of the whole log (a shred's snapshot, TrailingLogs 0)
	// leaves durable where it was: the entries are in a snapshot, and a
	// leader's commit index must still reach its followers.
	if err := l.DeleteRange(1, 7); err != nil {
		t.Fatal(err)
	}
	if first, last := l.bounds(); first != 0 || last != 0 || l.durableIndex() != 7 {
		t.Fatalf("after compacting the whole log: bounds %d..%d, durable %d; want 0..0, 7", first, last, l.durableIndex())
	}
}

// A background fdatasync that fails breaks the log: its waiters, appends,
// cuts and fences fail with ErrLogBroken (an ErrStorageUnavailable), and the
// LogStore reports it as its write fault, until the process restarts.
func TestLogStore_BackgroundFdatasyncFailureBreaksTheLog(t *testing.T) {
	dir := t.TempDir()
	ls := openTestLog(t, dir)
	leading := func() bool { return true }
	ls.leading.Store(&leading)
	if err := ls.StoreLogs(termEntries(1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	h := holdSync(t, ls.log, errInjected)
	if err := ls.StoreLogs(termEntries(3, 4, 1)); err != nil {
		t.Fatal(err)
	}
	h.release()
	err := within(t, 5*time.Second, "waitDurable(4)", func() error { return ls.log.waitDurable(4, nil) })
	if !errors.Is(err, ErrLogBroken) || !errors.Is(err, errInjected) || !errors.Is(err, ErrStorageUnavailable) {
		t.Fatalf("waitDurable after a failed background fdatasync = %v", err)
	}
	if d := ls.DurableIndex(); d != 2 {
		t.Fatalf("durable = %d, want 2", d)
	}
	for what, err := range map[string]error{
		"StoreLogs":   ls.StoreLogs(termEntries(5, 5, 1)),
		"DeleteRange": ls.DeleteRange(4, 4),
		"fence":       ls.log.fence(9),
		"WriteFault":  ls.WriteFault(),
	} {
		if !errors.Is(err, ErrLogBroken) {
			t.Errorf("%s on a broken log = %v, want ErrLogBroken", what, err)
		}
	}
	ls.clearFault() // the write probe cannot clear it
	if err := ls.WriteFault(); !errors.Is(err, ErrLogBroken) {
		t.Errorf("WriteFault after clearFault = %v, want ErrLogBroken", err)
	}
	// The records the failed fdatasync covered are cut from the file (and
	// so from the page cache, which still held them): a restarted process
	// reads only what was durable, not what the cache kept. The cut follows
	// the break (syncLoop takes the writers' lock for it once it has let go
	// of syncing), so waiters may wake before it.
	_ = within(t, 5*time.Second, "the cut back to the durable index", func() error {
		for _, last := ls.log.bounds(); last != 2; _, last = ls.log.bounds() {
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	// A cut record is not "not found": raft would send its snapshot instead.
	var got raft.Log
	if err := ls.GetLog(4, &got); !errors.Is(err, ErrLogBroken) {
		t.Errorf("GetLog of a cut record = %v, want ErrLogBroken", err)
	}
	_ = ls.Close()
	ls = openTestLog(t, dir)
	if last, err := ls.LastIndex(); err != nil || last != 2 {
		t.Fatalf("reopened after the failure: last index %d, %v; want 2", last, err)
	}
}

// A log reopened after a leader's deferred appends (Close flushed them)
// counts every record durable (startAsync). What Open's own fdatasync adds,
// after a crash that left records unsynced in the page cache, needs a page
// cache that loses writes: TestSegmentLog_OpenMakesWhatACrashLeftDurable.
func TestSegmentLog_ReopenCountsEveryRecordDurable(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := openSegLog(dir, false, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StoreLogs(termEntries(1, 4, 2), true); err != nil {
		t.Fatal(err)
	}
	l = reopenSegLog(t, l, dir)
	wantDurable(t, l, 4, "after reopening")
}

// reopenSegLog closes l, the log of dir, and opens it again (closed at
// cleanup).
func reopenSegLog(t *testing.T, l *segLog, dir string) *segLog {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := openSegLog(dir, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// The zero-ahead's fdatasync covers deferred appends in the same file: if it
// succeeds they are durable; if it fails the failure is theirs (a writeback
// error is reported to one fdatasync only) and the log breaks, cut back to
// what was durable, instead of the zero-ahead logging it and the next
// fdatasync reporting success for records the disk may not hold.
func TestSegmentLog_ZeroAheadSyncsDeferred(t *testing.T) {
	for _, fail := range []bool{false, true} {
		l := openAsyncTestLog(t)
		if err := l.StoreLogs(termEntries(1, 1, 1), false); err != nil {
			t.Fatal(err)
		}
		l.stopAsync() // the zero-ahead alone fdatasyncs what follows
		l.syncing.Lock()
		real := l.fdatasync
		l.fdatasync = func(f *os.File) error {
			if fail {
				return errInjected
			}
			return real(f)
		}
		l.syncing.Unlock()
		if err := l.StoreLogs(termEntries(2, 3, 2), true); err != nil {
			t.Fatal(err)
		}
		l.wmu.Lock()
		l.zeroAhead = zeroChunk
		l.wmu.Unlock()
		if _, err := l.zeroStep(); err != nil {
			t.Fatalf("fail=%v: zeroStep = %v", fail, err)
		}
		_, last := l.bounds()
		switch broken := l.brokenErr(); {
		case !fail && (broken != nil || l.durableIndex() != 3 || last != 3):
			t.Fatalf("zero-ahead's fdatasync succeeded: durable %d, last %d, broken %v; want 3, 3, nil", l.durableIndex(), last, broken)
		case fail && (!errors.Is(broken, ErrLogBroken) || l.durableIndex() != 1 || last != 1):
			t.Fatalf("zero-ahead's fdatasync failed: durable %d, last %d, broken %v; want 1, 1, ErrLogBroken", l.durableIndex(), last, broken)
		}
	}
}

// A zero-ahead step with nothing to zero fdatasyncs nothing, not even a
// deferred append pending in the same file: it runs under the writers' lock,
// so waiting for that fdatasync would hold up the leader's appends for no
// reason (and did hang a test whose held fdatasync it waited on).
func TestSegmentLog_ZeroAheadWithNothingToZeroSyncsNothing(t *testing.T) {
	l := openAsyncTestLog(t) // zero-ahead off: every step has nothing to zero
	if err := l.StoreLogs(termEntries(1, 1, 1), false); err != nil {
		t.Fatal(err)
	}
	h := deferHeld(t, l, termEntries(2, 3, 2))
	// The background fdatasync starts (and waits on the hold, holding
	// syncing): then any call the step makes is its own.
	_ = within(t, 5*time.Second, "the background fdatasync to start", func() error {
		for h.calls.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	calls := h.calls.Load()
	if err := within(t, 5*time.Second, "a zero-ahead step with nothing to zero", func() error {
		_, err := l.zeroStep()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := h.calls.Load(); got != calls {
		t.Fatalf("the step made %d fdatasync calls, want 0", got-calls)
	}
}

// A leader's configuration entry, no-op or barrier is durable before
// StoreLogs returns (raft acts on their commit itself, outside the FSM: the
// next membership change may start, a barrier is answered), and so is
// everything appended before it.
func TestSegmentLog_ConfigurationAndNoopAppendsAreNotDeferred(t *testing.T) {
	for _, typ := range []raft.LogType{raft.LogConfiguration, raft.LogNoop, raft.LogBarrier} {
		l := openAsyncTestLog(t)
		if err := l.StoreLogs(termEntries(1, 1, 1), false); err != nil {
			t.Fatal(err)
		}
		h := deferHeld(t, l, termEntries(2, 2, 2))
		entries := termEntries(3, 3, 2)
		entries[0].Type = typ
		stored := notWithin(t, 100*time.Millisecond, fmt.Sprintf("a leader's %v append", typ), func() error {
			return l.StoreLogs(entries, true)
		})
		h.release()
		if err := stored(); err != nil {
			t.Fatal(err)
		}
		wantDurable(t, l, 3, fmt.Sprintf("%v: after the append returned", typ))
	}
}

// Open fdatasyncs the last segment: a leader's deferred appends that the
// page cache held when the process died count as durable after a restart
// (startAsync), so they must be on the disk before anything acts on them. On
// a lazyfs mount (only fsynced data survives a power cut): a leader appends
// 2..4 with its fdatasync held, the process "dies" (the log is abandoned),
// a new one opens the log and the power is cut. The records must all be
// back. It fails without Open's fdatasync (the cut takes 2..4).
func TestSegmentLog_OpenMakesWhatACrashLeftDurable(t *testing.T) {
	d := lazyfstest.Mount(t)
	dir := d.Path("raft-log")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	crashed, err := openSegLog(dir, false, logger)
	if err != nil {
		t.Fatal(err)
	}
	noZeroAhead(crashed)
	if err := crashed.StoreLogs(termEntries(1, 1, 1), false); err != nil {
		t.Fatal(err)
	}
	deferHeld(t, crashed, termEntries(2, 4, 2)) // never released before the cut: the process died
	restarted, err := openSegLog(dir, false, logger)
	if err != nil {
		t.Fatal(err)
	}
	if _, last := restarted.bounds(); last != 4 {
		t.Fatalf("the restarted log ends at %d, want 4 (the page cache held 2..4)", last)
	}
	wantDurable(t, restarted, 4, "after the restart")
	if lost := d.Cut(t); lost.Bytes != 0 {
		t.Logf("the cut lost %+v", lost)
	}
	l, err := openSegLog(dir, false, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	if first, last := l.bounds(); first != 1 || last != 4 {
		t.Fatalf("after the power cut the log holds %d..%d, want 1..4: the restart counted records durable that were not", first, last)
	}
}
