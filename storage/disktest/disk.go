// Package disktest gives tests a real file system that fills up: a small
// tmpfs (MountTmpfs) and a filler (FillDisk). It imports nothing of the
// product, so the storage package's own tests can use it too.
package disktest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// MountTmpfs mounts a tmpfs of size (e.g. "4m") on a new directory and
// unmounts it at cleanup (after the stores on it, which are closed in
// cleanups registered later). A small tmpfs is a real file system that
// answers ENOSPC, so the store fails as it does on a full disk (huge=never:
// it counts space in pages whatever the host's tmpfs huge-page setting). Mounting
// needs root (CAP_SYS_ADMIN), which the tests have here and in CI; elsewhere
// the test skips.
func MountTmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700,huge=never"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// FillDisk writes dir/filler until dir's file system is full and returns a
// function that removes it (space returns).
func FillDisk(t testing.TB, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	_ = f.Close()
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}
