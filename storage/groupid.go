package storage

import (
	"errors"
	"fmt"
)

// keyStableClusterID is the stable-store key (in raft.db) of the group's
// cluster id. fsm.db holds the id too (meta.cluster_id), but fsm.db commits
// without fsync and is discarded after a power loss (fsmsync.go), and until
// raft replays its log the rebuilt file has no id: the node would then offer
// no group on its Raft connections (groupcheck.go) and ReadIdentity would
// report none, so a rebooted node of an old group could reach a group
// restored at an address of its configuration. raft.db fsyncs every write,
// so the id kept there survives whatever fsm.db loses.
var keyStableClusterID = []byte("barberpro_cluster_id")

// stableClusterID reads the cluster id raft.db holds ("" if none).
func (s *LogStore) stableClusterID() (string, error) {
	v, err := s.Get(keyStableClusterID)
	if err != nil {
		if errors.Is(err, errStableNotFound) {
			return "", nil
		}
		return "", err
	}
	return string(v), nil
}

// keepGroupID runs in Open before raft starts: it loads the id raft.db holds,
// writes fsm.db's there when raft.db lacks it or holds another (a data dir of
// an older build; fsm.db is trusted here, catchUpFSM has run), and from then
// on has the FSM hand every id it learns (FoundGroup replicated, a snapshot
// installed) to rememberGroupID.
func (s *Store) keepGroupID() error {
	id, err := s.logs.stableClusterID()
	if err != nil {
		return fmt.Errorf("storage: read the cluster id from raft.db: %w", err)
	}
	s.stableGroup.Store(&id)
	if g := s.fsm.groupID(); g != "" && g != id {
		if err := s.writeGroupID(g); err != nil {
			return err
		}
	}
	s.fsm.onGroup = s.rememberGroupID
	return nil
}

// rememberGroupID keeps id in raft.db when it is new there. A failure is
// logged (the next id seen, or the next Open, tries again): the FSM's apply
// must not fail on it.
func (s *Store) rememberGroupID(id string) {
	if p := s.stableGroup.Load(); p != nil && *p == id {
		return
	}
	if err := s.writeGroupID(id); err != nil {
		s.logger.Error("cannot keep the cluster id in raft.db", "cluster_id", id, "err", err)
	}
}

func (s *Store) writeGroupID(id string) error {
	if err := s.logs.Set(keyStableClusterID, []byte(id)); err != nil {
		return fmt.Errorf("storage: keep the cluster id in raft.db: %w", err)
	}
	s.stableGroup.Store(&id)
	return nil
}

// localGroupID is the group this node belongs to, as the Raft transport
// offers and checks it: fsm.db's id, else raft.db's (fsm.db rebuilt after a
// power loss and not yet replayed).
func (s *Store) localGroupID() string {
	if g := s.fsm.groupID(); g != "" {
		return g
	}
	if p := s.stableGroup.Load(); p != nil {
		return *p
	}
	return ""
}
