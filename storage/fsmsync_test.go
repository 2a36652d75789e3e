package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// withBootID makes bootID answer id until t ends.
func withBootID(t *testing.T, id string) {
	t.Helper()
	old := bootID
	bootID = func() (string, error) { return id, nil }
	t.Cleanup(func() { bootID = old })
}

// providerEntries are log entries from..to, each creating a provider.
func providerEntries(t *testing.T, from, to uint64) []*raft.Log {
	t.Helper()
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, providerEntry(t, i, 1, fmt.Sprint("p", i)))
	}
	return out
}

// openLazyFSM opens an FSM at dir/fsm.db that commits without fsync; its
// loop fsyncs every `every`.
func openLazyFSM(t *testing.T, dir string, every time.Duration) *fsm {
	t.Helper()
	f, err := openFSM(filepath.Join(dir, FSMFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.startSyncing(every)
	if !f.lazy {
		t.Fatal("startSyncing did not switch to commits without fsync")
	}
	return f
}

// die drops f as kill -9 would: no fsync, no marker, the open transaction
// never committed (fsmcommit.go); the files keep what the page cache has
// (every commit).
func die(f *fsm) {
	f.stopSyncing()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pendMu.Lock()
	if f.pend != nil {
		_ = f.pend.tx.Rollback()
		f.pend = nil
	}
	f.pendMu.Unlock()
	_ = f.db.Close() // bbolt's Close does not fsync
	f.db = nil
}

// TestFSM_KillNineKeepsUnsyncedCommits: commits after the last fsync survive
// a process crash (the page cache keeps them), the marker of the same boot
// keeps the file trusted, the logs of the transaction still open are not in
// fsm.db, and raft's replay of every entry applies exactly those again.
func TestFSM_KillNineKeepsUnsyncedCommits(t *testing.T) {
	withBootID(t, "boot-1")
	dir := t.TempDir()
	entries := providerEntries(t, 1, 20)
	ref, err := openFSM(filepath.Join(t.TempDir(), FSMFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.close()
	ref.ApplyBatch(entries)
	want, _ := ref.digest()

	f := openLazyFSM(t, dir, time.Hour)
	f.ApplyBatch(entries[:10])
	f.mu.RLock()
	if err := f.flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.syncLocked(); err != nil {
		t.Fatal(err)
	}
	f.mu.RUnlock()
	synced := f.synced.Load()
	for _, e := range entries[10:15] {
		f.ApplyBatch([]*raft.Log{e})
	}
	f.mu.RLock()
	if err := f.flush(); err != nil { // committed, not fsynced
		t.Fatal(err)
	}
	f.mu.RUnlock()
	for _, e := range entries[15:] { // applied, not committed
		f.ApplyBatch([]*raft.Log{e})
	}
	if f.synced.Load() != synced {
		t.Fatalf("fsynced at %d without being asked (loop every hour)", f.synced.Load())
	}
	if f.applied.Load() != 20 || f.committed.Load() != 15 {
		t.Fatalf("applied %d, committed %d before the kill; want 20 and 15 (commits every hour)", f.applied.Load(), f.committed.Load())
	}
	die(f)

	g, err := openFSM(filepath.Join(dir, FSMFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if got := g.applied.Load(); got != 15 {
		t.Fatalf("applied index %d after kill -9, want 15 (last fsync at %d, last commit at 15)", got, synced)
	}
	for i, r := range g.ApplyBatch(entries) { // raft replays from its snapshot (none)
		if (r != nil) != (i >= 15) {
			t.Fatalf("entry %d: answer %v after the replay (entries 1-15 are in fsm.db, 16-20 are not)", i+1, r)
		}
	}
	if got, _ := g.digest(); !bytes.Equal(got, want) {
		t.Fatal("state after kill -9 and replay differs from applying every entry once")
	}
}

// TestFSM_SnapshotFsyncsFirst: a Raft snapshot of an FSM with unsynced
// commits fsyncs fsm.db before it captures the state, so fsm.db durably holds
// the snapshot's index before raft may compact its log.
func TestFSM_SnapshotFsyncsFirst(t *testing.T) {
	withBootID(t, "boot-1")
	f := openLazyFSM(t, t.TempDir(), time.Hour)
	defer f.close()
	f.ApplyBatch(providerEntries(t, 1, 5))
	if f.synced.Load() >= 5 {
		t.Fatalf("fsynced up to %d before the snapshot (loop every hour)", f.synced.Load())
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if got := f.synced.Load(); got != 5 {
		t.Fatalf("fsm.db fsynced up to %d when the snapshot of index 5 was taken", got)
	}
}

// TestFSM_SyncLoopAndCleanClose: the loop fsyncs unsynced commits on its own,
// and Close leaves a clean marker, trusted after a reboot.
func TestFSM_SyncLoopAndCleanClose(t *testing.T) {
	withBootID(t, "boot-1")
	dir := t.TempDir()
	f := openLazyFSM(t, dir, 5*time.Millisecond)
	f.ApplyBatch(providerEntries(t, 1, 3))
	deadline := time.Now().Add(5 * time.Second)
	for f.synced.Load() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("loop fsynced up to %d, applied 3", f.synced.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := f.close(); err != nil {
		t.Fatal(err)
	}
	withBootID(t, "boot-2")
	if ok, why := fsmTrusted(filepath.Join(dir, FSMFile)); !ok {
		t.Fatalf("cleanly closed fsm.db untrusted after a reboot: %s", why)
	}
}

// TestFSM_BootMarker is the rule deciding whether fsm.db is trusted at Open.
func TestFSM_BootMarker(t *testing.T) {
	withBootID(t, "boot-2")
	for _, tc := range []struct {
		name   string
		marker *string // nil: no marker file
		want   bool
	}{
		{"no marker (never written without fsync)", nil, true},
		{"clean close", ptr("clean\n"), true},
		{"crash, same boot", ptr("open boot-2\n"), true},
		{"crash, then reboot", ptr("open boot-1\n"), false},
		{"fsync failed", ptr("broken\n"), false},
		{"torn marker", ptr(""), false},
		{"open without id", ptr("open\n"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FSMFile)
			if tc.marker != nil {
				if err := os.WriteFile(path+fsmBootSuffix, []byte(*tc.marker), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got, why := fsmTrusted(path); got != tc.want {
				t.Fatalf("trusted = %v (%s), want %v", got, why, tc.want)
			}
		})
	}
	t.Run("boot id unknown", func(t *testing.T) {
		bootID = func() (string, error) { return "", os.ErrNotExist }
		path := filepath.Join(t.TempDir(), FSMFile)
		if err := writeBootMarker(path, "open boot-2"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := fsmTrusted(path); ok {
			t.Fatal("trusted an unsynced fsm.db without knowing the boot")
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestFSM_NoBootIDKeepsFsync: without a boot id the FSM cannot tell a
// reboot, so it keeps fsyncing every commit.
func TestFSM_NoBootIDKeepsFsync(t *testing.T) {
	old := bootID
	bootID = func() (string, error) { return "", os.ErrNotExist }
	t.Cleanup(func() { bootID = old })
	f, err := openFSM(filepath.Join(t.TempDir(), FSMFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	f.startSyncing(time.Millisecond)
	if f.lazy || f.db.NoSync {
		t.Fatal("commits without fsync and without a boot id")
	}
}

// TestFSM_FsyncEveryCommitMarksClean: a run that fsyncs every commit
// (FSMSyncInterval < 0) after one that did not fsyncs what that run left and
// marks fsm.db clean, so a reboot keeps it.
func TestFSM_FsyncEveryCommitMarksClean(t *testing.T) {
	withBootID(t, "boot-1")
	dir := t.TempDir()
	f := openLazyFSM(t, dir, time.Hour)
	f.ApplyBatch(providerEntries(t, 1, 3))
	die(f)
	g, err := openFSM(filepath.Join(dir, FSMFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	g.startSyncing(-1)
	if g.lazy {
		t.Fatal("FSMSyncInterval < 0 commits without fsync")
	}
	withBootID(t, "boot-2")
	if ok, why := fsmTrusted(filepath.Join(dir, FSMFile)); !ok {
		t.Fatalf("fsm.db fsynced on every commit untrusted after a reboot: %s", why)
	}
}

// TestFSM_FailedFsync: a failed fsync of fsm.db (its dirty pages may be
// gone) makes the FSM refuse (write fault, no snapshot) until a restart, and
// marks the file broken so the next Open rebuilds it, even under the same
// boot.
func TestFSM_FailedFsync(t *testing.T) {
	withBootID(t, "boot-1")
	dir := t.TempDir()
	f := openLazyFSM(t, dir, time.Hour)
	eio := errors.New("input/output error")
	f.fsync = func(*bolt.DB) error { return eio }
	f.ApplyBatch(providerEntries(t, 1, 2))
	if _, err := f.Snapshot(); !errors.Is(err, eio) || !errors.Is(err, ErrStorageUnavailable) {
		t.Fatalf("Snapshot after a failed fsync: %v", err)
	}
	if err := f.writeFault(); !errors.Is(err, ErrStorageUnavailable) {
		t.Fatalf("write fault after a failed fsync: %v", err)
	}
	if err := f.close(); !errors.Is(err, eio) {
		t.Fatalf("Close after a failed fsync: %v", err)
	}
	if ok, _ := fsmTrusted(filepath.Join(dir, FSMFile)); ok {
		t.Fatal("fsm.db trusted after a failed fsync")
	}
}

// TestReadIdentity_UntrustedFSM: a data dir whose fsm.db may be torn by a
// power loss is read without opening fsm.db (bbolt could panic on it), and
// Inspect and VerifyAuditDir refuse it (ErrFSMUntrusted).
func TestReadIdentity_UntrustedFSM(t *testing.T) {
	withBootID(t, "boot-2")
	dir := t.TempDir()
	path := filepath.Join(dir, FSMFile)
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xff}, 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeBootMarker(path, "open boot-1"); err != nil {
		t.Fatal(err)
	}
	id, err := ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !id.HasState || id.DiskID == "" {
		t.Fatalf("identity %+v", id)
	}
	if _, err := Inspect(dir); !errors.Is(err, ErrFSMUntrusted) {
		t.Fatalf("Inspect: %v, want ErrFSMUntrusted", err)
	}
	if _, err := VerifyAuditDir(dir); !errors.Is(err, ErrFSMUntrusted) {
		t.Fatalf("VerifyAuditDir: %v, want ErrFSMUntrusted", err)
	}
}
