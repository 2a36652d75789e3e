package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/barberpro/edge/storage/durable"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

var (
	// bucketLogs held the log in raft.db before the segment log; read only
	// to migrate it (migrateLog).
	bucketLogs   = []byte("logs")
	bucketStable = []byte("stable")

	// errStableNotFound is the error raft expects (by message) from a
	// StableStore for a missing key.
	errStableNotFound = errors.New("not found")

	keyCurrentTerm = []byte("CurrentTerm") // raft's own key, cached by LogStore
)

// Log entry encoding (version 1), the payload of a segment record after the
// index (segmentlog.go), and the value under the big-endian index in the
// logs bucket of an older raft.db:
//
//	offset size field
//	0      1    format version (1)
//	1      1    raft.LogType
//	2      8    term (big-endian)
//	10     8    AppendedAt, Unix nanoseconds (big-endian int64; 0 = zero time)
//	18     4    len(Data) (big-endian)
//	22     n    Data
//	22+n   ...  Extensions (rest of the value)
const (
	logFormatV1     = 1
	logHeaderLength = 22
)

// LogStore is a raft.LogStore and raft.StableStore. The log is append-only
// segment files in DataDir/raft-log (segLog: one write and one fdatasync per
// StoreLogs); the stable store (term, vote, disk id, cluster id) is the bbolt
// file DataDir/raft.db, every Set committed and fsynced before returning.
//
// It is safe for concurrent use, as raft requires. mu guards db, which a
// rewrite (shred.go) swaps for a compacted copy; the log has its own locks.
type LogStore struct {
	path        string
	logger      *slog.Logger
	mu          sync.RWMutex
	db          *bolt.DB
	log         *segLog
	closed      atomic.Bool
	currentTerm atomic.Uint64 // cached value of raft's CurrentTerm key
	fault       atomic.Pointer[logFault]
	// leading reports whether raft leads its group (set by the Store once
	// raft runs): a leader's appends fdatasync in the background
	// (segmentlog_async.go).
	leading atomic.Pointer[func() bool]
}

// logFault is the LogStore's last write failure, until a write succeeds.
type logFault struct {
	err   error
	op    string
	since time.Time
}

var (
	_ raft.LogStore          = (*LogStore)(nil)
	_ raft.StableStore       = (*LogStore)(nil)
	_ raft.MonotonicLogStore = (*LogStore)(nil)
)

// OpenLogStore opens (creating if needed) the stable store at path (raft.db)
// and the log in the directory RaftLogDir beside it; warnings (a torn tail
// cut, a migration) go to slog's default logger.
func OpenLogStore(path string) (*LogStore, error) { return openLogStore(path, slog.Default()) }

// openLogStore is OpenLogStore with a logger. A raft.db holding log entries
// (bucket logs, written by a release before the segment log) has them moved
// into segments first (migrateLog).
func openLogStore(path string, logger *slog.Logger) (*LogStore, error) {
	s := &LogStore{path: path, logger: logger}
	if err := s.openDB(); err != nil {
		return nil, err
	}
	if err := s.migrateLog(); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	var err error
	if s.log, err = openSegLog(s.logDir(), failpointOn(fpRaftLogNoSync), logger); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	return s, nil
}

func (s *LogStore) logDir() string { return filepath.Join(filepath.Dir(s.path), RaftLogDir) }

