package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/barberpro/edge/storage/durable"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// The erasure bound (crypto-shredding on disk). EraseHealthData deletes a
// client's wrapped data key and sealed notes from the FSM, but copies of their
// bytes live on in the data dir: in the Raft log entries that carried them
// (PutClientKey, PutNote), in snapshots taken before the erasure, and in the
// free pages of fsm.db and raft.db (bbolt is copy-on-write: a deleted value
// stays in a freed page until the page is reused). A shred removes all of
// them:
//
//  1. fsm.db is rewritten without free pages: bbolt Compact into a new file
//     beside the old one, fsync, atomic rename over it, fsync of the dir,
//     reopen, under the lock that keeps the FSM's readers and writers out.
//     This comes first because a snapshot is a copy of the whole bbolt file
//     (tx.WriteTo), free pages included;
//  2. a Raft user snapshot with TrailingLogs set to 0 for it (ReloadConfig,
//     restored right after), so raft truncates the log up to the snapshot,
//     which reflects the erasure;
//  3. every older snapshot directory (and leftover temporary one) is removed;
//  4. raft.db is rewritten without free pages, as fsm.db was, under the
//     LogStore's lock.
//
// After a node applies an EraseHealthData, its shred loop starts a shred
// within Config.ShredWithin, so the bound on a node is ShredWithin plus one
// snapshot and the two compactions. Store.ShredNow runs one at once.

// DefaultShredWithin is Config.ShredWithin's default.
const DefaultShredWithin = time.Minute

const (
	// compactSuffix names the temporary copy a rewrite writes beside fsm.db or
	// raft.db (fsm.db.compact-<random>); a crash can leave one behind.
	compactSuffix = ".compact-"
	// compactTxBytes is how many bytes of keys and values one transaction of
	// the rewrite copies (bbolt Compact's txMaxSize).
	compactTxBytes = 64 << 20
	// shredPendingFile, in the data dir, records that an erasure was applied
	// and not yet shredded: a shred interrupted by a crash runs again at the
	// next Open. Empty; its presence is the record.
	shredPendingFile = "shred.pending"
	// shredDoneFile, in the data dir, holds the erasure count (erasureCount:
	// Erasure records plus the key ids they name) of the FSM when the last
	// complete shred began (decimal): an Open that finds more shreds, whether
	// or not shred.pending survived; a client erased again (a new key) counts.
	shredDoneFile = "shred.done"
	// raftSnapshotsSubdir is where raft's FileSnapshotStore keeps its snapshot
	// directories under SnapshotsDir; tmpSnapshotSuffix marks one being written.
	raftSnapshotsSubdir = "snapshots"
	tmpSnapshotSuffix   = ".tmp"
)

// errShredIncomplete: the shred could not truncate the log past the erasure
// (raft had nothing new to snapshot, or refused); the loop retries.
var errShredIncomplete = errors.New("storage: shred incomplete")

// validateShred checks ShredWithin for Config.Validate.
func (c Config) validateShred() []error {
	if c.ShredWithin <= 0 {
		return []error{fmt.Errorf("ShredWithin (%s) must be positive", c.ShredWithin)}
	}
	return nil
}

// ShredNow runs a shred at once (see the erasure bound above): fsm.db
// rewritten without free pages, a Raft snapshot with the log truncated up to
// it, older snapshots removed, raft.db rewritten without free pages. It
// returns an error when any step failed, or when raft took no snapshot
// reaching the FSM's applied index (the log may then still hold older
// entries; the rewrites ran anyway). Safe to call concurrently with
// everything; shreds run one at a time.
func (s *Store) ShredNow(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.shred(ctx)
}

// shred is ShredNow's body, shared with the shred loop.
func (s *Store) shred(ctx context.Context) error {
	s.shredMu.Lock()
	defer s.shredMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	target := s.fsm.applied.Load()
	erasures := s.fsm.erasureCount()
	var errs []error
	// fsm.db first: a snapshot is a copy of the whole file (tx.WriteTo), free
	// pages included, so it must be taken from the rewritten file.
	if err := s.fsm.rewrite(); err != nil {
		errs = append(errs, err)
	}
	snapErr := s.truncatingSnapshot()
	nothingNew := errors.Is(snapErr, raft.ErrNothingNewToSnapshot)
	if snapErr != nil && !nothingNew {
		errs = append(errs, snapErr)
	}
	clean, err := s.logTruncatedPast(target)
	switch {
	case err != nil:
		errs = append(errs, err)
	case clean:
		if err := s.removeOlderSnapshots(); err != nil {
			errs = append(errs, err)
		}
	case snapErr == nil || nothingNew:
		why := "the latest snapshot or the log start is not past index %d"
		if nothingNew {
			why = "raft has nothing new to snapshot; " + why
		}
		errs = append(errs, fmt.Errorf("%w: "+why, errShredIncomplete, target))
	}
	if err := s.logs.rewrite(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("storage: shred: %w", err)
	}
	if err := writeShredDone(s.cfg.DataDir, erasures); err != nil {
		s.logger.Warn("cannot record the completed shred in the data dir", "err", err)
	}
	s.logger.Info("shredded: log truncated to a new snapshot, older snapshots removed, fsm.db and raft.db rewritten",
		"index", target, "took", time.Since(start))
	return nil
}

