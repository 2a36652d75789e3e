package storage

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/barberpro/edge/storage/disktest"
)

var errInjected = errors.New("injected fault")

// segmentedLog opens a log in dir holding entries 1..40 over several
// segments and returns it with its segment paths (oldest first).
func segmentedLog(t *testing.T, dir string) (*LogStore, []string) {
	t.Helper()
	ls := openTestLog(t, dir)
	setMaxBytes(ls, 200) // a few entries per segment
	for i := uint64(1); i <= 40; i += 2 {
		if err := ls.StoreLogs(testEntries(i, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	var paths []string
	for _, g := range ls.log.segs {
		paths = append(paths, g.path)
	}
	if len(paths) < 5 {
		t.Fatalf("%d segments, want rotation to several", len(paths))
	}
	return ls, paths
}

// failRemoving makes ls's segment log fail to remove path (every attempt).
func failRemoving(ls *LogStore, path string) {
	next := ls.log.remove
	ls.log.remove = func(p string) error {
		if p == path {
			return errInjected
		}
		return next(p)
	}
}

// segFirst returns the first index of the segment at path (the entries it
// holds start there: none was rewritten).
func segFirst(t *testing.T, ls *LogStore, path string) uint64 {
	t.Helper()
	for _, g := range ls.log.segs {
		if g.path == path {
			return g.first
		}
	}
	t.Fatalf("segment %s not in the index", filepath.Base(path))
	return 0
}

// TestSegmentLog_FailedHeadRemovalLeavesNoGap: a compaction whose removal of
// one old segment fails stops there (the oldest segments before it are gone,
// it and every later one stay): the files on disk stay contiguous, so the log
// still opens, and FirstIndex is the first entry the files hold. Removing
// later segments anyway left a gap that Open refuses (ErrLogCorrupt).
func TestSegmentLog_FailedHeadRemovalLeavesNoGap(t *testing.T) {
	dir := t.TempDir()
	ls, paths := segmentedLog(t, dir)
	stuck := paths[1]
	first := segFirst(t, ls, stuck)
	failRemoving(ls, stuck)
	if err := ls.DeleteRange(1, 30); !errors.Is(err, errInjected) {
		t.Fatalf("DeleteRange with a failing removal = %v, want the removal's error", err)
	}
	if got := segFiles(t, dir); !slices.Equal(got, segFilesOf(paths[1:])) {
		t.Fatalf("segments on disk %v, want %v (the oldest removed, the rest kept)", got, segFilesOf(paths[1:]))
	}
	checkLog(t, ls, first, 40)
	ls = reopen(t, ls, dir, first, 40)
	// Once the removal works, the compaction completes.
	if err := ls.DeleteRange(first, 30); err != nil {
		t.Fatal(err)
	}
	checkLog(t, ls, 31, 40)
	ls.Close()
	ls = openTestLog(t, dir)
	f, _ := ls.FirstIndex()
	if f > 31 || f <= first {
		t.Fatalf("first after reopen %d, want in %d..31", f, first+1)
	}
	checkLog(t, ls, f, 40)
}

// TestSegmentLog_FailedTailRemovalLeavesNoGap: a conflict truncation whose
// removal of one later segment fails stops there (the newest segments after
// it are gone, it and the older ones stay, uncut): the log still opens and
// holds what the files hold, and a retry completes the truncation.
func TestSegmentLog_FailedTailRemovalLeavesNoGap(t *testing.T) {
	dir := t.TempDir()
	ls, paths := segmentedLog(t, dir)
	n := len(paths)
	stuck := paths[n-2]
	cut := segFirst(t, ls, paths[1]) + 1 // inside the second segment
	last := segFirst(t, ls, paths[n-1]) - 1
	failRemoving(ls, stuck)
	if err := ls.DeleteRange(cut, 40); !errors.Is(err, errInjected) {
		t.Fatalf("DeleteRange with a failing removal = %v, want the removal's error", err)
	}
	if got := segFiles(t, dir); !slices.Equal(got, segFilesOf(paths[:n-1])) {
		t.Fatalf("segments on disk %v, want %v (the newest removed, the rest kept)", got, segFilesOf(paths[:n-1]))
	}
	checkLog(t, ls, 1, last)
	ls = reopen(t, ls, dir, 1, last)
	if err := ls.DeleteRange(cut, last); err != nil {
		t.Fatal(err)
	}
	checkLog(t, ls, 1, cut-1)
	if err := ls.StoreLogs(testEntries(cut, cut+3)); err != nil {
		t.Fatal(err)
	}
	reopen(t, ls, dir, 1, cut+3)
}

func segFilesOf(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, filepath.Base(p))
	}
	return out
}

// TestSegmentLog_RemovalsSyncedOneByOne: each segment removal is made durable
// (dir fsync) before the next one, so a power cut in the middle of a removal
// leaves contiguous files whatever order the file system persists unsynced
// directory changes in.
func TestSegmentLog_RemovalsSyncedOneByOne(t *testing.T) {
	ls, paths := segmentedLog(t, t.TempDir())
	var ops []string
	rm, sd := ls.log.remove, ls.log.syncDir
	ls.log.remove = func(p string) error { ops = append(ops, "rm "+filepath.Base(p)); return rm(p) }
	ls.log.syncDir = func(d string) error { ops = append(ops, "sync"); return sd(d) }
	first3 := segFirst(t, ls, paths[3])
	if err := ls.DeleteRange(1, first3-1); err != nil {
		t.Fatal(err)
	}
	want := []string{"rm " + filepath.Base(paths[0]), "sync", "rm " + filepath.Base(paths[1]), "sync",
		"rm " + filepath.Base(paths[2]), "sync"}
	if !slices.Equal(ops, want) {
		t.Fatalf("operations %q, want %q", ops, want)
	}
}

// TestSegmentLog_AppendWaitsForDurableDirectory: when the dir fsync after a
// directory change fails (a later segment removed by a conflict truncation,
// the oldest segment renamed over by a shred), no later append is
// acknowledged until the dir is fsynced: after a power cut the removed
// segment would come back overlapping the entries appended since (Open
// refuses: ErrLogCorrupt), or the renamed segment's old file would come back
// without them (acknowledged entries lost).
func TestSegmentLog_AppendWaitsForDurableDirectory(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, ls *LogStore) (next uint64)
	}{
		{"tail removal", func(t *testing.T, ls *LogStore) uint64 {
			cut := ls.log.segs[len(ls.log.segs)-1].first
			if err := ls.DeleteRange(cut, 40); !errors.Is(err, errInjected) {
				t.Fatalf("DeleteRange = %v, want the dir fsync's error", err)
			}
			return cut
		}},
		{"shred rewrite", func(t *testing.T, ls *LogStore) uint64 {
			if err := ls.DeleteRange(1, 5); err != nil {
				t.Fatal(err)
			}
			if err := ls.log.rewrite(); !errors.Is(err, errInjected) {
				t.Fatalf("rewrite = %v, want the dir fsync's error", err)
			}
			return 41
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ls := openTestLog(t, dir)
			setMaxBytes(ls, 200)
			for i := uint64(1); i <= 40; i += 2 {
				if err := ls.StoreLogs(testEntries(i, i+1)); err != nil {
					t.Fatal(err)
				}
			}
			sd := ls.log.syncDir
			failing := true
			ls.log.syncDir = func(d string) error {
				if failing {
					return errInjected
				}
				return sd(d)
			}
			setMaxBytes(ls, 1<<20) // appends go to the tail, no new segment
			next := tc.change(t, ls)
			if err := ls.StoreLogs(testEntries(next, next+1)); !errors.Is(err, errInjected) {
				t.Fatalf("append while the dir cannot be fsynced = %v, want the dir fsync's error", err)
			}
			failing = false
			if err := ls.StoreLogs(testEntries(next, next+1)); err != nil {
				t.Fatal(err)
			}
			f, _ := ls.FirstIndex()
			reopen(t, ls, dir, f, next+1)
		})
	}
}

