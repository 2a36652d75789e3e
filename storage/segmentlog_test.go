package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

func testEntry(i uint64) *raft.Log {
	l := &raft.Log{Index: i, Term: 1 + i/10, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("data-%d", i)),
		AppendedAt: time.Unix(1700000000, int64(i)).UTC()}
	if i%3 == 0 {
		l.Extensions = []byte("ext")
	}
	return l
}

func testEntries(from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, testEntry(i))
	}
	return out
}

func openTestLog(t *testing.T, dir string) *LogStore {
	t.Helper()
	ls, err := openLogStore(filepath.Join(dir, RaftFile), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	return ls
}

// checkLog asserts the bounds and every entry first..last.
func checkLog(t *testing.T, ls *LogStore, first, last uint64) {
	t.Helper()
	f, _ := ls.FirstIndex()
	l, _ := ls.LastIndex()
	if f != first || l != last {
		t.Fatalf("bounds %d..%d, want %d..%d", f, l, first, last)
	}
	for i := first; i <= last && first > 0; i++ {
		var got raft.Log
		if err := ls.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := testEntry(i)
		if got.Index != i || got.Term != want.Term || !bytes.Equal(got.Data, want.Data) ||
			!bytes.Equal(got.Extensions, want.Extensions) || !got.AppendedAt.Equal(want.AppendedAt) || got.Type != want.Type {
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, got, want)
		}
	}
	var l0 raft.Log
	if err := ls.GetLog(last+1, &l0); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(last+1) = %v, want ErrLogNotFound", err)
	}
	if first > 1 {
		if err := ls.GetLog(first-1, &l0); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog(first-1) = %v, want ErrLogNotFound", err)
		}
	}
}

