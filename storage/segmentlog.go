package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/barberpro/edge/storage/durable"

	"github.com/hashicorp/raft"
)

// ErrLogCorrupt is returned by OpenLogStore when the Raft log's segment files
// hold an invalid record that is not a torn tail (a valid record follows it
// and it holds no unwritten, zero-filled sector, or it is not in the last
// segment), or records whose indexes are not
// contiguous. The log is not opened: cutting there would drop entries that
// were acknowledged.
var ErrLogCorrupt = errors.New("storage: raft log corrupt")

// Segment record (little-endian header):
//
//	offset size field
//	0      4    n = length of the payload
//	4      4    CRC-32C of bytes 0..3 and of the payload
//	8      8    payload: Raft index (big-endian)
//	16     n-8  payload: encodeLog (format v1: type, term, appended-at, data, extensions)
const (
	recHeader     = 8
	recMinPayload = 8 + logHeaderLength
	recMaxPayload = 1 << 30
	segPrefix     = "seg-"
	segSuffix     = ".log"
	// segmentMaxBytes is the size past which the next append starts a new
	// segment file.
	segmentMaxBytes = 64 << 20
	// zeroAhead is how far past the tail segment's last record the log keeps
	// the file written with zeros and fdatasynced (zero-ahead), zeroChunk the
	// step it writes them in. An append into that space changes neither the
	// file's size nor its block map, so its fdatasync writes the data alone;
	// an append that grows the file also commits the file system's journal
	// (fallocated space would too: its unwritten extents are converted on
	// write). BenchmarkSegmentLog_Append measures both ways (storage/
	// DESIGN.md, "Zero-ahead"). zeroRetryAfter is how long the zero-ahead rests
	// after a failed write (a full disk): appends then grow the file, as
	// before it.
	zeroAhead      = 1 << 20
	zeroChunk      = 256 << 10
	zeroRetryAfter = 10 * time.Second
)

// zeros is a zeroChunk of zeros (only ever read).
var zeros = make([]byte, zeroChunk)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends l's record to buf.
func appendRecord(buf []byte, l *raft.Log) []byte {
	body := encodeLog(l)
	n := 8 + len(body)
	start := len(buf)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(n))
	buf = append(buf, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint64(buf, l.Index)
	buf = append(buf, body...)
	c := crc32.Update(0, crc32c, buf[start:start+4])
	c = crc32.Update(c, crc32c, buf[start+recHeader:])
	binary.LittleEndian.PutUint32(buf[start+4:], c)
	return buf
}

// errRecordShort means buf ends before the record it starts does (or before
// its header): a torn tail when at the end of the last segment.
var errRecordShort = errors.New("record cut short")

// decodeRecord decodes the record at the start of b into l and returns its
// length. A header whose length is impossible or whose CRC does not match is
// an error; a record reaching past len(b) is errRecordShort.
func decodeRecord(b []byte, l *raft.Log) (int, error) {
	if len(b) < recHeader {
		return 0, errRecordShort
	}
	n := binary.LittleEndian.Uint32(b)
	if n < recMinPayload || n > recMaxPayload {
		return 0, fmt.Errorf("bad record length %d", n)
	}
	if uint64(len(b)) < uint64(recHeader)+uint64(n) {
		return 0, errRecordShort
	}
	end := recHeader + int(n)
	c := crc32.Update(0, crc32c, b[:4])
	c = crc32.Update(c, crc32c, b[recHeader:end])
	if c != binary.LittleEndian.Uint32(b[4:]) {
		return 0, errors.New("record checksum mismatch")
	}
	idx := binary.BigEndian.Uint64(b[recHeader:])
	if err := decodeLog(idx, b[recHeader+8:end], l); err != nil {
		return 0, err
	}
	return end, nil
}

// segment is one file of the log. offs[i] is where the record of index
// first+i starts; size is where the last valid record ends. From size to
// zeroed the file holds zeros (the zero-ahead; none when zeroed <= size),
// and it ends no later than max(size, zeroed).
type segment struct {
	path   string
	f      *os.File
	first  uint64
	offs   []int64
	size   int64
	zeroed int64
}

func (g *segment) last() uint64 { return g.first + uint64(len(g.offs)) - 1 }

