package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// keyDiskID is the stable-store key (in raft.db) of the data dir's identity.
var keyDiskID = []byte("barberpro_disk_id")

// LegacyDiskID is the identity given to a raft.db that already held Raft state
// (a log or a term) when it was first asked for one: a data dir of a build
// whose Raft server id was the bare node id. The cluster layer keeps that id
// for it (membership.LegacyDiskID), so the server stays the voter its group
// knows; without it, a whole group upgraded at once would have no server in
// its own configuration and never elect a leader again.
const LegacyDiskID = "-"

// diskID reads the data dir's identity, creating it (committed and fsynced) if
// there is none.
func (s *LogStore) diskID() (string, error) {
	if v, err := s.Get(keyDiskID); err == nil && len(v) > 0 {
		return string(v), nil
	}
	id := NewID()
	had, err := s.hasState()
	if err != nil {
		return "", err
	}
	if had {
		id = LegacyDiskID
	}
	if err := s.Set(keyDiskID, []byte(id)); err != nil {
		return "", fmt.Errorf("storage: write disk id: %w", err)
	}
	return id, nil
}

// hasState reports whether the log holds an entry or raft.db a term.
func (s *LogStore) hasState() (bool, error) {
	last, err := s.LastIndex()
	return last > 0 || s.currentTerm.Load() > 0, err
}

// DirIdentity is what a data dir says of its node before the store opens: the
// identity of the disk, whether it holds Raft state or FSM records (it founded
// a group or was added to one), and the cluster id its FSM holds.
type DirIdentity struct {
	DiskID    string
	HasState  bool
	ClusterID string
}

// ReadIdentity returns the identity of the disk at dataDir, creating the dir and
// the identity at first use. The identity lives in raft.db, beside the term and
// vote it vouches for: a disk that lost raft.db (wiped, replaced, or only that
// file deleted) comes back with a new identity, so the node is a new Raft
// server that votes only once its group has caught it up and promoted it. It
// also says whether the dir holds Raft state (a log, a term or a snapshot)
// or FSM records, and its FSM's cluster id. A node gossips them from its first
// gossip message: a node holding another group's history must be refused from
// the moment it shows up, not only once its store has opened and a keeper has
// published them. Call it before Open.
func ReadIdentity(dataDir string) (DirIdentity, error) {
	var id DirIdentity
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return id, fmt.Errorf("storage: data dir: %w", err)
	}
	ls, err := OpenLogStore(filepath.Join(dataDir, RaftFile))
	if err != nil {
		return id, err
	}
	defer ls.Close()
	if id.DiskID, err = ls.diskID(); err != nil {
		return id, err
	}
	if id.HasState, err = ls.hasState(); err != nil {
		return id, err
	}
	if restoredPending(dataDir) {
		id.HasState = true // Open founds a group on the restored records
	}
	if snaps, err := os.ReadDir(filepath.Join(dataDir, SnapshotsDir)); err == nil {
		for _, e := range snaps {
			if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") {
				id.HasState = true
			}
		}
	}
	// raft.db keeps the cluster id through a power loss that discards
	// fsm.db (groupid.go); fsm.db's, when trusted, is read below.
	if id.ClusterID, err = ls.stableClusterID(); err != nil {
		return id, err
	}
	path := filepath.Join(dataDir, FSMFile)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return id, nil
		}
		return id, fmt.Errorf("storage: %w", err)
	}
	if ok, _ := fsmTrusted(path); !ok {
		// Possibly torn by a power loss (fsmsync.go): Open rebuilds it.
		// raft.db and snapshots/ say whether there is state, raft.db
		// which group it is.
		id.HasState = true
		return id, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return id, fmt.Errorf("storage: read identity of %s: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if m == nil {
			return nil
		}
		if g := m.Get(keyClusterID); len(g) > 0 {
			id.ClusterID = string(g)
		}
		if idx, _ := readApplied(tx); idx > 0 {
			id.HasState = true
		}
		return nil
	})
	if err != nil {
		return id, fmt.Errorf("storage: read identity of %s: %w", path, err)
	}
	return id, nil
}
