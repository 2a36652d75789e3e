package storage

import (
	"fmt"
	"os"
	"path/filepath"
)

// keyDiskID is the stable-store key (in raft.db) of the data dir's identity.
var keyDiskID = []byte("barberpro_disk_id")

// DiskID returns the identity of the data dir at dataDir, creating the dir and
// the identity at first use. The identity lives in raft.db, beside the term and
// vote it vouches for: a disk that lost raft.db (wiped, replaced, or only that
// file deleted) comes back with a new identity, so the node is a new Raft
// server that votes only once its group has caught it up and promoted it. Call
// it before Open (it opens and closes raft.db).
func DiskID(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("storage: data dir: %w", err)
	}
	ls, err := OpenLogStore(filepath.Join(dataDir, RaftFile))
	if err != nil {
		return "", err
	}
	defer ls.Close()
	return ls.diskID()
}

// diskID reads the data dir's identity, creating it (committed and fsynced) if
// there is none.
func (s *LogStore) diskID() (string, error) {
	if v, err := s.Get(keyDiskID); err == nil && len(v) > 0 {
		return string(v), nil
	}
	id := NewID()
	if err := s.Set(keyDiskID, []byte(id)); err != nil {
		return "", fmt.Errorf("storage: write disk id: %w", err)
	}
	return id, nil
}

// DiskID returns the identity of this store's data dir (see the DiskID function).
func (s *Store) DiskID() (string, error) { return s.logs.diskID() }
