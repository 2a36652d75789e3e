package storage

import (
	"io"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// TestFSM exposes the FSM to the external tests (package storage_test).
type TestFSM struct{ f *fsm }

func OpenTestFSM(path string) (*TestFSM, error) {
	f, err := openFSM(path, nil)
	if err != nil {
		return nil, err
	}
	return &TestFSM{f: f}, nil
}

// Apply applies one command log with raw data at index.
func (t *TestFSM) Apply(index uint64, data []byte) []*bookingv1.CommandResult {
	r := t.f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data})
	res, _ := r.([]*bookingv1.CommandResult)
	return res
}

func (t *TestFSM) ApplyLogs(logs []*raft.Log) []interface{}    { return t.f.ApplyBatch(logs) }
func (t *TestFSM) Restore(rc io.ReadCloser) error              { return t.f.Restore(rc) }
func (t *TestFSM) Digest() ([]byte, error)                     { return t.f.digest() }
func (t *TestFSM) Dump() (map[string]map[string]string, error) { return dump(t.f) }
func (t *TestFSM) AppliedIndex() uint64                        { return t.f.applied.Load() }
func (t *TestFSM) Close() error                                { return t.f.close() }

// DumpStore returns every record of every bucket (meta included) of s's FSM.
func DumpStore(s *Store) (map[string]map[string]string, error) { return dump(s.fsm) }

func dump(f *fsm) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	err := f.view(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			m := map[string]string{}
			if err := tx.Bucket(name).ForEach(func(k, v []byte) error {
				m[string(k)] = string(v)
				return nil
			}); err != nil {
				return err
			}
			out[string(name)] = m
		}
		return nil
	})
	return out, err
}

// DataDir returns the data directory s was opened on.
func DataDir(s *Store) string { return s.cfg.DataDir }

// SetInstallHook makes h run in s's FSM where the snapshot-restore failpoint
// fires (raft's snapshot install, copy on disk, not yet live); an error from
// h aborts that install. nil removes it.
func SetInstallHook(s *Store, h func() error) {
	if h == nil {
		s.fsm.installHook.Store(nil)
		return
	}
	s.fsm.installHook.Store(&h)
}
