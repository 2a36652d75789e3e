package durable_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/barberpro/edge/storage/durable"
)

func TestWriteFile_ReplacesWholeWithItsMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := durable.WriteBytes(p, 0o640, []byte("old")); err != nil {
		t.Fatal(err)
	}
	if err := durable.WriteBytes(p, 0o600, []byte("new")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "new" {
		t.Fatalf("read %q, %v; want new", b, err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries in the dir, want only the file (no temporary left)", len(ents))
	}
}

func TestWriteFile_FailedFillLeavesTheOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := durable.WriteBytes(p, 0o600, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := durable.WriteFile(p, 0o600, func(w io.Writer) error {
		_, _ = w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want the fill's error", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("read %q after a failed write, want old", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries in the dir, want the temporary removed", len(ents))
	}
}

func TestSyncDir_MissingDirIsAnError(t *testing.T) {
	if err := durable.SyncDir(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("SyncDir of a missing dir succeeded")
	}
}

func TestFdatasync_FlushesAFileAndNamesItOnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("data"); err != nil {
		t.Fatal(err)
	}
	if err := durable.Fdatasync(f); err != nil {
		t.Fatalf("Fdatasync of a regular file: %v", err)
	}
	// A pipe cannot be flushed: the error names it.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	err = durable.Fdatasync(w)
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != w.Name() {
		t.Fatalf("Fdatasync of a pipe = %v, want a *os.PathError naming %q", err, w.Name())
	}
	w.Close()
	if err := durable.Fdatasync(w); err == nil {
		t.Fatal("Fdatasync of a closed file succeeded")
	}
}
