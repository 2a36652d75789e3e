package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// fsmSnapshot streams a consistent copy of the FSM's bbolt file: the read
// transaction begun in fsm.Snapshot (cheap; raft's FSM goroutine continues
// applying while Persist writes). bbolt's tx.WriteTo copies the file as of
// that transaction, meta bucket included, so the restored copy knows the
// applied index it reflects.
//
// Caveat: while Persist runs, the open read transaction pins the old pages and
// a write that must grow the mmap waits for it; snapshots are rare
// (Config.SnapshotThreshold / SnapshotInterval).
type fsmSnapshot struct {
	once sync.Once
	tx   *bolt.Tx
}

var _ raft.FSMSnapshot = (*fsmSnapshot)(nil)

// Persist writes the copy to sink and closes it (or cancels it on error).
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	defer s.Release()
	if _, err := s.tx.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("storage: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release ends the read transaction. Safe to call more than once.
func (s *fsmSnapshot) Release() {
	s.once.Do(func() { _ = s.tx.Rollback() })
}

// restore writes the stream to a temporary file beside fsm.db, fsyncs it,
// checks it opens as a bbolt file with our buckets, then — holding mu, so no
// reader sees a half state — closes the live db, renames the copy over it
// (atomic on POSIX), fsyncs the directory and reopens. If anything fails before
// the rename, the live db is untouched.
func (f *fsm) restore(r io.Reader) error {
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(f.path)+".restore-*")
	if err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	tmpPath := tmp.Name()
	renamed := false
	defer func() {
		if !renamed {
			_ = os.Remove(tmpPath)
		}
	}()
	_, err = io.Copy(tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("storage: restore: write %s: %w", tmpPath, err)
	}
	if err := checkSnapshotFile(tmpPath); err != nil {
		return err
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db != nil {
		if err := f.db.Close(); err != nil {
			return fmt.Errorf("storage: restore: close fsm: %w", err)
		}
		f.db = nil
	}
	if err := os.Rename(tmpPath, f.path); err != nil {
		// Put the old file back in service before reporting.
		if oerr := f.openDB(); oerr != nil {
			return errors.Join(fmt.Errorf("storage: restore: rename: %w", err), oerr)
		}
		return fmt.Errorf("storage: restore: rename: %w", err)
	}
	renamed = true
	if err := syncDir(dir); err != nil {
		f.logger.Warn("fsync of data dir after restore failed", "dir", dir, "err", err)
	}
	if err := f.openDB(); err != nil {
		return err
	}
	f.logger.Info("fsm restored from snapshot", "applied_index", f.applied.Load())
	return nil
}

// checkSnapshotFile verifies path is a bbolt file holding the FSM's buckets.
func checkSnapshotFile(path string) error {
	db, err := openBolt(path)
	if err != nil {
		return fmt.Errorf("storage: restore: snapshot is not a bbolt file: %w", err)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("storage: restore: snapshot lacks bucket %q", b)
			}
		}
		return nil
	})
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
