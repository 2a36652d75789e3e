// Package durable writes files so that they survive a crash or a power cut:
// whole or not at all. It is a leaf (the standard library only), so every
// layer that keeps a file of its own — the store, the seal's ledger, the
// node's peers file, token keys — writes it the same way. Its flushes,
// Fdatasync (a file's data) and SyncDir (the names in a directory), are the
// ones the store's Raft log appends and rotates segments with.
package durable

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile writes path through fill: into a temporary file beside it (mode
// perm), fsynced, renamed over path, and the directory fsynced. A crash at any
// point leaves either the old file or the new one, never a part of it; a
// rename without the file's fsync can leave the new name on an empty file
// after a power cut. On error the temporary file is removed and path is as it
// was.
func WriteFile(path string, perm os.FileMode, fill func(w io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("durable: %w", err)
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		bw := bufio.NewWriterSize(f, 1<<20)
		err = fill(bw)
		if err == nil {
			err = bw.Flush()
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// WriteBytes is WriteFile of b.
func WriteBytes(path string, perm os.FileMode, b []byte) error {
	return WriteFile(path, perm, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// SyncDir fsyncs a directory, so that a file created, renamed or removed in it
// stays so after a power cut.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("durable: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("durable: sync dir %s: %w", dir, err)
	}
	return nil
}
