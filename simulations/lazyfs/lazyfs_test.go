package lazyfs_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/barberpro/edge/simulations/lazyfs"
	"github.com/barberpro/edge/storage/durable"
)

// serveEnv makes the test binary a lazyfs server ("<under>\n<mountpoint>"):
// the mount is served apart from the test process, which reads it.
const serveEnv = "LAZYFS_TEST_SERVE"

func TestMain(m *testing.M) {
	if v := os.Getenv(serveEnv); v != "" {
		under, mnt, _ := strings.Cut(v, "\n")
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := lazyfs.Serve(ctx, under, mnt); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// disk is a lazyfs mount over a directory of the test, with its server.
type disk struct {
	under, mnt string
	p          *lazyfs.Process
}

// mustMount mounts a lazyfs over a fresh directory; it skips the test where
// none can be mounted.
func mustMount(t *testing.T) *disk {
	t.Helper()
	if err := lazyfs.Available(); err != nil {
		t.Skipf("lazyfs needs root and /dev/fuse: %v", err)
	}
	root := t.TempDir()
	d := &disk{under: filepath.Join(root, "disk"), mnt: filepath.Join(root, "mnt")}
	for _, dir := range []string{d.under, d.mnt} {
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	d.start(t)
	t.Cleanup(func() {
		if err := d.p.Stop(5 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return d
}

func (d *disk) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serveEnv+"="+d.under+"\n"+d.mnt)
	p, err := lazyfs.Start(cmd, d.mnt, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	d.p = p
}

// cut cuts the power (nothing may use the mount) and mounts a fresh lazyfs;
// it returns what the cut lost.
func (d *disk) cut(t *testing.T) lazyfs.Pending {
	t.Helper()
	lost, err := d.p.Cut()
	if err != nil {
		t.Fatal(err)
	}
	if lazyfs.Mounted(d.mnt) {
		t.Fatal("still mounted after the cut")
	}
	d.start(t)
	return lost
}

func (d *disk) path(name string) string { return filepath.Join(d.mnt, name) }

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
	d := mustMount(t)
	synced, lost := d.path("synced"), d.path("lost")
	mustWrite(t, synced, []byte("kept "), true)
	mustWrite(t, synced, []byte("appended, closed, never fsynced"), false)
	mustWrite(t, lost, bytes.Repeat([]byte("x"), 3*4096+17), false)
	if got := mustRead(t, synced); got != "kept appended, closed, never fsynced" {
		t.Fatalf("before the cut, readers see %q", got)
	}
	if fi, err := os.Stat(lost); err != nil || fi.Size() != 3*4096+17 {
		t.Fatalf("before the cut: %v, %v; want %d bytes", fi, err, 3*4096+17)
	}
	if fi, _ := os.Stat(filepath.Join(d.under, "lost")); fi == nil || fi.Size() != 0 {
		t.Fatalf("the disk has %v before any fsync; want an empty file", fi)
	}

	if lost := d.cut(t); lost.Bytes != 5*4096 || !slices.Equal(lost.Files, []string{"lost", "synced"}) {
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
	d := mustMount(t)
	f, err := os.Create(d.path("f"))
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
	d.cut(t)
	if got := mustRead(t, d.path("f")); got != string(want[:9000]) {
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
			d := mustMount(t)
			path := d.path("bolt.db")
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
			lost := d.cut(t)
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
	d := mustMount(t)
	careless, careful := d.path("careless.json"), d.path("careful.json")
	if err := os.WriteFile(careless+".tmp", []byte(`["a"]`), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(careless+".tmp", careless); err != nil {
		t.Fatal(err)
	}
	if err := durable.WriteBytes(careful, 0o640, []byte(`["a"]`)); err != nil {
		t.Fatal(err)
	}
	d.cut(t)
	if got := mustRead(t, careless); got != "" {
		t.Fatalf("control: a rename without fsync kept %q across the cut; the layer forgets nothing", got)
	}
	if got := mustRead(t, careful); got != `["a"]` {
		t.Fatalf("durable.WriteBytes: %q after the cut, want [\"a\"]", got)
	}
}
