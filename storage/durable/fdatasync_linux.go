package durable

import (
	"os"
	"syscall"
)

// Fdatasync flushes f's data to disk, and its size, but not the metadata a
// later read does not need (modification time): one device flush where fsync
// may take two. Like fsync it does not make the file's name durable: after
// creating, renaming or removing a file, SyncDir its directory. EINTR is
// retried; a failure is an *os.PathError naming f.
func Fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
