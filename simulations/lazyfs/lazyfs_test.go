package lazyfs_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/barberpro/edge/simulations/lazyfs/lazyfstest"
	"github.com/barberpro/edge/storage/durable"
)

func TestMain(m *testing.M) {
	lazyfstest.ServeIfAsked()
	os.Exit(m.Run())
}

func mustWrite(t *testing.T, path string, data []byte, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLazyFS_CutLosesWhatWasNotFsynced(t *testing.T) {
	d := lazyfstest.Mount(t)
	synced, lost := d.Path("synced"), d.Path("lost")
	mustWrite(t, synced, []byte("kept "), true)
	mustWrite(t, synced, []byte("appended, closed, never fsynced"), false)
	mustWrite(t, lost, bytes.Repeat([]byte("x"), 3*4096+17), false)
	if got := mustRead(t, synced); got != "kept appended, closed, never fsynced" {
		t.Fatalf("before the cut, readers see %q", got)
	}
	if fi, err := os.Stat(lost); err != nil || fi.Size() != 3*4096+17 {
		t.Fatalf("before the cut: %v, %v; want %d bytes", fi, err, 3*4096+17)
	}
	if fi, _ := os.Stat(filepath.Join(d.Under, "lost")); fi == nil || fi.Size() != 0 {
		t.Fatalf("the disk has %v before any fsync; want an empty file", fi)
	}

	if lost := d.Cut(t); lost.Bytes != 5*4096 || !slices.Equal(lost.Files, []string{"lost", "synced"}) {
		t.Errorf("the cut lost %+v; want 5 pages (4 written, 1 appended) in lost and synced", lost)
	}
	if got := mustRead(t, synced); got != "kept " {
		t.Errorf("after the cut, %q; want only the fsynced %q", got, "kept ")
	}
	// Creating the file was durable at once; its data was not.
	if got := mustRead(t, lost); got != "" {
		t.Errorf("after the cut, the unsynced file holds %d bytes; want none", len(got))
	}
}

func TestLazyFS_FsyncKeepsEverythingWrittenBefore(t *testing.T) {
	d := lazyfstest.Mount(t)
	f, err := os.Create(d.Path("f"))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 10000)
	for i := range want {
		want[i] = byte(i)
	}
	f.WriteAt(want[100:5000], 100) // a page written in part: its start comes from the disk
	f.WriteAt(want[:100], 0)
	f.WriteAt(want[5000:], 5000)
	if err := f.Truncate(9000); err != nil { // durable at once, cuts the unsynced tail
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("unsynced"), 0)
	f.Close()
	d.Cut(t)
	if got := mustRead(t, d.Path("f")); got != string(want[:9000]) {
		t.Errorf("after the cut: %d bytes, equal to what was fsynced: %v", len(got), got == string(want[:9000]))
	}
}

// TestLazyFS_BoltSyncedCommitsSurviveACut runs a real bbolt DB on the mount
// (mmap, flock, pwrite and fdatasync): its commits survive a cut; the same
// commits with NoSync (no fdatasync) are lost, the control that shows the
// mount forgets.
func TestLazyFS_BoltSyncedCommitsSurviveACut(t *testing.T) {
	const commits = 50
	for _, tc := range []struct {
		name   string
		noSync bool
	}{{"default sync", false}, {"NoSync", true}} {
		t.Run(tc.name, func(t *testing.T) {
			d := lazyfstest.Mount(t)
			path := d.Path("bolt.db")
			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: tc.noSync})
			if err != nil {
				t.Fatal(err)
			}
			for i := range commits {
				err := db.Update(func(tx *bolt.Tx) error {
					b, err := tx.CreateBucketIfNotExists([]byte("k"))
					if err != nil {
						return err
					}
					return b.Put(fmt.Appendf(nil, "%04d", i), bytes.Repeat([]byte{byte(i)}, 600))
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if n := count(t, db); n != commits {
				t.Fatalf("before the cut, %d keys; want %d", n, commits)
			}
			db.Close() // writes nothing: as kill -9 would leave it
			lost := d.Cut(t)
			if (lost.Bytes > 0) != tc.noSync {
				t.Errorf("the cut lost %v", lost)
			}

			db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatalf("after the cut the DB does not open: %v", err)
			}
			defer db.Close()
			if err := db.View(func(tx *bolt.Tx) error {
				for err := range tx.Check() {
					return err
				}
				return nil
			}); err != nil {
				t.Fatalf("after the cut the DB is inconsistent: %v", err)
			}
			n := count(t, db)
			switch {
			case !tc.noSync && n != commits:
				t.Errorf("after the cut, %d of %d synced commits", n, commits)
			case tc.noSync && n >= commits:
				t.Errorf("after the cut, all %d NoSync commits are there: the mount did not forget", n)
			}
			t.Logf("%s: %d of %d commits after the cut (it lost %v)", tc.name, n, commits, lost)
		})
	}
}

func count(t *testing.T, db *bolt.DB) int {
	t.Helper()
	n := 0
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("k")); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n
}

// A file replaced by write-then-rename keeps its new bytes across a power cut
// only when they were fsynced before the rename (durable.WriteFile); the
// power-loss simulation found the node's peers file written the other way,
// empty after every cut.
func TestLazyFS_RenamedFileNeedsItsFsync(t *testing.T) {
	d := lazyfstest.Mount(t)
	careless, careful := d.Path("careless.json"), d.Path("careful.json")
	if err := os.WriteFile(careless+".tmp", []byte(`["a"]`), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(careless+".tmp", careless); err != nil {
		t.Fatal(err)
	}
	if err := durable.WriteBytes(careful, 0o640, []byte(`["a"]`)); err != nil {
		t.Fatal(err)
	}
	d.Cut(t)
	if got := mustRead(t, careless); got != "" {
		t.Fatalf("control: a rename without fsync kept %q across the cut; the layer forgets nothing", got)
	}
	if got := mustRead(t, careful); got != `["a"]` {
		t.Fatalf("durable.WriteBytes: %q after the cut, want [\"a\"]", got)
	}
}

// A file's unsynced growth stays visible by its path after the kernel's
// name and attribute cache expired (cacheTimeout): the lookup then must
// report the size the writers see, not the disk's. It failed while Lookup
// patched the size from the new node the loopback returns instead of the
// one go-fuse keeps for the file: readers then stopped at the disk's size.
func TestLazyFS_UnsyncedGrowthOutlivesTheKernelsCache(t *testing.T) {
	d := lazyfstest.Mount(t)
	path := d.Path("f")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("synced "), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("and grown"), 7); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past cacheTimeout (1 s)
	if got := mustRead(t, path); got != "synced and grown" {
		t.Fatalf("read by path after the cache expired: %q", got)
	}
}
