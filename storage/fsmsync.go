package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/barberpro/edge/storage/durable"
)

// Lazy FSM durability (see DESIGN.md, "Durability"): once a Store runs, the
// FSM commits fsm.db without fsync (bbolt NoSync) and a background loop
// fsyncs it every Config.FSMSyncInterval, before every Raft snapshot and at
// Close. An acknowledged write is durable in the raft log (fdatasynced on every
// StoreLogs) and in the snapshots; fsm.db is only a cache of them that the
// FSM's applied index lets raft and catchUpFSM bring up to date.
//
// A kill -9 loses nothing of fsm.db: the kernel's page cache keeps every
// write. A power loss (or kernel crash) can leave fsm.db torn: bbolt reuses
// pages the last fsynced meta page still references, and the disk may keep
// any subset of the writes since the last fsync. So the FSM records, in
// fsm.db.boot (fsynced before the first unsynced commit), the boot id of the
// kernel it runs under, and replaces it with "clean" once Close has fsynced
// fsm.db. At Open, a marker naming another boot (or unreadable, or
// "broken") means fsm.db was being written without fsync when the machine
// went down: it is discarded and rebuilt from the latest snapshot and the
// Raft log (discardUntrustedFSM, then catchUpFSM and raft's replay).

// fsmBootSuffix names the boot marker beside fsm.db (fsm.db.boot).
const fsmBootSuffix = ".boot"

// Contents of the boot marker.
const (
	markerClean  = "clean"  // fsm.db fsynced at Close: trusted after any restart
	markerOpen   = "open"   // "open <boot id>": unsynced commits since that boot
	markerBroken = "broken" // an fsync of fsm.db failed: never trusted
)

// DefaultFSMSyncInterval is Config.FSMSyncInterval's default, etcd's batch
// interval. 500 ms gave the write-only bench ~24 % less CPU per booking on 3
// nodes but doubled the mixed traffic's p99, and still doubled its p50 once
// reads no longer committed (session 19): storage/DESIGN.md, "Deferred
// commits", "Why 100 ms".
const DefaultFSMSyncInterval = 100 * time.Millisecond

// bootIDPath is where Linux publishes a random id chosen at every boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// bootID returns the running kernel's boot id. Tests replace it
// (export_test.go) to play a reboot; the product always reads bootIDPath.
var bootID = readBootID

func readBootID() (string, error) {
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("%s is empty", bootIDPath)
	}
	return id, nil
}

// fsmTrusted reports whether the fsm.db at path holds a consistent state, by
// its boot marker: no marker (never written without fsync), "clean", or
// "open" with the running kernel's boot id (only the process died: the page
// cache kept every write). Otherwise why says what makes it untrusted.
func fsmTrusted(path string) (ok bool, why string) {
	b, err := os.ReadFile(path + fsmBootSuffix)
	if errors.Is(err, os.ErrNotExist) {
		return true, ""
	}
	if err != nil {
		return false, fmt.Sprintf("cannot read its boot marker: %v", err)
	}
	marker := strings.TrimSpace(string(b))
	if marker == markerClean {
		return true, ""
	}
	state, id, _ := strings.Cut(marker, " ")
	if state != markerOpen || id == "" {
		return false, fmt.Sprintf("its boot marker says %q", marker)
	}
	cur, err := bootID()
	if err != nil {
		return false, fmt.Sprintf("it was written without fsync and the boot id is unknown: %v", err)
	}
	if cur != id {
		return false, fmt.Sprintf("it was written without fsync under boot %s and the machine restarted since (boot %s) without a clean close", id, cur)
	}
	return true, ""
}

// ErrFSMUntrusted is returned by Inspect and VerifyAuditDir for a data dir
// whose fsm.db was being committed without fsync when its machine went down
// (see fsmTrusted): the file may be torn. Opening the node rebuilds it.
var ErrFSMUntrusted = errors.New("storage: fsm.db may be torn by a power loss (committed without fsync before the machine restarted); start the node to rebuild it")

// checkFSMTrusted is fsmTrusted as an error wrapping ErrFSMUntrusted.
func checkFSMTrusted(path string) error {
	if ok, why := fsmTrusted(path); !ok {
		return fmt.Errorf("%w: %s: %s", ErrFSMUntrusted, path, why)
	}
	return nil
}

// discardUntrustedFSM removes the fsm.db at path (and fsyncs its directory)
// when fsmTrusted says no: the caller then opens an empty one, which
// catchUpFSM fills from the latest snapshot and raft from its log. The
// marker stays until startSyncing replaces it, so a crash before that
// discards again (an empty file: harmless).
func discardUntrustedFSM(path string, logger *slog.Logger) error {
	ok, why := fsmTrusted(path)
	if ok {
		return nil
	}
	err := os.Remove(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: discard untrusted %s: %w", path, err)
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("storage: discard untrusted %s: sync dir: %w", path, err)
	}
	logger.Warn("discarded fsm.db: it may be torn by a power loss; rebuilding it from the latest snapshot and the raft log",
		"path", path, "why", why)
	return nil
}

