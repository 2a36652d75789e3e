package storage

import (
	"errors"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// errRolledBack ends ApplyRolledBack's transaction.
var errRolledBack = errors.New("rolled back on purpose")

// ApplyRolledBack applies the commands of logs as ApplyBatch does, in one
// transaction that is then rolled back (as a failed bbolt write is): what
// the FSM keeps between transactions (its providerCache) sees every
// uncommitted write, fsm.db none.
func (t *TestFSM) ApplyRolledBack(logs []*raft.Log) error {
	err := t.f.db.Update(func(tx *bolt.Tx) error {
		a := applier{tx: tx, jurisdiction: t.f.jurisdiction, providers: &t.f.providers}
		for _, l := range logs {
			if l.Type == raft.LogCommand {
				a.index = l.Index
				a.applyLog(l)
			}
		}
		return errRolledBack
	})
	if errors.Is(err, errRolledBack) {
		return nil
	}
	return err
}