// TestSegmentLog_FailedNewSegmentLeftoverRemovedFirst: a rotation that fails
// (here its dir fsync) and cannot remove the file it created leaves a
// segment outside the index. It is removed before the log is cut or
// appended to again: left there, it sorts after the tail, and once the tail
// is cut (conflict) and appended past its first index, Open refuses the
// overlap (ErrLogCorrupt).
func TestSegmentLog_FailedNewSegmentLeftoverRemovedFirst(t *testing.T) {
	dir := t.TempDir()
	ls, _ := segmentedLog(t, dir)
	leftover := filepath.Join(ls.log.dir, segName(41))
	rm, sd := ls.log.remove, ls.log.syncDir
	removeFails := true
	ls.log.remove = func(p string) error {
		if removeFails && p == leftover {
			return errInjected
		}
		return rm(p)
	}
	ls.log.syncDir = func(string) error { return errInjected }
	setMaxBytes(ls, 1) // the next append starts a segment
	if err := ls.StoreLogs(testEntries(41, 42)); !errors.Is(err, errInjected) {
		t.Fatalf("append with a failing new segment = %v, want the dir fsync's error", err)
	}
	ls.log.syncDir = sd
	setMaxBytes(ls, 1<<20)
	if err := ls.DeleteRange(39, 40); !errors.Is(err, errInjected) {
		t.Fatalf("cut while the leftover cannot be removed = %v, want the removal's error", err)
	}
	checkLog(t, ls, 1, 40)
	removeFails = false
	if err := ls.DeleteRange(39, 40); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(segFiles(t, dir), filepath.Base(leftover)) {
		t.Fatal("the failed new segment is still on disk")
	}
	if err := ls.StoreLogs(testEntries(39, 43)); err != nil {
		t.Fatal(err)
	}
	reopen(t, ls, dir, 1, 43)
}

