package storage

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/barberpro/edge/storage/durable"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// fsmSnapshot streams a consistent copy of the FSM's bbolt file: the read
// transaction begun in fsm.Snapshot (cheap; raft's FSM goroutine continues
// applying while Persist writes). bbolt's tx.WriteTo copies the file as of
// that transaction, meta bucket included, so the restored copy knows the
// applied index it reflects.
//
// Caveat: while Persist runs, the open read transaction pins the old pages and
// a write that must grow the mmap waits for it; snapshots are rare
// (Config.SnapshotThreshold / SnapshotInterval).
type fsmSnapshot struct {
	once sync.Once
	tx   *bolt.Tx
}

var _ raft.FSMSnapshot = (*fsmSnapshot)(nil)

// Persist writes the copy to sink and closes it (or cancels it on error).
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	defer s.Release()
	if _, err := s.tx.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("storage: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release ends the read transaction. Safe to call more than once.
func (s *fsmSnapshot) Release() {
	s.once.Do(func() { _ = s.tx.Rollback() })
}

// restoreSuffix names the temporary copy a restore writes beside fsm.db
// (fsm.db.restore-<random>); a crash can leave one behind.
const restoreSuffix = ".restore-"

// restore writes the stream to a temporary file beside fsm.db, fsyncs it,
// checks it opens as a bbolt file with our buckets, runs beforeSwap (nil for
// none; an error aborts), then — holding mu, so no reader sees a half state —
// closes the live db, renames the copy over it (atomic on POSIX), fsyncs the
// directory and reopens. If anything fails before the rename, the live db is
// untouched.
func (f *fsm) restore(r io.Reader, own string, beforeSwap func() error) error {
	before := f.erasedClients()
	if err := f.restoreFile(r, own, beforeSwap); err != nil {
		return err
	}
	f.noticeRestoredErasures(before)
	return nil
}

// restoreFile is restore without the erasure notifications.
func (f *fsm) restoreFile(r io.Reader, own string, beforeSwap func() error) error {
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(f.path)+restoreSuffix+"*")
	if err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	tmpPath := tmp.Name()
	renamed := false
	defer func() {
		if !renamed {
			_ = os.Remove(tmpPath)
		}
	}()
	_, err = io.Copy(tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("storage: restore: write %s: %w", tmpPath, err)
	}
	theirs, err := checkSnapshotFile(tmpPath)
	if err != nil {
		return err
	}
	if own != "" && theirs != "" && theirs != own {
		// A snapshot of another Raft group (e.g. the old group's leader
		// reaching a node restored from a backup): installing it would turn
		// this node into a member of that group. Nothing is swapped.
		f.logger.Warn("refused to install a snapshot of another raft group",
			"its_cluster_id", theirs, "cluster_id", own)
		return fmt.Errorf("storage: restore: %w: snapshot of cluster %q, this node is in %q", ErrForeignGroupSnapshot, theirs, own)
	}
	if beforeSwap != nil {
		if err := beforeSwap(); err != nil {
			return fmt.Errorf("storage: restore: %w", err)
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db != nil {
		// What is pending goes into fsm.db first: if anything below fails,
		// the old db stays in service and must hold every applied log.
		if err := f.flush(); err != nil {
			return fmt.Errorf("storage: restore: %w", err)
		}
		if err := f.db.Close(); err != nil {
			return fmt.Errorf("storage: restore: close fsm: %w", err)
		}
		f.db = nil
	}
	if err := os.Rename(tmpPath, f.path); err != nil {
		// Put the old file back in service before reporting.
		if oerr := f.openDB(); oerr != nil {
			return errors.Join(fmt.Errorf("storage: restore: rename: %w", err), oerr)
		}
		return fmt.Errorf("storage: restore: rename: %w", err)
	}
	renamed = true
	if err := durable.SyncDir(dir); err != nil {
		f.logger.Warn("fsync of data dir after restore failed", "dir", dir, "err", err)
	}
	if err := f.openDB(); err != nil {
		return err
	}
	f.markSynced() // the copy was fsynced before the rename
	f.providersChanged()
	f.restores.Add(1)
	f.logger.Info("fsm restored from snapshot", "applied_index", f.applied.Load())
	return nil
}

// removeRestoreLeftovers deletes temporary restore copies beside path that a
// crash in the middle of a restore left behind. They never became live; the
// snapshot they came from is still in snapshots/ (see catchUpFSM).
func removeRestoreLeftovers(path string, logger *slog.Logger) {
	dir, prefix := filepath.Dir(path), filepath.Base(path)+restoreSuffix
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // the data dir is created later, or openDB reports the problem
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil {
			logger.Warn("cannot remove leftover of an interrupted snapshot restore", "path", p, "err", err)
			continue
		}
		logger.Info("removed leftover of an interrupted snapshot restore", "path", p)
	}
}

// checkSnapshotFile verifies path is a bbolt file holding the FSM's buckets
// and returns its cluster id ("" if it has none).
func checkSnapshotFile(path string) (string, error) {
	db, err := openBolt(path)
	if err != nil {
		return "", fmt.Errorf("storage: restore: snapshot is not a bbolt file: %w", err)
	}
	defer db.Close()
	var id string
	err = db.View(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("storage: restore: snapshot lacks bucket %q", b)
			}
		}
		id = string(tx.Bucket(bucketMeta).Get(keyClusterID))
		return nil
	})
	return id, err
}

// replayChunk is how many log entries catchUpFSM applies per transaction.
const replayChunk = 256

