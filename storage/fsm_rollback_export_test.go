package storage

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"

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
		a := applier{tx: tx, jurisdiction: t.f.jurisdiction, providers: &t.f.providers, idem: &t.f.idem}
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

// CheckProviderCache reports a cached provider that no longer equals the
// record it was decoded from (a caller changed a shared provider).
func (t *TestFSM) CheckProviderCache() error {
	c := &t.f.providers
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.m {
		p := new(bookingv1.Provider)
		if err := proto.Unmarshal(e.raw, p); err != nil {
			return fmt.Errorf("provider %q: cached record does not decode: %w", id, err)
		}
		if !proto.Equal(p, e.p) {
			return fmt.Errorf("provider %q: cached provider was changed after it was decoded", id)
		}
	}
	if len(c.m) == 0 {
		return errors.New("the provider cache is empty: nothing was checked")
	}
	return nil
}