// openDB opens s.path, creates the stable bucket and loads the cached term.
// Callers hold mu (or own s exclusively).
func (s *LogStore) openDB() error {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
		NoSync: failpointOn(fpRaftLogNoSync)})
	if err != nil {
		return fmt.Errorf("storage: open log store %s: %w", s.path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketStable)
		if err != nil {
			return err
		}
		if v := b.Get(keyCurrentTerm); len(v) == 8 {
			s.currentTerm.Store(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("storage: init log store: %w", err)
	}
	s.db = db
	return nil
}

// migrateLog moves the log entries of a raft.db written before the segment
// log (bucket logs) into segments, crash-safe at every step: the segments
// are written and fdatasynced in RaftLogDir.tmp, which is renamed into place
// (the dir fsynced) before the bucket is deleted in one transaction. A crash
// before the rename redoes it (the .tmp is removed); after it, the segments
// win and the stale bucket is deleted. Only the last contiguous run of
// entries is kept (a gap means raft installed a snapshot past the older ones).
func (s *LogStore) migrateLog() error {
	dir := s.logDir()
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("storage: raft log migration: %w", err)
	}
	_, err := os.Stat(dir)
	switch {
	case err == nil:
		return s.dropLogsBucket()
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("storage: raft log: %w", err)
	}
	n := 0
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		if b == nil || b.Stats().KeyN == 0 {
			return nil
		}
		// Find the start of the last contiguous run.
		c := b.Cursor()
		var start, prev uint64
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			i := binary.BigEndian.Uint64(k)
			if start == 0 || i != prev+1 {
				start = i
			}
			prev = i
		}
		sl, err := openSegLog(tmp, true, s.logger)
		if err != nil {
			return err
		}
		defer sl.Close()
		batch := make([]*raft.Log, 0, 1024)
		for k, v := c.Seek(u64(start)); k != nil; k, v = c.Next() {
			l := new(raft.Log)
			if err := decodeLog(binary.BigEndian.Uint64(k), v, l); err != nil {
				return err
			}
			batch = append(batch, l)
			if len(batch) == cap(batch) {
				if err := sl.StoreLogs(batch, false); err != nil {
					return err
				}
				n += len(batch)
				batch = batch[:0]
			}
		}
		if err := sl.StoreLogs(batch, false); err != nil {
			return err
		}
		n += len(batch)
		for _, g := range sl.segs {
			if err := durable.Fdatasync(g.f); err != nil {
				return err
			}
		}
		return durable.SyncDir(tmp)
	})
	if err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("storage: raft log migration: %w", err)
	}
	if n == 0 {
		if err := os.Mkdir(tmp, 0o700); err != nil {
			return fmt.Errorf("storage: raft log: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("storage: raft log migration: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("storage: raft log migration: %w", err)
	}
	if n > 0 {
		s.logger.Info("raft log moved from raft.db into segment files", "entries", n, "dir", dir)
	}
	return s.dropLogsBucket()
}

// dropLogsBucket deletes raft.db's bucket logs if present (the log lives in
// segments).
func (s *LogStore) dropLogsBucket() error {
	var has bool
	_ = s.db.View(func(tx *bolt.Tx) error { has = tx.Bucket(bucketLogs) != nil; return nil })
	if !has {
		return nil
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketLogs) }); err != nil {
		return fmt.Errorf("storage: raft log migration: drop raft.db's logs bucket: %w", err)
	}
	return nil
}

// view and update run fn in a read or write transaction on the current db.
func (s *LogStore) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.View(fn)
}

func (s *LogStore) update(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.Update(fn)
}

// Close closes the segment files and the bbolt file.
func (s *LogStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	lerr := s.log.Close()
	var err error
	if s.db != nil {
		err = s.db.Close()
		s.db = nil
	}
	return errors.Join(lerr, err)
}

// rewrite removes from the data dir every byte of what the log and the
// stable store deleted (see shred.go): the oldest segment is rewritten
// without the entries below the first index (segLog.rewrite), then raft.db
// without free pages: under mu (no stable read or write meanwhile) it copies
// the live db into raft.db.compact-*, fsyncs, closes the live db, renames the
// copy over raft.db, fsyncs the dir and reopens. Anything failing before the
// rename leaves the live db in service; a failed reopen is a write fault
// (raft's next write fails too).
func (s *LogStore) rewrite() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.log.rewrite(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return ErrClosed
	}
	tmp, err := compactInto(s.db, s.path)
	if err != nil {
		return fmt.Errorf("rewrite raft.db: %w", err)
	}
	if err := s.db.Close(); err != nil {
		_ = os.Remove(tmp)
		return errors.Join(fmt.Errorf("rewrite raft.db: close: %w", err), s.openDB())
	}
	s.db = nil
	if err := os.Rename(tmp, s.path); err != nil {
		_ = os.Remove(tmp)
		return errors.Join(fmt.Errorf("rewrite raft.db: rename: %w", err), s.openDB())
	}
	serr := durable.SyncDir(filepath.Dir(s.path))
	if err := s.openDB(); err != nil {
		return s.noteWrite("rewrite", fmt.Errorf("rewrite raft.db: reopen: %w", err))
	}
	if serr != nil {
		return fmt.Errorf("rewrite raft.db: sync dir: %w", serr)
	}
	return nil
}

// CurrentTerm returns the last term raft persisted (0 if none).
func (s *LogStore) CurrentTerm() uint64 { return s.currentTerm.Load() }

// IsMonotonic tells raft (raft.MonotonicLogStore) that the log only grows at
// its end: after installing or restoring a snapshot raft deletes the whole
// log instead of leaving a gap.
func (s *LogStore) IsMonotonic() bool { return true }

// FirstIndex returns the first index written, 0 for no entries. After a
// compaction it is the new first index; after a reopen it may be lower
// (entries deleted only logically, still in the oldest segment, are found
// again: they are valid entries raft wrote).
func (s *LogStore) FirstIndex() (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	first, _ := s.log.bounds()
	return first, nil
}

// LastIndex returns the last index written, 0 for no entries.
func (s *LogStore) LastIndex() (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	_, last := s.log.bounds()
	return last, nil
}

// GetLog reads the entry at index into log; raft.ErrLogNotFound if absent.
func (s *LogStore) GetLog(index uint64, log *raft.Log) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.log.GetLog(index, log)
}

// StoreLog stores one entry.
func (s *LogStore) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