// truncatingSnapshot takes a Raft user snapshot with TrailingLogs 0, so raft
// truncates the log up to it, and restores TrailingLogs after. When raft has
// nothing new to snapshot (nothing applied since this process started) and
// this node leads, it commits a barrier and tries once more.
func (s *Store) truncatingSnapshot() error {
	prev := s.raft.ReloadableConfig()
	rc := prev
	rc.TrailingLogs = 0
	if err := s.raft.ReloadConfig(rc); err != nil {
		return fmt.Errorf("set TrailingLogs 0: %w", err)
	}
	defer func() {
		// Put back what was there unless someone changed it meanwhile.
		cur := s.raft.ReloadableConfig()
		if cur.TrailingLogs == 0 {
			cur.TrailingLogs = prev.TrailingLogs
			if err := s.raft.ReloadConfig(cur); err != nil {
				s.logger.Error("cannot restore TrailingLogs after a shred snapshot", "trailing_logs", prev.TrailingLogs, "err", err)
			}
		}
	}()
	err := s.raft.Snapshot().Error()
	if errors.Is(err, raft.ErrNothingNewToSnapshot) && s.IsLeader() {
		if berr := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); berr == nil {
			err = s.raft.Snapshot().Error()
		}
	}
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// logTruncatedPast reports whether no Raft log entry at or below index is left
// and the latest snapshot reaches index: then nothing older than the snapshot
// is needed any more.
func (s *Store) logTruncatedPast(index uint64) (bool, error) {
	metas, err := s.snaps.List()
	if err != nil {
		return false, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) == 0 || metas[0].Index < index {
		return false, nil
	}
	first, err := s.logs.FirstIndex()
	if err != nil {
		return false, fmt.Errorf("log first index: %w", err)
	}
	return first == 0 || first > index, nil
}

