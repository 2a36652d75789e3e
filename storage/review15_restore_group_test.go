package storage

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// reviewFSMOfGroup opens an FSM in a temp dir whose meta names group id at
// applied index idx.
func reviewFSMOfGroup(t *testing.T, id string, idx uint64) *fsm {
	t.Helper()
	f, err := openFSM(filepath.Join(t.TempDir(), FSMFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.close() })
	err = f.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if err := m.Put(keyClusterID, []byte(id)); err != nil {
			return err
		}
		return m.Put(keyAppliedIndex, u64(idx))
	})
	if err != nil {
		t.Fatal(err)
	}
	g := id
	f.group.Store(&g)
	return f
}

// Review s15 (second reader): the last line of defence against another
// group's InstallSnapshot is the FSM, which knows its group id: Restore
// swaps in a snapshot of ANY group. Once the transport check is bypassed
// (review15_groupcheck_test.go), an old group's snapshot silently turns a
// restored node into a member of the old group (its cluster id changes, and
// from then on the group check refuses its own group's servers).
func TestReview15_RestoreRefusesASnapshotOfAnotherGroup(t *testing.T) {
	restored := reviewFSMOfGroup(t, "restored-group", 5)
	old := reviewFSMOfGroup(t, "old-group", 500)
	var snap bytes.Buffer
	if err := old.db.View(func(tx *bolt.Tx) error { _, err := tx.WriteTo(&snap); return err }); err != nil {
		t.Fatal(err)
	}
	err := restored.Restore(io.NopCloser(&snap))
	if err == nil || restored.groupID() != "restored-group" {
		t.Fatalf("a snapshot of another group was installed (err %v): the FSM's cluster id is now %q, applied index %d",
			err, restored.groupID(), restored.applied.Load())
	}
}
