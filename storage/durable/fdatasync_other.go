//go:build !linux

package durable

import "os"

// Fdatasync flushes f's data to disk: f.Sync (fsync) where the system offers
// no fdatasync. Like fsync it does not make the file's name durable: after
// creating, renaming or removing a file, SyncDir its directory.
func Fdatasync(f *os.File) error { return f.Sync() }