// removeOlderSnapshots deletes every snapshot directory but the latest one,
// including temporary ones left by a crash; a temporary one newer than the
// latest (a snapshot being written right now) stays.
func (s *Store) removeOlderSnapshots() error {
	metas, err := s.snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return nil
	}
	keep := metas[0]
	dir := filepath.Join(s.cfg.DataDir, SnapshotsDir, raftSnapshotsSubdir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read snapshots dir: %w", err)
	}
	var errs []error
	removed := 0
	for _, e := range entries {
		name := e.Name()
		if name == keep.ID {
			continue
		}
		if idx, ok := snapshotIndex(name); ok && idx > keep.Index && strings.HasSuffix(name, tmpSnapshotSuffix) {
			continue // being written after ours
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			errs = append(errs, fmt.Errorf("remove snapshot %s: %w", name, err))
			continue
		}
		removed++
	}
	if removed > 0 {
		if err := durable.SyncDir(dir); err != nil {
			errs = append(errs, fmt.Errorf("sync snapshots dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// snapshotIndex parses the index out of a FileSnapshotStore directory name,
// "<term>-<index>-<unix ms>" with an optional ".tmp".
func snapshotIndex(name string) (uint64, bool) {
	parts := strings.Split(strings.TrimSuffix(name, tmpSnapshotSuffix), "-")
	if len(parts) != 3 {
		return 0, false
	}
	idx, err := strconv.ParseUint(parts[1], 10, 64)
	return idx, err == nil
}

// shredLoop runs until ctx ends: when the FSM has applied an EraseHealthData
// (or restored any snapshot while it holds at least one erasure: the restored
// file may carry erased bytes in free pages; or Open found a shred pending
// from before a crash) it shreds within ShredWithin, coalescing the erasures
// of the first half of that window into one shred; a shred that fails or is
// incomplete is retried every quarter of ShredWithin (at most every second).
func (s *Store) shredLoop(ctx context.Context) {
	defer close(s.shredDone)
	within := s.cfg.ShredWithin
	tick := min(max(within/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	seenErasures, seenRestores := s.fsm.erasures.Load(), s.fsm.restores.Load()
	pending := fileExists(filepath.Join(s.cfg.DataDir, shredPendingFile))
	if done, n := readShredDone(s.cfg.DataDir), s.fsm.erasureCount(); n > done {
		pending = true
	}
	var due time.Time
	if pending {
		due = time.Now().Add(within / 2)
		s.logger.Info("a shred is pending at open (an erasure applied before a restart, or received in a snapshot, was not shredded): shredding")
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, r := s.fsm.erasures.Load(), s.fsm.restores.Load()
		grew := n != seenErasures
		if r != seenRestores && s.fsm.erasureCount() > 0 {
			// Any restore while the FSM holds an erasure: the restored file
			// may carry erased bytes in its free pages (a snapshot taken
			// after an erasure, before its shred), whether or not it brought
			// erasures this node had not seen.
			grew = true
		}
		seenErasures, seenRestores = n, r
		if grew && !pending {
			pending = true
			due = time.Now().Add(within / 2)
			if err := s.markShredPending(); err != nil {
				s.logger.Warn("cannot record the pending shred in the data dir", "err", err)
			}
		}
		if !pending || time.Now().Before(due) {
			continue
		}
		err := s.shred(ctx)
		if err == nil {
			pending = false
			if err := os.Remove(filepath.Join(s.cfg.DataDir, shredPendingFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.logger.Warn("cannot remove the pending shred record", "err", err)
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		level := slog.LevelWarn
		if errors.Is(err, errShredIncomplete) {
			level = slog.LevelInfo
		}
		s.logger.Log(ctx, level, "shred not done, retrying", "err", err, "retry_in", tick)
		due = time.Now().Add(tick)
	}
}

// markShredPending creates the data dir's shred.pending record, durably.
func (s *Store) markShredPending() error {
	p := filepath.Join(s.cfg.DataDir, shredPendingFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return durable.SyncDir(s.cfg.DataDir)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// bucketErasuresName is the FSM bucket of Erasure records (client → Erasure).
var bucketErasuresName = []byte("erasures")

// erasureCount returns how many Erasure records the FSM holds plus the key
// ids they name: it grows with every erasure that destroys something, also a
// second erasure of a client who came back with a new key (one record, one
// more key id).
func (f *fsm) erasureCount() uint64 {
	var n uint64
	_ = f.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketErasuresName)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			e := new(bookingv1.Erasure)
			_ = proto.Unmarshal(v, e) // unreadable: the record counts alone
			n += 1 + uint64(len(e.KeyIds))
			return nil
		})
	})
	return n
}

// readShredDone returns the count in the data dir's shred.done (0 if absent
// or unreadable: a shred then runs, which is always safe).
func readShredDone(dir string) uint64 {
	raw, err := os.ReadFile(filepath.Join(dir, shredDoneFile))
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// writeShredDone replaces the data dir's shred.done with n, atomically.
func writeShredDone(dir string, n uint64) error {
	return durable.WriteBytes(filepath.Join(dir, shredDoneFile), 0o600, []byte(strconv.FormatUint(n, 10)+"\n"))
}

// rewrite rewrites fsm.db without free pages: under mu (no reader, no apply,
// no restore meanwhile) it copies the live db into fsm.db.compact-*, fsyncs,
// closes the live db, renames the copy over fsm.db, fsyncs the dir and
// reopens. Anything failing before the rename leaves the live db in service.
func (f *fsm) rewrite() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return ErrClosed
	}
	if err := f.flush(); err != nil { // the copy must hold every applied log
		return fmt.Errorf("rewrite fsm.db: %w", err)
	}
	tmp, err := compactInto(f.db, f.path)
	if err != nil {
		return fmt.Errorf("rewrite fsm.db: %w", err)
	}
	if err := f.db.Close(); err != nil {
		_ = os.Remove(tmp)
		if oerr := f.openDB(); oerr != nil {
			return errors.Join(fmt.Errorf("rewrite fsm.db: close: %w", err), oerr)
		}
		return fmt.Errorf("rewrite fsm.db: close: %w", err)
	}
	f.db = nil
	if err := os.Rename(tmp, f.path); err != nil {
		_ = os.Remove(tmp)
		if oerr := f.openDB(); oerr != nil {
			return errors.Join(fmt.Errorf("rewrite fsm.db: rename: %w", err), oerr)
		}
		return fmt.Errorf("rewrite fsm.db: rename: %w", err)
	}
	// A failed directory fsync leaves the rename (and so the shred) not
	// durable: reported as an error, like LogStore.rewrite, so the shred is
	// retried rather than marked done.
	serr := durable.SyncDir(filepath.Dir(f.path))
	if err := f.openDB(); err != nil {
		return errors.Join(fmt.Errorf("rewrite fsm.db: reopen: %w", err), serr)
	}
	f.markSynced() // compactInto fsynced the copy
	if serr != nil {
		return fmt.Errorf("rewrite fsm.db: sync dir: %w", serr)
	}
	return nil
}

// compactInto copies every bucket of src into a new bbolt file beside path
// (path + ".compact-<random>", mode 0600), committed and fsynced, and returns
// its name. The new file has no free page holding old data: it was written
// from scratch. On error it removes the file.
func compactInto(src *bolt.DB, path string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+compactSuffix+"*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	err = bolt.Compact(dst, src, compactTxBytes)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// removeCompactLeftovers deletes the temporary files of interrupted rewrites
// (fsm.db.compact-*, raft.db.compact-*, shred.done.tmp-*) in dir. They never
// became live.
func removeCompactLeftovers(dir string, logger *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // created later, or Open reports the problem
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasPrefix(name, FSMFile+compactSuffix) || strings.HasPrefix(name, RaftFile+compactSuffix) ||
			strings.HasPrefix(name, shredDoneFile+".tmp-")) {
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.Remove(p); err != nil {
			logger.Warn("cannot remove leftover of an interrupted rewrite", "path", p, "err", err)
			continue
		}
		logger.Info("removed leftover of an interrupted rewrite", "path", p)
	}
}