// catchUpFSM brings the FSM up to the latest snapshot before raft starts.
//
// With NoSnapshotRestoreOnStart raft takes the latest snapshot's index as
// applied at start and hands the FSM only the entries after it, so an FSM
// behind that snapshot would stay behind for good: fsm.db rolled back, lost
// or recreated empty, or a crash in the middle of InstallSnapshot (raft
// persists the leader's snapshot before the FSM's Restore makes it live, and
// compacts its log only afterwards). The rule, when the FSM's applied index A
// is below the latest snapshot's index S:
//
//   - if the log holds every entry A+1..S and its entry at S has the
//     snapshot's term (so, by Raft's log matching, they are the committed
//     entries the snapshot reflects), those entries are applied to the FSM;
//   - otherwise the snapshot is restored into the FSM (the newest that
//     restores; an older one only if the log then covers the rest up to S).
//
// Either way the FSM reflects S when raft starts. It errors, and the node must
// not start, when neither works.
//
// A below S is also normal when the entries A+1..S are no-op or barrier
// entries, which raft counts but never hands to the FSM: the log usually
// holds them (TrailingLogs) and replaying them changes nothing; if it does
// not, the snapshot is restored again, which is redundant but correct.
func catchUpFSM(f *fsm, logs raft.LogStore, snaps raft.SnapshotStore, logger *slog.Logger) error {
	metas, err := snaps.List()
	if err != nil {
		return fmt.Errorf("storage: list snapshots: %w", err)
	}
	applied := f.applied.Load()
	if len(metas) == 0 || applied >= metas[0].Index {
		return nil
	}
	latest := metas[0]
	log := logger.With("fsm_applied_index", applied, "snapshot", latest.ID, "snapshot_index", latest.Index)
	n, err := replayLog(f, logs, applied, latest.Index, latest.Term)
	if err == nil {
		if n > 0 {
			log.Info("fsm was behind the latest snapshot: applied the missing entries from the log", "entries", n)
		}
		return nil
	}
	if !errors.Is(err, errLogGap) {
		return err
	}
	log.Warn("fsm is behind the latest snapshot and the log does not cover the gap (interrupted snapshot install or lost fsm.db): restoring the snapshot before starting raft", "why", err)
	var errs []error
	for i, m := range metas {
		if m.Index <= applied {
			break // older snapshots cannot bring the FSM further
		}
		if err := restoreFromStore(f, snaps, m.ID); err != nil {
			log.Error("cannot restore snapshot", "id", m.ID, "err", err)
			errs = append(errs, err)
			continue
		}
		if i == 0 {
			return nil
		}
		// An older snapshot: the log must carry the FSM from it to the latest.
		from := f.applied.Load()
		n, err := replayLog(f, logs, from, latest.Index, latest.Term)
		if err != nil {
			errs = append(errs, fmt.Errorf("after restoring snapshot %s: %w", m.ID, err))
			break
		}
		log.Warn("restored an older snapshot and applied the log up to the latest one", "id", m.ID, "entries", n)
		return nil
	}
	return fmt.Errorf("storage: fsm at index %d is behind snapshot %s (index %d) and cannot catch up: %w",
		applied, latest.ID, latest.Index, errors.Join(errs...))
}

// errLogGap means the log does not hold the entries needed (catchUpFSM).
var errLogGap = errors.New("log does not cover the gap")

// replayLog applies to the FSM the Command and Configuration entries (those
// raft hands the FSM) of logs after index from up to index to, after checking
// that the log holds all of them and that the entry at to has term toTerm.
// It returns how many entries it applied; errLogGap if the log does not cover
// the range (nothing applied then).
func replayLog(f *fsm, logs raft.LogStore, from, to, toTerm uint64) (int, error) {
	first, err := logs.FirstIndex()
	if err != nil {
		return 0, fmt.Errorf("storage: log first index: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return 0, fmt.Errorf("storage: log last index: %w", err)
	}
	if first == 0 || first > from+1 || last < to {
		return 0, fmt.Errorf("%w: log holds [%d, %d], need [%d, %d]", errLogGap, first, last, from+1, to)
	}
	var end raft.Log
	if err := logs.GetLog(to, &end); err != nil {
		return 0, fmt.Errorf("%w: entry %d: %w", errLogGap, to, err)
	}
	if end.Term != toTerm {
		return 0, fmt.Errorf("%w: entry %d has term %d, the snapshot term %d", errLogGap, to, end.Term, toTerm)
	}
	n := 0
	batch := make([]*raft.Log, 0, replayChunk)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		f.ApplyBatch(batch)
		last := batch[len(batch)-1].Index
		if got := f.applied.Load(); got < last {
			return fmt.Errorf("storage: replaying the log into the fsm: applied index %d after entries up to %d", got, last)
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	for i := from + 1; i <= to; i++ {
		l := new(raft.Log)
		if err := logs.GetLog(i, l); err != nil {
			if ferr := flush(); ferr != nil {
				return n, ferr
			}
			if errors.Is(err, raft.ErrLogNotFound) {
				return n, fmt.Errorf("%w: entry %d: %w", errLogGap, i, err)
			}
			return n, fmt.Errorf("storage: replay entry %d: %w", i, err)
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			batch = append(batch, l)
		}
		if len(batch) == replayChunk {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	return n, flush()
}

// restoreFromStore restores snapshot id of snaps into f (no failpoint: this is
// Open's own catch-up, repeated from scratch if it is interrupted).
func restoreFromStore(f *fsm, snaps raft.SnapshotStore, id string) error {
	_, rc, err := snaps.Open(id)
	if err != nil {
		return fmt.Errorf("storage: open snapshot %s: %w", id, err)
	}
	defer rc.Close()
	return f.restore(rc, "", nil)
}
