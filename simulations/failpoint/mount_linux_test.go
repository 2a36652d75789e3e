//go:build linux

package failpoint

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/tmp/a\040b/data\011x`); got != "/tmp/a b/data\tx" {
		t.Fatalf("got %q", got)
	}
}

// TestTmpfs_MountResizeUnmount mounts a small tmpfs, fills it, grows it and
// unmounts it, as the disk-full fault does (root only).
func TestTmpfs_MountResizeUnmount(t *testing.T) {
	if mountAvailable() != nil {
		t.Skip("needs root")
	}
	dir := filepath.Join(t.TempDir(), "d")
	os.MkdirAll(dir, 0o750)
	const source = "barberpro-sim-test-tmpfs"
	if err := mountTmpfs(source, dir, 1<<20); err != nil {
		t.Skip(err) // a container without mount rights
	}
	t.Cleanup(func() { unmount(dir) })
	if !slices.Contains(mountsOf(source), dir) {
		t.Fatalf("%s not among the mounts of %s: %v", dir, source, mountsOf(source))
	}
	size, used, free, err := diskUsage(dir)
	if err != nil || size != 1<<20 || used != 0 || free != 1<<20 {
		t.Fatalf("usage %d %d %d %v", size, used, free, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 2<<20), 0o644); err == nil {
		t.Fatal("wrote 2 MiB on a 1 MiB tmpfs")
	}
	if err := resizeTmpfs(source, dir, 4<<20); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 2<<20), 0o644); err != nil {
		t.Fatalf("after the resize: %v", err)
	}
	if err := unmount(dir); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(mountsOf(source), dir) {
		t.Fatal("still mounted")
	}
}