// segLog is the Raft log as append-only segment files in one directory
// (DataDir/raft-log/seg-<20-digit index>.log; the name's index is the first
// one the file was created with, its first record may come later after a
// shred rewrote it). StoreLogs writes every record of the call with one
// pwrite and makes it durable with one fdatasync. A goroutine keeps the tail
// segment's next zeroAhead bytes written with zeros (zeroLoop), so that
// appends overwrite zeros instead of growing the file: everything past the
// last record of the tail segment is zeros, and a scan takes a zero tail for
// the end of the log, not for a torn write.
//
// wmu serializes writers (StoreLogs, DeleteRange, rewrite); mu guards the
// in-memory index, which readers (GetLog) take shared. Records below first
// may remain on disk in the oldest segment (deleted only logically) until a
// rewrite or until their whole segment goes.
type segLog struct {
	dir      string
	noSync   bool
	logger   *slog.Logger
	maxBytes int64 // segmentMaxBytes; smaller in tests

	wmu  sync.Mutex
	mu   sync.RWMutex
	segs []*segment
	// first and last are the logical bounds (0, 0 when empty).
	first, last uint64
	// dirtyTail is set when a write to the tail segment failed: bytes past
	// its size may be on disk, cut before the next write.
	dirtyTail bool
	// dirDirty is set when the dir fsync after a segment was created,
	// removed or renamed over failed: no append is acknowledged until a dir
	// fsync succeeds (after a power cut a removed segment could come back
	// overlapping later entries, or a renamed one's old file without them).
	dirDirty bool
	// orphan is a segment file a failed rotation created and could not
	// remove: outside the index, it is removed before the log is appended
	// to or cut (it would sort after the tail and overlap what follows).
	orphan string

	// remove and syncDir are os.Remove and durable.SyncDir; tests replace
	// them to make one call fail.
	remove  func(path string) error
	syncDir func(dir string) error

	// The zero-ahead (zeroLoop): kicked by appends, stopped by Close. It
	// writes under wmu, so no append, cut or rotation runs meanwhile.
	// zeroAhead is 0 for a log that never fsyncs (nothing to save).
	zeroAhead int64
	zeroKick  chan struct{} // buffered 1
	zeroStop  chan struct{}
	zeroDone  chan struct{}
	stopOnce  sync.Once

	// A leader's appends fdatasync in the background (segmentlog_async.go).
	asyncLog
}

func segName(index uint64) string {
	return fmt.Sprintf("%s%020d%s", segPrefix, index, segSuffix)
}

// openSegLog opens (creating) dir and scans every segment (see ErrLogCorrupt
// for what refuses to open; a torn tail of the last segment is cut).
func openSegLog(dir string, noSync bool, logger *slog.Logger) (*segLog, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: raft log dir: %w", err)
	}
	l := &segLog{dir: dir, noSync: noSync, logger: logger, maxBytes: segmentMaxBytes,
		remove: os.Remove, syncDir: durable.SyncDir, asyncLog: asyncLog{fdatasync: durable.Fdatasync},
		zeroKick: make(chan struct{}, 1), zeroStop: make(chan struct{}), zeroDone: make(chan struct{})}
	names, err := segmentNames(dir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			l.closeFiles()
		}
	}()
	for i, name := range names {
		lastSeg := i == len(names)-1
		g, err := l.scanSegment(filepath.Join(dir, name), lastSeg)
		if err != nil {
			return nil, err
		}
		if len(g.offs) == 0 {
			if lastSeg {
				// Created, nothing durable written: drop it.
				_ = g.f.Close()
				if err := os.Remove(g.path); err != nil {
					return nil, fmt.Errorf("storage: raft log: %w", err)
				}
				if err := durable.SyncDir(dir); err != nil {
					return nil, fmt.Errorf("storage: raft log: %w", err)
				}
				continue
			}
			_ = g.f.Close()
			return nil, fmt.Errorf("%w: segment %s holds no record and is not the last", ErrLogCorrupt, g.path)
		}
		if n := len(l.segs); n > 0 && l.segs[n-1].last()+1 != g.first {
			_ = g.f.Close()
			return nil, fmt.Errorf("%w: segment %s starts at index %d, the previous one ends at %d",
				ErrLogCorrupt, g.path, g.first, l.segs[n-1].last())
		}
		l.segs = append(l.segs, g)
	}
	if n := len(l.segs); n > 0 {
		l.first, l.last = l.segs[0].first, l.segs[n-1].last()
		// The last segment may hold records a leader wrote without an
		// fdatasync before the process died (deferred appends): the page
		// cache kept them, the disk may not have. They count as durable
		// from here on, so make them so.
		if !noSync {
			if err := l.fdatasync(l.segs[n-1].f); err != nil {
				return nil, fmt.Errorf("storage: raft log: %w", err)
			}
		}
	}
	l.startAsync()
	ok = true
	if noSync {
		close(l.zeroDone)
	} else {
		l.zeroAhead = zeroAhead
		go l.zeroLoop()
	}
	return l, nil
}