// reopen closes ls, opens the dir again and checks it holds first..last.
func reopen(t *testing.T, ls *LogStore, dir string, first, last uint64) *LogStore {
	t.Helper()
	ls.Close()
	ls = openTestLog(t, dir)
	checkLog(t, ls, first, last)
	return ls
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := segmentNames(filepath.Join(dir, RaftLogDir))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestSegmentLog_AppendGetReopen(t *testing.T) {
	dir := t.TempDir()
	ls := openTestLog(t, dir)
	checkLog(t, ls, 0, 0)
	if err := ls.StoreLogs(testEntries(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := ls.StoreLog(testEntry(11)); err != nil {
		t.Fatal(err)
	}
	checkLog(t, ls, 1, 11)
	if err := ls.StoreLogs(testEntries(13, 14)); err != nil {
		// a gap: starts over at 13 (raft appends after a snapshot)
		t.Fatal(err)
	}
	checkLog(t, ls, 13, 14)
	if err := ls.StoreLogs(testEntries(14, 15)); !errors.Is(err, errLogOrder) {
		t.Fatalf("overlapping append = %v, want errLogOrder", err)
	}
	if err := ls.StoreLogs(testEntries(15, 20)); err != nil {
		t.Fatal(err)
	}
	ls = reopen(t, ls, dir, 13, 20)
}

func TestSegmentLog_DeleteRangeHeadAndTail(t *testing.T) {
	dir := t.TempDir()
	ls := openTestLog(t, dir)
	setMaxBytes(ls, 200) // a few entries per segment
	for i := uint64(1); i <= 40; i += 2 {
		if err := ls.StoreLogs(testEntries(i, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	nseg := len(segFiles(t, dir))
	if nseg < 5 {
		t.Fatalf("%d segments, want rotation to several", nseg)
	}
	checkLog(t, ls, 1, 40)
	// Head: compaction.
	if err := ls.DeleteRange(1, 17); err != nil {
		t.Fatal(err)
	}
	checkLog(t, ls, 18, 40)
	if n := len(segFiles(t, dir)); n >= nseg {
		t.Fatalf("head delete removed no segment (%d → %d)", nseg, n)
	}
	// Tail: conflict truncation, then an append follows the kept entries.
	if err := ls.DeleteRange(33, 40); err != nil {
		t.Fatal(err)
	}
	checkLog(t, ls, 18, 32)
	if err := ls.StoreLogs(testEntries(33, 35)); err != nil {
		t.Fatal(err)
	}
	checkLog(t, ls, 18, 35)
	ls.Close()
	ls = openTestLog(t, dir)
	f, _ := ls.FirstIndex()
	if f > 18 || f == 0 {
		t.Fatalf("first after reopen %d, want ≤ 18", f)
	}
	checkLog(t, ls, f, 35)
	// Whole log.
	if err := ls.DeleteRange(f, 35); err != nil {
		t.Fatal(err)
	}
	checkLog(t, ls, 0, 0)
	if n := len(segFiles(t, dir)); n != 0 {
		t.Fatalf("%d segments left after deleting everything", n)
	}
	if err := ls.StoreLogs(testEntries(100, 101)); err != nil {
		t.Fatal(err)
	}
	ls = reopen(t, ls, dir, 100, 101)
}

// TestSegmentLog_RewriteDropsDeletedBytes: after a head delete inside a
// segment, rewrite leaves no byte of the deleted entries in the dir.
func TestSegmentLog_RewriteDropsDeletedBytes(t *testing.T) {
	dir := t.TempDir()
	ls := openTestLog(t, dir)
	if err := ls.StoreLogs(testEntries(1, 30)); err != nil {
		t.Fatal(err)
	}
	if err := ls.DeleteRange(1, 20); err != nil {
		t.Fatal(err)
	}
	if !dirHolds(t, dir, []byte("data-7")) {
		t.Fatal("entry 7 gone before the rewrite: the test shows nothing")
	}
	if err := ls.rewrite(); err != nil {
		t.Fatal(err)
	}
	if dirHolds(t, dir, []byte("data-7")) {
		t.Fatal("a deleted entry's bytes remain after rewrite")
	}
	checkLog(t, ls, 21, 30)
	if err := ls.StoreLogs(testEntries(31, 32)); err != nil {
		t.Fatal(err)
	}
	ls = reopen(t, ls, dir, 21, 32)
}

func dirHolds(t *testing.T, dir string, b []byte) bool {
	t.Helper()
	found := false
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if bytes.Contains(data, b) {
			found = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func lastSegPath(t *testing.T, dir string) string {
	names := segFiles(t, dir)
	return filepath.Join(dir, RaftLogDir, names[len(names)-1])
}

// TestSegmentLog_TornTailIsCut tears the last record (or adds bytes past it)
// as a crash mid-append would, both at the end of the file and inside the
// zero-ahead (the tear followed by the zeros the log wrote ahead of it). A
// zero tail alone is the end of the log: nothing is cut.
func TestSegmentLog_TornTailIsCut(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(data []byte) []byte
	}{
		{"half a record", func(d []byte) []byte { return d[:len(d)-5] }},
		{"half a header", func(d []byte) []byte { return append(d, 9, 0, 0) }},
		{"zeroed tail", func(d []byte) []byte { return append(d, make([]byte, 4096)...) }},
		{"last record garbled", func(d []byte) []byte { d[len(d)-3] ^= 0xff; return d }},
	} {
		for _, ahead := range []bool{false, true} {
			name := tc.name
			if ahead {
				name += " in the zero-ahead"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				ls := openTestLog(t, dir)
				if err := ls.StoreLogs(testEntries(1, 9)); err != nil {
					t.Fatal(err)
				}
				if err := ls.StoreLogs(testEntries(10, 10)); err != nil {
					t.Fatal(err)
				}
				end := ls.log.segs[len(ls.log.segs)-1].size
				ls.Close()
				p := lastSegPath(t, dir)
				data, _ := os.ReadFile(p)
				torn := tc.tear(data[:end:end])
				if ahead {
					torn = append(torn, make([]byte, zeroChunk)...)
				}
				if err := os.WriteFile(p, torn, 0o600); err != nil {
					t.Fatal(err)
				}
				ls = openTestLog(t, dir)
				last, _ := ls.LastIndex()
				if last != 9 && last != 10 {
					t.Fatalf("last after a torn tail = %d", last)
				}
				if tc.name != "half a header" && tc.name != "zeroed tail" && last != 9 {
					t.Fatalf("last = %d, want the torn entry 10 cut", last)
				}
				if tc.name == "zeroed tail" && last != 10 {
					t.Fatalf("last = %d, want 10: a zero tail is no tear", last)
				}
				checkLog(t, ls, 1, last)
				if err := ls.StoreLogs(testEntries(last+1, last+2)); err != nil {
					t.Fatal(err)
				}
				ls.Close()
				ls = openTestLog(t, dir)
				checkLog(t, ls, 1, last+2)
			})
		}
	}
}

func TestSegmentLog_MiddleDamageRefused(t *testing.T) {
	dir := t.TempDir()
	ls := openTestLog(t, dir)
	if err := ls.StoreLogs(testEntries(1, 10)); err != nil {
		t.Fatal(err)
	}
	off5 := ls.log.segs[0].offs[4]
	ls.Close()
	p := lastSegPath(t, dir)
	data, _ := os.ReadFile(p)
	data[off5+recHeader+10] ^= 0x01 // entry 5's term
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := openLogStore(filepath.Join(dir, RaftFile), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !errors.Is(err, ErrLogCorrupt) {
		t.Fatalf("open = %v, want ErrLogCorrupt", err)
	}
	// Nothing was cut.
	if after, _ := os.ReadFile(p); len(after) != len(data) {
		t.Fatalf("file changed from %d to %d bytes", len(data), len(after))
	}
}

// TestSegmentLog_DamagedOlderSegmentRefused: an invalid record in a segment
// that is not the last one is never a torn tail.
func TestSegmentLog_DamagedOlderSegmentRefused(t *testing.T) {
	dir := t.TempDir()
	ls := openTestLog(t, dir)
	setMaxBytes(ls, 100)
	for i := uint64(1); i <= 6; i++ {
		if err := ls.StoreLog(testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	ls.Close()
	names := segFiles(t, dir)
	if len(names) < 2 {
		t.Fatal("no rotation")
	}
	p := filepath.Join(dir, RaftLogDir, names[0])
	data, _ := os.ReadFile(p)
	if err := os.WriteFile(p, data[:len(data)-4], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := openLogStore(filepath.Join(dir, RaftFile), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !errors.Is(err, ErrLogCorrupt) {
		t.Fatalf("open = %v, want ErrLogCorrupt", err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// oldEntry is what testdata/raftdb-v1/raft.db holds at index i: written by
// the LogStore of the release before the segment log (entries 1..300,
// 1..20 deleted, CurrentTerm 4, disk id "disk-xyz").
func oldEntry(i uint64) *raft.Log {
	l := &raft.Log{Index: i, Term: 1 + i/100, Type: raft.LogCommand,
		Data: []byte("entry-" + time.Unix(int64(i), 0).UTC().Format(time.RFC3339)), AppendedAt: time.Unix(1700000000, int64(i)).UTC()}
	if i%7 == 0 {
		l.Extensions = []byte("ext")
	}
	return l
}

func checkMigrated(t *testing.T, ls *LogStore, dir string) {
	t.Helper()
	f, _ := ls.FirstIndex()
	l, _ := ls.LastIndex()
	if f != 21 || l != 300 {
		t.Fatalf("migrated bounds %d..%d, want 21..300", f, l)
	}
	for i := f; i <= l; i++ {
		var got raft.Log
		if err := ls.GetLog(i, &got); err != nil {
			t.Fatal(err)
		}
		w := oldEntry(i)
		if got.Term != w.Term || !bytes.Equal(got.Data, w.Data) || !bytes.Equal(got.Extensions, w.Extensions) || !got.AppendedAt.Equal(w.AppendedAt) {
			t.Fatalf("entry %d = %+v, want %+v", i, got, w)
		}
	}
	if ls.CurrentTerm() != 4 {
		t.Fatalf("term %d", ls.CurrentTerm())
	}
	if id, err := ls.diskID(); err != nil || id != "disk-xyz" {
		t.Fatalf("disk id %q %v", id, err)
	}
	var has bool
	_ = ls.view(func(tx *bolt.Tx) error { has = tx.Bucket(bucketLogs) != nil; return nil })
	if has {
		t.Fatal("raft.db still holds the logs bucket")
	}
	if _, err := os.Stat(filepath.Join(dir, RaftLogDir+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temp dir left: %v", err)
	}
}

func TestSegmentLog_MigratesOldRaftDB(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join("testdata", "raftdb-v1", RaftFile), filepath.Join(dir, RaftFile))
	ls := openTestLog(t, dir)
	checkMigrated(t, ls, dir)
	if err := ls.StoreLogs([]*raft.Log{oldEntry(301)}); err != nil {
		t.Fatal(err)
	}
	ls.Close()
	ls = openTestLog(t, dir)
	if l, _ := ls.LastIndex(); l != 301 {
		t.Fatalf("last %d after reopen", l)
	}
}

// TestSegmentLog_MigrationCrashes replays the crash points of a migration.
func TestSegmentLog_MigrationCrashes(t *testing.T) {
	t.Run("before the rename: a half-written temp dir is redone", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, filepath.Join("testdata", "raftdb-v1", RaftFile), filepath.Join(dir, RaftFile))
		tmp := filepath.Join(dir, RaftLogDir+".tmp")
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, segName(21)), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
		checkMigrated(t, openTestLog(t, dir), dir)
	})
	t.Run("after the rename, before the bucket is dropped: segments win", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, filepath.Join("testdata", "raftdb-v1", RaftFile), filepath.Join(dir, RaftFile))
		ls := openTestLog(t, dir)
		ls.Close()
		// Put the bucket back, with a stale extra entry: it must be ignored.
		db, err := bolt.Open(filepath.Join(dir, RaftFile), 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket(bucketLogs)
			if err != nil {
				return err
			}
			return b.Put(u64(301), encodeLog(oldEntry(301)))
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		checkMigrated(t, openTestLog(t, dir), dir)
	})
}

// TestSegmentLog_ConcurrentReaders reads while appending, compacting and
// rewriting (run with -race).
func TestSegmentLog_ConcurrentReaders(t *testing.T) {
	dir := t.TempDir()
	ls := openTestLog(t, dir)
	setMaxBytes(ls, 1000)
	if err := ls.StoreLogs(testEntries(1, 5)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				first, _ := ls.FirstIndex()
				last, _ := ls.LastIndex()
				for i := first; i <= last && first > 0; i++ {
					var l raft.Log
					err := ls.GetLog(i, &l)
					if err == nil && (l.Index != i || !bytes.Equal(l.Data, testEntry(i).Data)) {
						errc <- fmt.Errorf("GetLog(%d) = %+v", i, l)
						return
					}
					if err != nil && !errors.Is(err, raft.ErrLogNotFound) {
						errc <- err
						return
					}
				}
			}
		}()
	}
	for i := uint64(6); i <= 400; i += 5 {
		if err := ls.StoreLogs(testEntries(i, i+4)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 1 {
			if err := ls.DeleteRange(1, i-20); err != nil {
				t.Fatal(err)
			}
			if err := ls.log.rewrite(); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}

// FuzzDecodeRecord: the decoder never panics, and what it accepts encodes
// back to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, testEntry(1)))
	f.Add(appendRecord(nil, testEntry(3)))
	f.Add(appendRecord(appendRecord(nil, testEntry(7)), testEntry(8))[:40])
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		n, err := decodeRecord(b, &l)
		if err != nil {
			return
		}
		if n > len(b) || n < recHeader+recMinPayload {
			t.Fatalf("length %d of %d", n, len(b))
		}
		if again := appendRecord(nil, &l); !bytes.Equal(again, b[:n]) {
			// AppendedAt 0 and the zero time encode alike; all else must match.
			t.Fatalf("re-encoded record differs:\n%x\n%x", again, b[:n])
		}
	})
}

// TestSegmentLog_TornMultiPageBatchIsCut: one StoreLogs writes a batch of
// records spanning several pages with one pwrite; power loss before its
// fdatasync may persist a later page but not an earlier one (writeback does
// not go in file order). The never-written page reads as zeros inside the
// first record of the batch while the next record is whole. Nothing of that
// batch was acknowledged (its fdatasync never returned), so it is a torn
// tail, not middle damage: the log must open with the batch cut.
func TestSegmentLog_TornMultiPageBatchIsCut(t *testing.T) {
	dir := t.TempDir()
	ls := openTestLog(t, dir)
	if err := ls.StoreLogs(testEntries(1, 3)); err != nil {
		t.Fatal(err)
	}
	batch := testEntries(4, 6)
	for _, e := range batch {
		e.Data = bytes.Repeat([]byte{'b'}, 9000)
	}
	if err := ls.StoreLogs(batch); err != nil {
		t.Fatal(err)
	}
	off4 := ls.log.segs[0].offs[3]
	ls.Close()
	p := lastSegPath(t, dir)
	data, _ := os.ReadFile(p)
	// The first whole 4 KiB page after record 4's header never reached the disk.
	page := (off4 + recHeader + 4095) / 4096 * 4096
	copy(data[page:page+4096], make([]byte, 4096))
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ls, err := openLogStore(filepath.Join(dir, RaftFile), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("open after a torn multi-page batch: %v (the batch was never acknowledged)", err)
	}
	t.Cleanup(func() { ls.Close() })
	checkLog(t, ls, 1, 3)
}

// TestSegmentLog_ConflictCutThenShorterAppend: a tail cut followed by a
// shorter append of a new term leaves no record of the old term readable,
// before or after reopening, across rotation; an emptied log reports 0..0 and
// ErrLogNotFound; an append past a gap starts a new log.
func TestSegmentLog_ConflictCutThenShorterAppend(t *testing.T) {
	dir := t.TempDir()
	ls := openTestLog(t, dir)
	setMaxBytes(ls, 300)
	big := testEntries(1, 30)
	for _, e := range big {
		e.Data = bytes.Repeat([]byte{'o'}, 100)
	}
	if err := ls.StoreLogs(big[:10]); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 30; i += 2 {
		if err := ls.StoreLogs(big[i : i+2]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ls.DeleteRange(12, 30); err != nil {
		t.Fatal(err)
	}
	nw := &raft.Log{Index: 12, Term: 99, Type: raft.LogCommand, Data: []byte("n")}
	if err := ls.StoreLogs([]*raft.Log{nw}); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		if l, _ := ls.LastIndex(); l != 12 {
			t.Fatalf("round %d: last %d, want 12", round, l)
		}
		var got raft.Log
		if err := ls.GetLog(12, &got); err != nil || got.Term != 99 {
			t.Fatalf("round %d: entry 12 = %+v, %v", round, got, err)
		}
		if err := ls.GetLog(13, &got); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("round %d: GetLog(13) = %v", round, err)
		}
		ls.Close()
		ls = openTestLog(t, dir)
	}
	if err := ls.DeleteRange(1, 12); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if f, _ := ls.FirstIndex(); f != 0 || ls.GetLog(5, &got) != raft.ErrLogNotFound {
		t.Fatalf("emptied log: first %d", f)
	}
	if err := ls.StoreLogs(testEntries(100, 101)); err != nil {
		t.Fatal(err)
	}
	ls = reopen(t, ls, dir, 100, 101)
	if err := ls.StoreLogs(testEntries(200, 200)); err != nil {
		t.Fatal(err)
	}
	reopen(t, ls, dir, 200, 200)
}
