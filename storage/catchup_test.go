package storage

import (
	"bytes"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// catchUpFixture is a data dir's worth of pieces for catchUpFSM: a source FSM
// whose state at chosen indexes becomes snapshots, a log store and a fresh
// (empty) FSM to catch up.
type catchUpFixture struct {
	t     *testing.T
	dir   string
	src   *fsm
	logs  *LogStore
	snaps *raft.FileSnapshotStore
	dst   *fsm
}

func newCatchUpFixture(t *testing.T) *catchUpFixture {
	t.Helper()
	dir := t.TempDir()
	x := &catchUpFixture{t: t, dir: dir}
	var err error
	if x.src, err = openFSM(filepath.Join(dir, "src.db"), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.src.close() })
	if x.logs, err = OpenLogStore(filepath.Join(dir, RaftFile)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.logs.Close() })
	if x.snaps, err = raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, SnapshotsDir), snapshotsRetained, newHclogAdapter(slog.New(slog.DiscardHandler), "snapshots")); err != nil {
		t.Fatal(err)
	}
	if x.dst, err = openFSM(filepath.Join(dir, FSMFile), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.dst.close() })
	return x
}

// providerEntry is a log entry creating provider id.
func providerEntry(t *testing.T, index, term uint64, id string) *raft.Log {
	t.Helper()
	data, err := proto.Marshal(&bookingv1.CommandBatch{Commands: []*bookingv1.Command{{
		ProposedAtMs: 1,
		Op: &bookingv1.Command_CreateProvider{CreateProvider: &bookingv1.CreateProvider{
			Provider: &bookingv1.Provider{Id: id, Timezone: "America/Argentina/Buenos_Aires"},
		}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: term, Type: raft.LogCommand, Data: data}
}

// applySrc applies entries to the source FSM.
func (x *catchUpFixture) applySrc(entries ...*raft.Log) { x.src.ApplyBatch(entries) }

// snapshot persists the source FSM as a snapshot at index/term and returns
// its id.
func (x *catchUpFixture) snapshot(index, term uint64) string {
	x.t.Helper()
	sink, err := x.snaps.Create(raft.SnapshotVersionMax, index, term, raft.Configuration{}, 1, nil)
	if err != nil {
		x.t.Fatal(err)
	}
	snap, err := x.src.Snapshot()
	if err != nil {
		x.t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		x.t.Fatal(err)
	}
	return sink.ID()
}

func (x *catchUpFixture) storeLogs(entries ...*raft.Log) {
	x.t.Helper()
	if err := x.logs.StoreLogs(entries); err != nil {
		x.t.Fatal(err)
	}
}

func (x *catchUpFixture) hasProvider(f *fsm, id string) bool {
	var ok bool
	if err := f.view(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketProviders).Get([]byte(id)) != nil
		return nil
	}); err != nil {
		x.t.Fatal(err)
	}
	return ok
}

func (x *catchUpFixture) sameState() bool {
	x.t.Helper()
	a, err := x.src.digest()
	if err != nil {
		x.t.Fatal(err)
	}
	b, err := x.dst.digest()
	if err != nil {
		x.t.Fatal(err)
	}
	return bytes.Equal(a, b)
}

// TestCatchUpFSM_DivergentLogIsNotReplayed: the log holds every index up to
// the snapshot's, but from another term (entries of a deposed leader that
// never committed). Replaying them would make this replica diverge: the
// snapshot must be restored instead.
func TestCatchUpFSM_DivergentLogIsNotReplayed(t *testing.T) {
	x := newCatchUpFixture(t)
	var committed, stale []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		committed = append(committed, providerEntry(t, i, 2, "p"+string(rune('a'+i))))
		stale = append(stale, providerEntry(t, i, 1, "stale"+string(rune('a'+i))))
	}
	x.applySrc(committed...)
	x.snapshot(10, 2)
	x.storeLogs(stale...)
	if err := catchUpFSM(x.dst, x.logs, x.snaps, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if x.hasProvider(x.dst, "staleb") || !x.sameState() || x.dst.applied.Load() != 10 {
		t.Fatalf("FSM after catch-up: applied %d, stale entries applied %v, same state as the snapshot %v",
			x.dst.applied.Load(), x.hasProvider(x.dst, "staleb"), x.sameState())
	}
}

// TestCatchUpFSM_OlderSnapshotThenLog: the newest snapshot is damaged, the log
// does not reach back to the FSM's index, but an older snapshot plus the log
// after it reach the newest snapshot's index.
func TestCatchUpFSM_OlderSnapshotThenLog(t *testing.T) {
	x := newCatchUpFixture(t)
	var entries []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		entries = append(entries, providerEntry(t, i, 3, "p"+string(rune('a'+i))))
	}
	x.applySrc(entries[:5]...)
	x.snapshot(5, 3)
	x.applySrc(entries[5:]...)
	newest := x.snapshot(10, 3)
	x.storeLogs(entries[3:]...) // [4, 10]: compacted below 4
	state := filepath.Join(x.dir, SnapshotsDir, "snapshots", newest, "state.bin")
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := catchUpFSM(x.dst, x.logs, x.snaps, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if x.dst.applied.Load() != 10 || !x.sameState() {
		t.Fatalf("applied %d, same state as the source %v", x.dst.applied.Load(), x.sameState())
	}
	// No restore copy is left beside fsm.db.
	var left []string
	_ = filepath.WalkDir(x.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && bytes.Contains([]byte(d.Name()), []byte(restoreSuffix)) {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("restore copies left: %v", left)
	}
}