// segmentNames lists dir's segment files in index order; leftovers of an
// interrupted rewrite (*.tmp) are removed.
func segmentNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: raft log: %w", err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, fmt.Errorf("storage: raft log: remove leftover: %w", err)
			}
			continue
		}
		if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		if _, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix), 10, 64); err != nil {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names) // zero-padded: name order is index order
	return names, nil
}

// scanSegment reads every record of path. An invalid record ends the scan:
// in the last segment, with no valid record right after it, the rest is a
// torn tail and is cut (ftruncate + fsync, logged); otherwise ErrLogCorrupt.
func (l *segLog) scanSegment(path string, lastSeg bool) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage: raft log: %w", err)
	}
	data, err := io.ReadAll(f) // through the file scanned and kept, not a second open
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("storage: raft log: %w", err)
	}
	g := &segment{path: path, f: f}
	var rec raft.Log
	off := 0
	for off < len(data) {
		n, derr := decodeRecord(data[off:], &rec)
		if derr == nil && len(g.offs) > 0 && rec.Index != g.last()+1 {
			derr = fmt.Errorf("index %d after %d", rec.Index, g.last())
			if !lastSeg || validRecordAt(data, off+n) {
				_ = f.Close()
				return nil, fmt.Errorf("%w: %s at offset %d: %v", ErrLogCorrupt, path, off, derr)
			}
		}
		if derr != nil && lastSeg && allZero(data[off:]) {
			// The zero-ahead past the last record: the end of the log.
			g.zeroed = int64(len(data))
			break
		}
		if derr != nil {
			if !lastSeg || (followedByValid(data, off) && !holdsUnwrittenSector(data, off)) {
				_ = f.Close()
				return nil, fmt.Errorf("%w: %s at offset %d: %v", ErrLogCorrupt, path, off, derr)
			}
			cut := len(data) - off
			if err := f.Truncate(int64(off)); err == nil {
				err = f.Sync()
			}
			if err != nil {
				_ = f.Close()
				return nil, fmt.Errorf("storage: raft log: cut torn tail of %s: %w", path, err)
			}
			l.logger.Warn("raft log: cut a torn tail (a write not acknowledged before a crash)",
				"segment", path, "offset", off, "bytes", cut, "reason", derr.Error())
			break
		}
		if len(g.offs) == 0 {
			g.first = rec.Index
		}
		g.offs = append(g.offs, int64(off))
		off += n
		g.size = int64(off)
	}
	return g, nil
}

// followedByValid reports whether a valid record starts where the invalid
// record at off says it ends (its length field intact, its body damaged):
// damage in the middle, not a torn tail.
func followedByValid(data []byte, off int) bool {
	if len(data)-off < recHeader {
		return false
	}
	n := int64(binary.LittleEndian.Uint32(data[off:]))
	if n < recMinPayload || n > recMaxPayload || int64(off)+recHeader+n >= int64(len(data)) {
		return false
	}
	return validRecordAt(data, off+recHeader+int(n))
}