// StoreLogs appends entries with one write and one fdatasync; a leader's
// append returns before its fdatasync (DurableIndex says when it is done).
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	if s.closed.Load() {
		return ErrClosed
	}
	f := s.leading.Load()
	return s.noteWrite("store logs", s.log.StoreLogs(logs, f != nil && (*f)()))
}

// DurableIndex is the last log index known to be on the disk: the last one
// stored, except for a leader's appends whose background fdatasync has not
// finished.
func (s *LogStore) DurableIndex() uint64 { return s.log.durableIndex() }

// noteWrite records the outcome of a write: a failure (disk full, I/O
// error) is kept as the store's fault. Success does not clear it: on a full
// disk a small append still fits in the last page a segment file already
// has, and a small Set in a free page of raft.db, so they prove nothing; the
// Store's write probe (maintain.go, clearFault) decides when writes resume.
// A failed bbolt transaction is rolled back and a failed append is cut
// before the next one, so the files hold the last successful state. It
// returns err.
func (s *LogStore) noteWrite(op string, err error) error {
	if err == nil {
		return nil
	}
	since := time.Now()
	if cur := s.fault.Load(); cur != nil {
		since = cur.since
	}
	s.fault.Store(&logFault{err: err, op: op, since: since})
	return err
}

// WriteFault returns an error wrapping ErrStorageUnavailable if a write to
// the log or raft.db failed and the Store's write probe has not succeeded
// since (clearFault), nil otherwise. raft handles the failure itself (a
// leader whose StoreLogs fails answers the entries' futures with the error and
// steps down; a follower rejects the AppendEntries and the leader retries);
// the Store refuses writes and reports unready meanwhile.
func (s *LogStore) WriteFault() error {
	if err := s.log.brokenErr(); err != nil {
		return err
	}
	cur := s.fault.Load()
	if cur == nil {
		return nil
	}
	return fmt.Errorf("%w: raft log write (%s) failing since %s: %v",
		ErrStorageUnavailable, cur.op, cur.since.UTC().Format(time.RFC3339), cur.err)
}

// clearFault forgets the last write failure: the Store calls it once a probe
// shows the disk takes writes again (raft may have nothing to append).
func (s *LogStore) clearFault() { s.fault.Store(nil) }

// DeleteRange deletes entries min..max inclusive (segLog.DeleteRange).
func (s *LogStore) DeleteRange(min, max uint64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.noteWrite("delete range", s.log.DeleteRange(min, max))
}

// Set stores a stable key.
func (s *LogStore) Set(key, val []byte) error {
	err := s.noteWrite("set "+string(key), s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStable).Put(key, val)
	}))
	if err == nil && string(key) == string(keyCurrentTerm) && len(val) == 8 {
		s.currentTerm.Store(binary.BigEndian.Uint64(val))
	}
	return err
}

// Get returns a stable key's value, or an error whose message is "not found".
func (s *LogStore) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStable).Get(key)
		if v == nil {
			return errStableNotFound
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// SetUint64 stores a stable key as a big-endian uint64.
func (s *LogStore) SetUint64(key []byte, val uint64) error { return s.Set(key, u64(val)) }

// GetUint64 returns a stable uint64, or an error whose message is "not found".
func (s *LogStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("storage: stable key %q: bad uint64 length %d", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func encodeLog(l *raft.Log) []byte {
	buf := make([]byte, logHeaderLength, logHeaderLength+len(l.Data)+len(l.Extensions))
	buf[0] = logFormatV1
	buf[1] = byte(l.Type)
	binary.BigEndian.PutUint64(buf[2:], l.Term)
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	binary.BigEndian.PutUint64(buf[10:], uint64(at))
	binary.BigEndian.PutUint32(buf[18:], uint32(len(l.Data)))
	buf = append(buf, l.Data...)
	return append(buf, l.Extensions...)
}

func decodeLog(index uint64, v []byte, l *raft.Log) error {
	if len(v) < logHeaderLength || v[0] != logFormatV1 {
		return fmt.Errorf("storage: corrupt log entry %d", index)
	}
	n := int(binary.BigEndian.Uint32(v[18:]))
	if logHeaderLength+n > len(v) {
		return fmt.Errorf("storage: corrupt log entry %d: data length %d", index, n)
	}
	*l = raft.Log{
		Index: index,
		Term:  binary.BigEndian.Uint64(v[2:]),
		Type:  raft.LogType(v[1]),
	}
	if at := int64(binary.BigEndian.Uint64(v[10:])); at != 0 {
		l.AppendedAt = time.Unix(0, at).UTC()
	}
	// Copy: bbolt memory is only valid inside the transaction.
	l.Data = append([]byte(nil), v[logHeaderLength:logHeaderLength+n]...)
	if rest := v[logHeaderLength+n:]; len(rest) > 0 {
		l.Extensions = append([]byte(nil), rest...)
	}
	return nil
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}
