package storage

import "time"

// StartSyncing switches the test FSM to commits without fsync, fsynced in
// the background every `every`, as Store.Open does (fsmsync.go).
func (t *TestFSM) StartSyncing(every time.Duration) { t.f.startSyncing(every) }

// SetCommitEvery replaces the test FSM's commit interval (startSyncing sets
// it; 0 commits every batch).
func (t *TestFSM) SetCommitEvery(d time.Duration) {
	t.f.mu.Lock()
	t.f.commitEvery = d
	t.f.mu.Unlock()
}

// CommittedIndex is the last log index the test FSM's fsm.db holds
// (AppliedIndex may be ahead: deferred commits, fsmcommit.go).
func (t *TestFSM) CommittedIndex() uint64 { return t.f.committed.Load() }

// Commits counts the transactions the test FSM's apply path committed.
func (t *TestFSM) Commits() uint64 { return t.f.commits.Load() }

// Flush commits what the test FSM has pending (fsm.flush).
func (t *TestFSM) Flush() error {
	t.f.mu.RLock()
	defer t.f.mu.RUnlock()
	return t.f.flush()
}

// StoreCommittedIndex is the last log index s's fsm.db holds (Stats'
// AppliedIndex may be ahead: deferred commits).
func StoreCommittedIndex(s *Store) uint64 { return s.fsm.committed.Load() }

// PageWrites counts the pages bbolt has written to the test FSM's fsm.db
// (one pwrite each).
func (t *TestFSM) PageWrites() int64 {
	st := t.f.db.Stats()
	return st.TxStats.GetWrite()
}