// holdsUnwrittenSector reports whether the invalid record at off holds a
// whole zero-filled disk sector: part of a write that never reached the disk
// (writeback persists the pages of one pwrite in any order, so a later record
// of the same unacknowledged batch can be whole). Nothing past it was
// acknowledged: a later record's fdatasync would have written this sector
// too. etcd's WAL uses the same test for a torn write.
func holdsUnwrittenSector(data []byte, off int) bool {
	const sector = 512
	end := len(data)
	if len(data)-off >= recHeader {
		if n := int64(binary.LittleEndian.Uint32(data[off:])); int64(off)+recHeader+n < int64(end) {
			end = off + recHeader + int(n)
		}
	}
	for s := (off + sector - 1) / sector * sector; s+sector <= end; s += sector {
		zero := true
		for _, b := range data[s : s+sector] {
			if b != 0 {
				zero = false
				break
			}
		}
		if zero {
			return true
		}
	}
	return false
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func validRecordAt(data []byte, off int) bool {
	if off >= len(data) {
		return false
	}
	var l raft.Log
	_, err := decodeRecord(data[off:], &l)
	return err == nil
}

func (l *segLog) closeFiles() error {
	var errs []error
	for _, g := range l.segs {
		if err := g.f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	l.segs = nil
	return errors.Join(errs...)
}

// Close stops the zero-ahead and the background fdatasync, makes deferred
// appends durable and closes the segment files.
func (l *segLog) Close() error {
	l.stopOnce.Do(func() { close(l.zeroStop) })
	<-l.zeroDone
	l.stopAsync()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.syncing.Lock()
	defer l.syncing.Unlock()
	var ferr error
	if l.brokenErr() == nil {
		// A log that broke earlier was reported then (WriteFault, its
		// log line); Close reports what fails now.
		ferr = l.flushLocked()
	}
	if l.dirtyTail && len(l.segs) > 0 {
		// A failed write's bytes whose cut failed: not into the next start.
		tail := l.segs[len(l.segs)-1]
		if err := l.cutAt(tail, tail.size); err != nil {
			ferr = errors.Join(ferr, fmt.Errorf("storage: raft log: cut a failed write at close: %w", err))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(ferr, l.closeFiles())
}

func (l *segLog) bounds() (uint64, uint64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.first, l.last
}

// locate returns the segment and offsets of index (mu held).
func (l *segLog) locate(index uint64) (*segment, int64, int64, bool) {
	if l.first == 0 || index < l.first || index > l.last {
		return nil, 0, 0, false
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].last() >= index })
	if i == len(l.segs) || index < l.segs[i].first {
		return nil, 0, 0, false
	}
	g := l.segs[i]
	k := index - g.first
	end := g.size
	if int(k)+1 < len(g.offs) {
		end = g.offs[k+1]
	}
	return g, g.offs[k], end, true
}

// GetLog reads the entry at index; raft.ErrLogNotFound if absent.
func (l *segLog) GetLog(index uint64, out *raft.Log) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	g, off, end, ok := l.locate(index)
	if !ok {
		if err := l.brokenErr(); err != nil {
			// Maybe a record dropUndurableLocked cut: not "not found",
			// which would make a leader send its snapshot instead (to a
			// follower that would then ask again for the same index).
			return err
		}
		return raft.ErrLogNotFound
	}
	buf := make([]byte, end-off)
	if _, err := g.f.ReadAt(buf, off); err != nil {
		return fmt.Errorf("storage: read raft log entry %d: %w", index, err)
	}
	if _, err := decodeRecord(buf, out); err != nil {
		return fmt.Errorf("%w: entry %d in %s: %v", ErrLogCorrupt, index, g.path, err)
	}
	if out.Index != index {
		return fmt.Errorf("%w: entry %d in %s holds index %d", ErrLogCorrupt, index, g.path, out.Index)
	}
	return nil
}

// errLogOrder means StoreLogs got entries that do not follow the log.
var errLogOrder = errors.New("storage: raft log entries out of order")

// StoreLogs appends logs (consecutive indexes following the last one) with
// one write and one fdatasync. A leader's append (leader) to the tail
// segment returns after the write and leaves the fdatasync to syncLoop
// (mayDefer, segmentlog_async.go). Appending to an empty log, or past a gap
// (raft appends after a snapshot it installed; the older entries are below
// it), starts a new log: the old segments are removed first. What a failed
// write left undone (settle) is done first; it fails if that cannot be.
func (l *segLog) StoreLogs(logs []*raft.Log, leader bool) error {
	if len(logs) == 0 {
		return nil
	}
	for i := 1; i < len(logs); i++ {
		if logs[i].Index != logs[i-1].Index+1 {
			return fmt.Errorf("%w: index %d after %d", errLogOrder, logs[i].Index, logs[i-1].Index)
		}
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.brokenErr(); err != nil {
		return err
	}
	if done, err := l.appendDeferred(logs, leader); done {
		return err
	}
	l.syncing.Lock()
	defer l.syncing.Unlock()
	err := l.appendSynced(logs)
	l.settled(err)
	return err
}

// appendDeferred appends logs to the tail segment without an fdatasync if
// they may defer it (mayDefer) and nothing else is due: no rotation, no cut
// of a failed write, nothing settle must finish. done reports that it
// handled the append (err is then its outcome). wmu held.
func (l *segLog) appendDeferred(logs []*raft.Log, leader bool) (done bool, err error) {
	first, last := l.bounds()
	if first == 0 || logs[0].Index != last+1 || !l.mayDefer(logs, leader) ||
		l.dirtyTail || l.dirDirty || l.orphan != "" {
		return false, nil
	}
	tail := l.segs[len(l.segs)-1]
	if tail.size >= l.maxBytes {
		return false, nil
	}
	buf, offs := encodeRecords(logs, tail.size)
	if _, err := tail.f.WriteAt(buf, tail.size); err != nil {
		l.syncing.Lock() // the cut fdatasyncs: what is pending goes first
		defer l.syncing.Unlock()
		if ferr := l.flushLocked(); ferr != nil {
			return true, ferr
		}
		l.cutFailedWrite(tail)
		return true, fmt.Errorf("storage: raft log append: %w", err)
	}
	l.mu.Lock()
	tail.offs = append(tail.offs, offs...)
	tail.size += int64(len(buf))
	l.last = logs[len(logs)-1].Index
	l.mu.Unlock()
	l.deferred(tail, l.last)
	l.kickZero(tail)
	return true, nil
}

// encodeRecords returns the records of logs and the offset of each, the
// first at base.
func encodeRecords(logs []*raft.Log, base int64) ([]byte, []int64) {
	var buf []byte
	offs := make([]int64, len(logs))
	for i, e := range logs {
		offs[i] = base + int64(len(buf))
		buf = appendRecord(buf, e)
	}
	return buf, offs
}

// settled records, after a writer that fdatasyncs (wmu and syncing held),
// what the disk holds: every record up to the last one if it succeeded,
// nothing more than the last one if not.
func (l *segLog) settled(err error) {
	_, last := l.bounds()
	if err == nil {
		l.synced(last)
	} else {
		l.lowered(last)
	}
}

// appendSynced is StoreLogs' append with an fdatasync before it returns
// (wmu and syncing held).
func (l *segLog) appendSynced(logs []*raft.Log) error {
	if err := l.flushLocked(); err != nil {
		return err
	}
	if err := l.settle(); err != nil {
		return err
	}
	first, last := l.bounds()
	next := logs[0].Index
	var tail *segment
	switch {
	case first != 0 && next == last+1:
		tail = l.segs[len(l.segs)-1]
		if l.dirtyTail {
			// The cut is made durable before a rotation leaves this
			// segment behind: bytes of the failed write that writeback
			// put on the disk would otherwise come back after power
			// loss in a segment that is no longer the last (refused as
			// ErrLogCorrupt at Open).
			if err := l.cutAt(tail, tail.size); err != nil {
				return fmt.Errorf("storage: raft log: cut a failed write: %w", err)
			}
			l.dirtyTail = false
		}
		if tail.size >= l.maxBytes {
			// The segment is left behind: it must end at its last
			// record (Open refuses an older segment with anything
			// past it), so the zero-ahead goes first. It reaches past
			// maxBytes only if maxBytes shrank (a later release), or
			// after a zero write that failed midway.
			if tail.zeroed > tail.size {
				if err := l.cutAt(tail, tail.size); err != nil {
					return fmt.Errorf("storage: raft log: cut the zero-ahead of a full segment: %w", err)
				}
			}
			tail = nil
		}
	case first != 0 && next <= last:
		return fmt.Errorf("%w: append at %d, log ends at %d", errLogOrder, next, last)
	default:
		if len(l.segs) > 0 {
			if first != 0 {
				l.logger.Warn("raft log: append past a gap; dropping the older entries", "last", last, "append", next)
			}
			if err := l.removeSegments(0, len(l.segs)); err != nil {
				return err
			}
		}
	}
	base := int64(0)
	if tail != nil {
		base = tail.size
	}
	buf, offs := encodeRecords(logs, base)
	if tail == nil {
		g, err := l.createSegment(next, buf)
		if err != nil {
			return err
		}
		g.offs = offs
		g.size = int64(len(buf))
		l.mu.Lock()
		l.segs = append(l.segs, g)
		if l.first == 0 {
			l.first = next
		}
		l.last = logs[len(logs)-1].Index
		l.mu.Unlock()
		l.kickZero(g)
		return nil
	}
	if _, err := tail.f.WriteAt(buf, tail.size); err != nil {
		l.cutFailedWrite(tail)
		return fmt.Errorf("storage: raft log append: %w", err)
	}
	if err := l.sync(tail.f); err != nil {
		l.cutFailedWrite(tail)
		return fmt.Errorf("storage: raft log fdatasync: %w", err)
	}
	l.mu.Lock()
	tail.offs = append(tail.offs, offs...)
	tail.size = base + int64(len(buf))
	l.last = logs[len(logs)-1].Index
	l.mu.Unlock()
	l.kickZero(tail)
	return nil
}

// cutFailedWrite cuts the tail segment g back to its last record after a
// write to it failed (wmu and syncing held): a short or unsynced write may
// have left whole records past it, which the caller was told failed; left in
// the file, a restart would read them back (and raft could commit what a
// client retried elsewhere). If the cut fails too, dirtyTail keeps it due:
// the next append and Close cut again.
func (l *segLog) cutFailedWrite(g *segment) {
	l.dirtyTail = l.cutAt(g, g.size) != nil
}

// cutAt truncates g's file at size (its zero-ahead with the rest) and
// fdatasyncs it. wmu held.
func (l *segLog) cutAt(g *segment, size int64) error {
	err := g.f.Truncate(size)
	if err == nil {
		err = l.sync(g.f)
	}
	if err == nil {
		g.zeroed = 0
	}
	return err
}

// kickZero wakes the zero-ahead when the tail segment g has less than half
// of zeroAhead zeroed past its end and may still grow. wmu held.
func (l *segLog) kickZero(g *segment) {
	if l.zeroAhead == 0 || g.size >= l.maxBytes || g.zeroed-g.size >= l.zeroAhead/2 {
		return
	}
	select {
	case l.zeroKick <- struct{}{}:
	default:
	}
}

// zeroLoop is the zero-ahead: woken by kickZero, it writes zeros past the
// tail segment's end, a zeroChunk at a time, until zeroAhead bytes past it
// are zeroed or the segment's maxBytes is reached. After a failed write it
// logs once and rests for zeroRetryAfter.
func (l *segLog) zeroLoop() {
	defer close(l.zeroDone)
	failing := false
	for {
		select {
		case <-l.zeroStop:
			return
		case <-l.zeroKick:
		}
		for {
			more, err := l.zeroStep()
			if l.brokenErr() != nil {
				return // the log takes no more writes
			}
			if err != nil {
				if !failing {
					l.logger.Warn("raft log: writing zeros ahead of the log failed; appends grow the file until it works again",
						"err", err.Error(), "retry_in", zeroRetryAfter)
				}
				failing = true
				select {
				case <-l.zeroStop:
					return
				case <-time.After(zeroRetryAfter):
				}
				continue
			}
			if failing {
				l.logger.Info("raft log: writing zeros ahead of the log works again")
				failing = false
			}
			if !more {
				break
			}
			select {
			case <-l.zeroStop:
				return
			default:
			}
		}
	}
}

// zeroStep writes the next chunk of zeros past the tail segment's end and
// fdatasyncs it; more reports that another chunk is wanted. It writes
// nothing while a failed write's bytes may be past the end (dirtyTail: the
// next append cuts them) and nothing at or past maxBytes (the next segment
// starts there). After a failed write or fdatasync the file may end anywhere
// up to the chunk's end, holding zeros or nothing there: zeroed takes the
// chunk's end, so that a rotation still cuts the file back to its last
// record.
func (l *segLog) zeroStep() (more bool, err error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.dirtyTail || len(l.segs) == 0 {
		return false, nil
	}
	g := l.segs[len(l.segs)-1]
	from := max(g.size, g.zeroed)
	to := min(from+zeroChunk, l.maxBytes)
	if from-g.size >= l.zeroAhead || to <= from {
		return false, nil // nothing to zero: no fdatasync either
	}
	// Deferred appends share the file and a writeback error is reported to
	// one fdatasync only: theirs goes first, through the path that accounts
	// for its failure (the log breaks); the zeros' fdatasync then fails for
	// the zeros alone (a warning and a retry, as before).
	l.syncing.Lock()
	defer l.syncing.Unlock()
	if err := l.flushLocked(); err != nil {
		return false, nil // the log broke (wmu held: nothing else moved)
	}
	g.zeroed = to
	if _, err := g.f.WriteAt(zeros[:to-from], from); err != nil {
		return false, fmt.Errorf("storage: raft log zero-ahead: %w", err)
	}
	if err := l.fdatasync(g.f); err != nil {
		return false, fmt.Errorf("storage: raft log zero-ahead: %w", err)
	}
	return to-g.size < l.zeroAhead, nil
}

func (l *segLog) sync(f *os.File) error {
	if l.noSync {
		return nil
	}
	return l.fdatasync(f)
}

// createSegment creates the segment file named after index holding buf,
// fdatasyncs it and fsyncs the dir. A failure removes the file.
func (l *segLog) createSegment(index uint64, buf []byte) (*segment, error) {
	path := filepath.Join(l.dir, segName(index))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage: raft log: new segment: %w", err)
	}
	_, err = f.WriteAt(buf, 0)
	if err == nil {
		err = l.sync(f)
	}
	if err == nil {
		err = l.syncDirNow()
	}
	if err != nil {
		_ = f.Close()
		if rerr := l.removeFile(path); rerr != nil {
			l.orphan = path
		}
		// Not acknowledged; its removal is made durable by settle before
		// the next append.
		l.dirDirty = true
		return nil, fmt.Errorf("storage: raft log: new segment: %w", err)
	}
	return &segment{path: path, f: f, first: index}, nil
}

// removeSegments removes segs[from:to] from the disk and the index: oldest
// first from the head (from == 0), newest first from the tail, one file at a
// time, each removal made durable (dir fsync) before the next, so that an
// error or a crash midway leaves contiguous segments, which Open accepts. It
// stops at the first failure and returns it: the segments not removed stay
// in the index, readable, and the bounds are what the files hold (first is
// raised to the oldest remaining segment's first index, last lowered to the
// newest one's). wmu held. On an empty remainder the log is empty.
func (l *segLog) removeSegments(from, to int) error {
	fromHead := from == 0
	for n := to - from; n > 0; n-- {
		i := from // oldest of those left
		if !fromHead {
			i = len(l.segs) - 1 // newest (to == len(l.segs) from the tail)
		}
		g := l.segs[i]
		if err := l.removeFile(g.path); err != nil {
			return fmt.Errorf("storage: raft log: remove segment: %w", err)
		}
		l.mu.Lock()
		l.segs = append(l.segs[:i:i], l.segs[i+1:]...)
		switch {
		case len(l.segs) == 0:
			l.first, l.last = 0, 0
		case fromHead:
			l.first = max(l.first, l.segs[0].first)
		default:
			l.last = min(l.last, l.segs[len(l.segs)-1].last())
		}
		l.mu.Unlock()
		_ = g.f.Close() // out of the index: no reader holds it now
		if i == len(l.segs) {
			l.dirtyTail = false // the tail segment went, with the failed write's bytes
		}
		if err := l.syncDirNow(); err != nil {
			return fmt.Errorf("storage: raft log: remove segment: %w", err)
		}
	}
	return nil
}

// settle finishes what a failed write left undone before the log is
// appended to or cut: it removes the orphan segment and fsyncs the dir if
// the last dir fsync failed. wmu held.
func (l *segLog) settle() error {
	if l.orphan != "" {
		if err := l.removeFile(l.orphan); err != nil {
			return fmt.Errorf("storage: raft log: remove a failed new segment: %w", err)
		}
		l.orphan = ""
		l.dirDirty = true
	}
	if l.dirDirty {
		if err := l.syncDirNow(); err != nil {
			return fmt.Errorf("storage: raft log: sync dir: %w", err)
		}
	}
	return nil
}

// removeFile removes a segment file; one already gone is no error.
func (l *segLog) removeFile(path string) error {
	if err := l.remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// syncDirNow fsyncs the log's dir; a failure is remembered (dirDirty) until
// a later fsync succeeds. wmu held.
func (l *segLog) syncDirNow() error {
	err := l.syncDir(l.dir)
	l.dirDirty = err != nil
	return err
}

// DeleteRange deletes min..max inclusive, from the head (compaction: whole
// segments below the new first index are removed, the rest is dropped
// logically) or from the tail (conflict: the file is cut at min and
// fdatasynced). A range covering the whole log empties it. A failed segment
// removal stops it with the error; the log is then what the files hold
// (see removeSegments).
func (l *segLog) DeleteRange(min, max uint64) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.syncing.Lock()
	defer l.syncing.Unlock()
	if err := l.flushLocked(); err != nil {
		return err
	}
	first, _ := l.bounds()
	err := l.deleteRange(min, max)
	switch {
	case err != nil:
		l.settled(err)
	case min > first:
		// A cut of the tail (a follower's conflicting entries): the
		// entries past it are gone and others will take their indexes.
		l.settled(nil)
	default:
		// From the head (compaction; with TrailingLogs 0, as a shred's
		// snapshot does, the whole log): what went was durable and is in a
		// snapshot now, so durable stays. A follower that drops its whole
		// log for conflicting entries appends their replacements (synced)
		// right after; only a leader's durable is read meanwhile.
	}
	return err
}

// deleteRange is DeleteRange with wmu and syncing held and nothing deferred
// pending.
func (l *segLog) deleteRange(min, max uint64) error {
	first, last := l.bounds()
	if first == 0 || max < first || min > last || min > max {
		return nil
	}
	switch {
	case min <= first && max >= last:
		return l.removeSegments(0, len(l.segs))
	case min <= first:
		n := 0
		for n < len(l.segs) && l.segs[n].last() <= max {
			n++
		}
		if err := l.removeSegments(0, n); err != nil {
			return err // first is the oldest remaining segment's
		}
		l.mu.Lock()
		l.first = max + 1
		l.mu.Unlock()
		return nil
	case max >= last:
		if err := l.settle(); err != nil {
			return err
		}
		return l.truncateTail(min)
	default:
		return fmt.Errorf("%w: delete %d..%d inside the log %d..%d", errLogOrder, min, max, first, last)
	}
}

// truncateTail removes every entry from index min on (min > first); wmu held.
func (l *segLog) truncateTail(min uint64) error {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].last() >= min })
	g := l.segs[i]
	if min <= g.first {
		// min > first: g is not the first segment.
		return l.removeSegments(i, len(l.segs))
	}
	if err := l.removeSegments(i+1, len(l.segs)); err != nil {
		return err
	}
	k := min - g.first
	cut := g.offs[k]
	l.mu.Lock()
	g.offs = g.offs[:k]
	g.size = cut
	l.last = min - 1
	l.mu.Unlock()
	if err := l.cutAt(g, cut); err != nil {
		l.dirtyTail = true // the next append cuts it again
		return fmt.Errorf("storage: raft log: cut tail at %d: %w", min, err)
	}
	l.dirtyTail = false
	return nil
}

