package storage

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// tailZeroed waits until the zero-ahead has zeroed want bytes past the tail
// segment's end (or the segment's maxBytes) and returns the tail's size and
// zeroed end, read under the writers' lock.
func tailZeroed(t *testing.T, ls *LogStore, want int64) (size, zeroed int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ls.log.wmu.Lock()
		g := ls.log.segs[len(ls.log.segs)-1]
		size, zeroed = g.size, g.zeroed
		limit := ls.log.maxBytes
		ls.log.wmu.Unlock()
		if zeroed-size >= want || (zeroed >= limit && zeroed > size) {
			return size, zeroed
		}
		if time.Now().After(deadline) {
			t.Fatalf("zero-ahead: size %d, zeroed %d after 10s, want %d past the end", size, zeroed, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// zeroedLog opens a log in a new dir, appends entries 1..last and waits for
// the zero-ahead past them; it returns the dir, the log and the tail's size
// and zeroed end.
func zeroedLog(t *testing.T, last uint64) (dir string, ls *LogStore, size, zeroed int64) {
	t.Helper()
	dir = t.TempDir()
	ls = openTestLog(t, dir)
	if err := ls.StoreLogs(testEntries(1, last)); err != nil {
		t.Fatal(err)
	}
	size, zeroed = tailZeroed(t, ls, zeroAhead)
	return dir, ls, size, zeroed
}

// setMaxBytes sets the size at which ls's log starts a new segment, under
// the writers' lock (the zero-ahead reads it).
func setMaxBytes(ls *LogStore, n int64) {
	ls.log.wmu.Lock()
	ls.log.maxBytes = n
	ls.log.wmu.Unlock()
}

// checkZeroTail asserts what every path that cuts or rewrites the tail must
// keep: past the tail segment's last record the file holds only zeros, up to
// the zero-ahead's end and no further. Read under the writers' lock, so the
// zero-ahead does not move it meanwhile.
func checkZeroTail(t *testing.T, ls *LogStore) {
	t.Helper()
	ls.log.wmu.Lock()
	defer ls.log.wmu.Unlock()
	g := ls.log.segs[len(ls.log.segs)-1]
	data, err := os.ReadFile(g.path)
	if err != nil {
		t.Fatal(err)
	}
	if want := max(g.size, g.zeroed); int64(len(data)) != want {
		t.Fatalf("file is %d bytes, last record ends at %d, zeroed to %d", len(data), g.size, g.zeroed)
	}
	if !allZero(data[g.size:]) {
		t.Fatal("bytes past the last record are not zeros")
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestSegmentLog_AppendsGoIntoZeroAhead: the tail segment is kept written
// with zeros zeroAhead past its last record; an append lands in them without
// growing the file, a reopen takes them for the end of the log (nothing cut,
// nothing logged as torn) and appends into them again.
func TestSegmentLog_AppendsGoIntoZeroAhead(t *testing.T) {
	dir, ls, size, zeroed := zeroedLog(t, 10)
	p := lastSegPath(t, dir)
	if got := fileSize(t, p); got != zeroed {
		t.Fatalf("file size %d, zeroed to %d", got, zeroed)
	}
	data, _ := os.ReadFile(p)
	if !allZero(data[size:]) {
		t.Fatal("bytes past the last record are not zeros")
	}
	if err := ls.StoreLogs(testEntries(11, 20)); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, p); got < zeroed {
		t.Fatalf("file shrank to %d", got)
	}
	ls.Close()
	grown := fileSize(t, p)
	ls = openTestLog(t, dir)
	checkLog(t, ls, 1, 20)
	if got := fileSize(t, p); got != grown {
		t.Fatalf("reopen changed the file from %d to %d bytes: the zero tail was cut", grown, got)
	}
	before := fileSize(t, p)
	if err := ls.StoreLogs(testEntries(21, 21)); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, p); got != before {
		t.Fatalf("an append after reopen grew the file from %d to %d: it did not go into the zeros", before, got)
	}
	ls = reopen(t, ls, dir, 1, 21)
}

// TestSegmentLog_ZeroAheadStopsAtMaxBytes: no zeros past the size at which
// the next segment starts; the full segment keeps none past its records.
func TestSegmentLog_ZeroAheadStopsAtMaxBytes(t *testing.T) {
	dir := t.TempDir()
	ls := openTestLog(t, dir)
	setMaxBytes(ls, 4000)
	if err := ls.StoreLogs(testEntries(1, 3)); err != nil {
		t.Fatal(err)
	}
	_, zeroed := tailZeroed(t, ls, zeroAhead)
	if zeroed != 4000 {
		t.Fatalf("zeroed to %d, want maxBytes 4000", zeroed)
	}
	for i := uint64(4); i <= 200; i++ {
		if err := ls.StoreLogs(testEntries(i, i)); err != nil {
			t.Fatal(err)
		}
	}
	names := segFiles(t, dir)
	if len(names) < 2 {
		t.Fatalf("%d segments, want a rotation", len(names))
	}
	ls = reopen(t, ls, dir, 1, 200) // every segment but the last ends at its last record
}

// TestSegmentLog_CutTailDropsZeroAhead: a conflict cut (DeleteRange from the
// tail) truncates the file at the cut, zeros included; the zero-ahead then
// starts again from the new end, and the log reads back whole.
func TestSegmentLog_CutTailDropsZeroAhead(t *testing.T) {
	dir, ls, _, _ := zeroedLog(t, 10)
	if err := ls.DeleteRange(6, 10); err != nil {
		t.Fatal(err)
	}
	ls.log.wmu.Lock()
	g := ls.log.segs[len(ls.log.segs)-1]
	cut, zeroed := g.size, g.zeroed
	ls.log.wmu.Unlock()
	if zeroed > cut {
		t.Fatalf("zeroed %d past the cut at %d", zeroed, cut)
	}
	if got := fileSize(t, lastSegPath(t, dir)); got != cut {
		t.Fatalf("file is %d bytes after the cut at %d", got, cut)
	}
	if err := ls.StoreLogs(testEntries(6, 8)); err != nil {
		t.Fatal(err)
	}
	tailZeroed(t, ls, zeroAhead)
	ls = reopen(t, ls, dir, 1, 8)
}

// TestSegmentLog_NoZeroAheadWithoutSync: a log that never fsyncs (the
// failpoint, the migration's scratch log) writes no zeros ahead.
func TestSegmentLog_NoZeroAheadWithoutSync(t *testing.T) {
	dir := t.TempDir()
	l, err := openSegLog(dir, true, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.StoreLogs(testEntries(1, 5), false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	l.wmu.Lock()
	g := l.segs[0]
	size, zeroed := g.size, g.zeroed
	l.wmu.Unlock()
	if zeroed > size {
		t.Fatalf("zeroed to %d past %d without fsync", zeroed, size)
	}
}

// TestSegmentLog_RotationCutsZeroAhead: a segment left behind by a rotation
// ends at its last record even when its zero-ahead reached past maxBytes (a
// release with a smaller segment size): Open refuses an older segment with
// bytes past its records.
func TestSegmentLog_RotationCutsZeroAhead(t *testing.T) {
	dir, ls, _, _ := zeroedLog(t, 10)
	old := lastSegPath(t, dir)
	ls.log.wmu.Lock()
	end := ls.log.segs[0].size
	ls.log.wmu.Unlock()
	setMaxBytes(ls, 1)
	if err := ls.StoreLogs(testEntries(11, 12)); err != nil {
		t.Fatal(err)
	}
	if len(segFiles(t, dir)) != 2 {
		t.Fatal("no rotation")
	}
	if got := fileSize(t, old); got != end {
		t.Fatalf("the older segment is %d bytes, its last record ends at %d", got, end)
	}
	ls = reopen(t, ls, dir, 1, 12)
}

// TestSegmentLog_FailedAppendCutKeepsZeroTail: the cut of a failed append
// (dirtyTail) truncates the zeros with it and the zero-ahead starts again.
func TestSegmentLog_FailedAppendCutKeepsZeroTail(t *testing.T) {
	dir, ls, _, _ := zeroedLog(t, 10)
	ls.log.wmu.Lock()
	g := ls.log.segs[len(ls.log.segs)-1]
	rw := g.f
	ro, err := os.Open(g.path) // read-only: the append fails
	if err != nil {
		t.Fatal(err)
	}
	g.f = ro
	ls.log.wmu.Unlock()
	if err := ls.StoreLogs(testEntries(11, 11)); err == nil {
		t.Fatal("an append through a read-only file succeeded")
	}
	ls.log.wmu.Lock()
	g.f = rw
	ls.log.wmu.Unlock()
	_ = ro.Close()
	if err := ls.StoreLogs(testEntries(11, 11)); err != nil {
		t.Fatal(err)
	}
	checkZeroTail(t, ls)
	ls = reopen(t, ls, dir, 1, 11)
}

// TestSegmentLog_RewriteOfTailKeepsZeroTail: a shred's rewrite of the tail
// segment copies its records only; the zero-ahead then starts again.
func TestSegmentLog_RewriteOfTailKeepsZeroTail(t *testing.T) {
	dir, ls, _, _ := zeroedLog(t, 30)
	if err := ls.DeleteRange(1, 20); err != nil {
		t.Fatal(err)
	}
	if err := ls.log.rewrite(); err != nil {
		t.Fatal(err)
	}
	checkZeroTail(t, ls)
	if err := ls.StoreLogs(testEntries(31, 31)); err != nil {
		t.Fatal(err)
	}
	tailZeroed(t, ls, zeroAhead)
	checkZeroTail(t, ls)
	ls = reopen(t, ls, dir, 21, 31)
}

// TestSegmentLog_CloseStopsZeroAhead: Close ends the zero-ahead's goroutine.
func TestSegmentLog_CloseStopsZeroAhead(t *testing.T) {
	dir := t.TempDir()
	ls := openTestLog(t, dir)
	if err := ls.StoreLogs(testEntries(1, 10)); err != nil {
		t.Fatal(err)
	}
	ls.Close()
	select {
	case <-ls.log.zeroDone:
	default:
		t.Fatal("the zero-ahead still runs after Close")
	}
}

// TestSegmentLog_ZerosInOlderSegmentRefused: only the last segment may end
// in zeros (a rotation cuts them); zeros past an older segment's last record
// are damage, and Open refuses the log rather than guess.
func TestSegmentLog_ZerosInOlderSegmentRefused(t *testing.T) {
	dir := t.TempDir()
	ls := openTestLog(t, dir)
	setMaxBytes(ls, 200) // a few entries per segment
	for i := uint64(1); i <= 12; i++ {
		if err := ls.StoreLogs(testEntries(i, i)); err != nil {
			t.Fatal(err)
		}
	}
	ls.Close()
	names := segFiles(t, dir)
	if len(names) < 2 {
		t.Fatalf("%d segments, want several", len(names))
	}
	p := filepath.Join(dir, RaftLogDir, names[0])
	data, _ := os.ReadFile(p)
	if err := os.WriteFile(p, append(data, make([]byte, 4096)...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := openLogStore(filepath.Join(dir, RaftFile), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !errors.Is(err, ErrLogCorrupt) {
		t.Fatalf("open = %v, want ErrLogCorrupt", err)
	}
}
