package storage

import (
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	dto "github.com/prometheus/client_model/go"
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
		for _, name := range fsmBuckets {
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

// WriteFault is the FSM's write fault (nil when healthy).
func (t *TestFSM) WriteFault() error { return t.f.writeFault() }

// SetRetry sets the FSM's retry delays after a failed write.
func (t *TestFSM) SetRetry(min, max time.Duration) { t.f.retryMin, t.f.retryMax = min, max }

// StopRetrying makes a blocked ApplyBatch give up, as Store.Close does.
func (t *TestFSM) StopRetrying() { t.f.stopRetrying() }

// Snapshot takes (and releases) an FSM snapshot, as raft would.
func (t *TestFSM) Snapshot() error {
	s, err := t.f.Snapshot()
	if err == nil {
		s.Release()
	}
	return err
}

// SetStoreRetry sets the retry delays of s's FSM after a failed write.
func SetStoreRetry(s *Store, min, max time.Duration) { s.fsm.retryMin, s.fsm.retryMax = min, max }

// BucketCounts returns the number of keys of every bucket of s's FSM.
func BucketCounts(s *Store) (map[string]int, error) {
	out := map[string]int{}
	err := s.fsm.view(func(tx *bolt.Tx) error {
		for _, name := range fsmBuckets {
			out[string(name)] = tx.Bucket(name).Stats().KeyN
		}
		return nil
	})
	return out, err
}

// OpenTestFSMWith opens a test FSM with a jurisdiction and an OnErase hook.
func OpenTestFSMWith(path, jurisdiction string, onErase func(clientID string, keyIDs []string)) (*TestFSM, error) {
	f, err := openFSM(path, nil)
	if err != nil {
		return nil, err
	}
	f.jurisdiction, f.onErase = jurisdiction, onErase
	return &TestFSM{f: f}, nil
}

// Erasures is the FSM's count of applied erasures (Store.ErasuresApplied).
func (t *TestFSM) Erasures() uint64 { return t.f.erasures.Load() }

// VerifyAudit walks the FSM's audit chain (Store.VerifyAudit).
func (t *TestFSM) VerifyAudit() (AuditReport, error) {
	var rep AuditReport
	var broken error
	err := t.f.view(func(tx *bolt.Tx) error {
		rep, broken = verifyAuditTx(tx)
		return nil
	})
	if err != nil {
		return rep, err
	}
	return rep, broken
}

// SetBootID makes the FSM see id as the kernel's boot id until t ends (a
// changed id plays a reboot). Tests using it must not run in parallel.
func SetBootID(t testing.TB, id string) {
	old := bootID
	bootID = func() (string, error) { return id, nil }
	t.Cleanup(func() { bootID = old })
}

// MarkFSMUnclean writes the boot marker of dataDir's fsm.db as a node that
// was committing without fsync under boot leaves it when it dies.
func MarkFSMUnclean(dataDir, boot string) error {
	return writeBootMarker(filepath.Join(dataDir, FSMFile), markerOpen+" "+boot)
}

// SelfSignedTLS is selfSignedTLS for the external tests: mutual TLS on 127.0.0.1
// as cluster builds it (Config.RaftTLS).
var SelfSignedTLS = selfSignedTLS

// ForeignGroupRefused returns how many Raft connections s refused as another
// group's (barberpro_raft_foreign_group_refused_total).
func ForeignGroupRefused(s *Store) float64 {
	var m dto.Metric
	if err := s.foreignRefused.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// ProvidersVersion is Store.ProvidersVersion's number for a bare FSM.
func (t *TestFSM) ProvidersVersion() uint64 { return t.f.providersVer.Load() }

// LeafFill is how full the leaf pages of the named bucket are: the bytes in
// use over the bytes of its leaf pages (bbolt's BucketStats).
func (t *TestFSM) LeafFill(bucket string) (float64, error) {
	var fill float64
	err := t.f.view(func(tx *bolt.Tx) error {
		s := tx.Bucket([]byte(bucket)).Stats()
		fill = float64(s.LeafInuse) / float64(s.LeafAlloc)
		return nil
	})
	return fill, err
}

// PutLegacyIdempotency writes rec where FSMs before session 20 kept an
// idempotency record: under its key in the idempotency bucket, with an
// empty idempotency_time entry.
func (t *TestFSM) PutLegacyIdempotency(rec *bookingv1.IdempotencyRecord) error {
	v, err := marshalOpts.Marshal(rec)
	if err != nil {
		return err
	}
	return t.f.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketIdempotency).Put([]byte(rec.Key), v); err != nil {
			return err
		}
		return tx.Bucket(bucketIdempotencyTime).Put(atKey(rec.CreatedAtMs, rec.Key), []byte{})
	})
}

// LocatedIdempotencyKeys is how many keys the FSM's idempotency locator holds.
func (t *TestFSM) LocatedIdempotencyKeys() int { return t.f.idem.len() }

// HoldLeaderLogSync makes s's raft log fdatasyncs wait until release is
// called (at the latest in t's cleanup), then fail with fail if it is not
// nil; calls reports how many have started.
func HoldLeaderLogSync(t *testing.T, s *Store, fail error) (release func(), calls func() int32) {
	h := holdSync(t, s.logs.log, fail)
	return h.release, h.calls.Load
}

// LogDurableIndex is the last index s's raft log holds on disk.
func LogDurableIndex(s *Store) uint64 { return s.logs.DurableIndex() }