// rewrite rewrites the oldest segment without the records below the first
// index (the shred's erasure bound: no byte of a deleted entry stays in the
// data dir). The copy is written to <name>.tmp, fdatasynced and renamed over
// the segment (same name), then the dir is fsynced.
func (l *segLog) rewrite() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.syncing.Lock()
	defer l.syncing.Unlock()
	if err := l.flushLocked(); err != nil {
		return err
	}
	if len(l.segs) == 0 {
		return nil
	}
	g := l.segs[0]
	if l.first <= g.first {
		return nil
	}
	k := l.first - g.first
	start := g.offs[k]
	data := make([]byte, g.size-start)
	if _, err := g.f.ReadAt(data, start); err != nil {
		return fmt.Errorf("storage: raft log rewrite: %w", err)
	}
	tmp := g.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("storage: raft log rewrite: %w", err)
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = durable.Fdatasync(f) // the shred needs it durable even with the failpoint
	}
	if err == nil {
		err = os.Rename(tmp, g.path)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("storage: raft log rewrite: %w", err)
	}
	offs := make([]int64, 0, len(g.offs)-int(k))
	for _, o := range g.offs[k:] {
		offs = append(offs, o-start)
	}
	l.mu.Lock()
	old := g.f
	g.f, g.first, g.offs, g.size, g.zeroed = f, l.first, offs, int64(len(data)), 0
	l.mu.Unlock()
	_ = old.Close()
	if err := l.syncDirNow(); err != nil {
		return fmt.Errorf("storage: raft log rewrite: sync dir: %w", err)
	}
	return nil
}