// writeBootMarker writes s to the boot marker of the fsm.db at path, in
// place, and fsyncs it and the directory. A write torn by a crash reads as
// neither "clean" nor "open <id>", so it makes fsm.db untrusted: safe.
func writeBootMarker(path, s string) error {
	p := path + fsmBootSuffix
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = fh.WriteString(s + "\n")
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return durable.SyncDir(filepath.Dir(path))
}

// startSyncing switches the FSM to commits without fsync, made durable by a
// loop that fsyncs fsm.db every `every`; Store.Open calls it after catch-up,
// before raft starts. It first records the boot id in the marker (fsynced).
// Without a boot id (not Linux) or a writable marker it keeps fsyncing every
// commit, as without it. A negative every keeps every commit fsynced too.
func (f *fsm) startSyncing(every time.Duration) {
	if every < 0 {
		f.markCleanIfMarked()
		return
	}
	id, err := bootID()
	if err == nil {
		err = writeBootMarker(f.path, markerOpen+" "+id)
	}
	if err != nil {
		f.logger.Warn("fsm keeps fsyncing every commit: cannot record the boot id it would need after a power loss", "err", err)
		f.markCleanIfMarked()
		return
	}
	f.mu.Lock()
	f.lazy = true
	f.commitEvery = every
	f.synced.Store(f.committed.Load()) // every commit so far was fsynced
	if f.db != nil {
		f.db.NoSync = true
	}
	f.mu.Unlock()
	f.syncStop, f.syncDone = make(chan struct{}), make(chan struct{})
	go f.syncLoop(every)
}

// markCleanIfMarked runs when the FSM keeps fsyncing every commit: if an
// earlier run left a marker (it committed without fsync), fsm.db is fsynced
// (pages that run left in the page cache) and marked clean, so a later
// reboot does not discard a file that is durable.
func (f *fsm) markCleanIfMarked() {
	if _, err := os.Stat(f.path + fsmBootSuffix); err != nil {
		return
	}
	f.mu.RLock()
	err := ErrClosed
	if f.db != nil {
		err = f.fsync(f.db)
	}
	f.mu.RUnlock()
	if err == nil {
		err = writeBootMarker(f.path, markerClean)
	}
	if err != nil {
		f.logger.Warn("cannot mark fsm.db clean: a reboot before the next clean close rebuilds it", "err", err)
	}
}

// syncLoop fsyncs fsm.db every `every` while commits are unsynced, until
// stopSyncing.
func (f *fsm) syncLoop(every time.Duration) {
	defer close(f.syncDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.syncStop:
			return
		case <-t.C:
			f.mu.RLock()
			if f.db != nil {
				_ = f.flush() // a failure is the write fault; retried at the next tick
			}
			_ = f.syncLocked()
			f.mu.RUnlock()
		}
	}
}

// stopSyncing ends syncLoop (if it runs) and waits for it.
func (f *fsm) stopSyncing() {
	if f.syncStop == nil {
		return
	}
	f.syncStopOnce.Do(func() { close(f.syncStop) })
	<-f.syncDone
}

// syncLocked fsyncs fsm.db if it has commits newer than the last fsync.
// Callers hold mu (read or write). A failed fsync may have dropped dirty
// pages (Linux marks them clean): fsm.db can no longer be trusted after any
// restart, so the marker becomes "broken" (the next Open rebuilds it) and
// the FSM reports a write fault until then (Propose refuses, Ready fails).
func (f *fsm) syncLocked() error {
	if !f.lazy || f.db == nil {
		return nil
	}
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	if err := f.syncFault.Load(); err != nil {
		return *err
	}
	idx := f.committed.Load() // committed before the fsync starts
	if idx == f.synced.Load() {
		return nil
	}
	if err := f.fsync(f.db); err != nil {
		err = fmt.Errorf("%w: fsync of fsm.db failed; restart the node to rebuild it from the raft log: %w", ErrStorageUnavailable, err)
		f.syncFault.Store(&err)
		f.wake()
		if merr := writeBootMarker(f.path, markerBroken); merr != nil {
			f.logger.Error("cannot mark fsm.db broken", "err", merr)
		}
		f.logger.Error("fsm.db fsync failed: the node refuses writes until restarted; it then rebuilds fsm.db", "err", err)
		return err
	}
	f.synced.Store(idx)
	return nil
}

// markSynced records that the file now open was fully fsynced (a restore or
// rewrite wrote it so). Callers hold mu.
func (f *fsm) markSynced() { f.synced.Store(f.committed.Load()) }

// closeDurably fsyncs fsm.db, closes it and marks it clean (Close). Callers
// hold mu.
func (f *fsm) closeDurably() error {
	if err := f.flush(); err != nil {
		// Nothing is lost: raft applies these logs again after a restart.
		f.logger.Warn("fsm closes without its last applied logs; they are applied again from the raft log at the next start", "err", err)
		f.discardPendingLocked()
	}
	syncErr := f.syncLocked()
	err := f.db.Close()
	f.db = nil
	if f.lazy && syncErr == nil && err == nil {
		if merr := writeBootMarker(f.path, markerClean); merr != nil {
			err = fmt.Errorf("mark fsm.db clean: %w", merr)
		}
	}
	return errors.Join(syncErr, err)
}