// TestSegmentLog_FailedAppendLeavesNothingForARestart: an append whose
// fdatasync fails was written whole; the caller is told it failed (raft, and
// a client, may take it for never proposed), so a restart must not read its
// records back. The cut comes at once; if it fails too (here: the file turns
// read-only), Close makes it.
func TestSegmentLog_FailedAppendLeavesNothingForARestart(t *testing.T) {
	for _, cutFails := range []bool{false, true} {
		dir := t.TempDir()
		ls := openTestLog(t, dir)
		if err := ls.StoreLogs(testEntries(1, 3)); err != nil {
			t.Fatal(err)
		}
		l := ls.log
		l.wmu.Lock()
		l.zeroAhead = 0 // no zero-ahead fdatasync to take the failure meant for the append
		tail := l.segs[len(l.segs)-1]
		rw := tail.f
		l.wmu.Unlock()
		ro, err := os.Open(tail.path)
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		var calls atomic.Int32
		l.syncing.Lock()
		real := l.fdatasync
		l.fdatasync = func(f *os.File) error {
			if calls.Add(1) > 1 {
				return real(f)
			}
			if cutFails {
				tail.f = ro // the caller holds wmu: the cut's truncate fails
			}
			return errInjected
		}
		l.syncing.Unlock()
		if err := ls.StoreLogs(testEntries(4, 5)); !errors.Is(err, errInjected) {
			t.Fatalf("cutFails=%v: the append = %v, want the injected failure", cutFails, err)
		}
		l.wmu.Lock()
		tail.f = rw
		dirty := l.dirtyTail
		l.wmu.Unlock()
		if dirty != cutFails {
			t.Fatalf("cutFails=%v: dirtyTail %v after the failed append", cutFails, dirty)
		}
		if err := ls.Close(); err != nil {
			t.Fatalf("cutFails=%v: Close = %v", cutFails, err)
		}
		ls = openTestLog(t, dir)
		if last, err := ls.LastIndex(); err != nil || last != 3 {
			t.Fatalf("cutFails=%v: reopened after a failed append: last index %d, %v; want 3", cutFails, last, err)
		}
	}
}

// TestSegmentLog_ShortDeferredAppendLeavesNothingForARestart: a leader's
// deferred append (no fdatasync before it returns) that the disk takes only
// in part, a full file system with 8 KiB left for a 16 KiB write, fails; the
// whole records the short write did leave (three here: the tail page's rest
// and the 8 KiB took 12 KiB) must not be in the file
// when the log is reopened, or raft would find entries its caller was told
// failed. It fails without cutFailedWrite on the deferred path.
func TestSegmentLog_ShortDeferredAppendLeavesNothingForARestart(t *testing.T) {
	dir := disktest.MountTmpfs(t, "4m")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := openSegLog(dir, false, logger)
	if err != nil {
		t.Fatal(err)
	}
	noZeroAhead(l) // no zeros written ahead: the append needs new blocks
	if err := l.StoreLogs(termEntries(1, 3, 1), false); err != nil {
		t.Fatal(err)
	}
	spare := filepath.Join(dir, "spare")
	if err := os.WriteFile(spare, make([]byte, 8<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	free := disktest.FillDisk(t, dir)
	if err := os.Remove(spare); err != nil {
		t.Fatal(err)
	}
	big := termEntries(4, 7, 2)
	for _, e := range big {
		e.Data = bytes.Repeat([]byte{'x'}, 4000)
	}
	if err := l.StoreLogs(big, true); err == nil {
		t.Fatal("a 16 KiB append succeeded with 8 KiB free")
	}
	free()
	l = reopenSegLog(t, l, dir)
	if first, last := l.bounds(); first != 1 || last != 3 {
		t.Fatalf("reopened after a short append: entries %d..%d, want 1..3", first, last)
	}
	var e raft.Log
	if err := l.GetLog(3, &e); err != nil || !bytes.Equal(e.Data, testEntry(3).Data) {
		t.Fatalf("entry 3 after the reopen: %v, %q", err, e.Data)
	}
}
