package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/barberpro/edge/storage/durable"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage/seal"
)

// A backup file (or stream) is, in this order:
//
//	magic      8 bytes  "BPBACKUP"
//	version    uint16 big-endian (BackupFormat)
//	headerLen  uint32 big-endian
//	header     headerLen bytes of JSON (BackupHeader)
//	bodyLen    uint64 big-endian
//	body       bodyLen bytes: fsm.db as of one bbolt read transaction (tx.WriteTo)
//	trailer    32 bytes: SHA-256 of every byte before it
//
// The body length is known before the first byte of it is written (the read
// transaction's size), so a reader finds the trailer without buffering.
const (
	backupMagic = "BPBACKUP"
	// BackupFormat is the format version Backup writes and RestoreBackup reads.
	BackupFormat = 1
	// maxBackupHeader bounds the JSON header a reader accepts.
	maxBackupHeader = 1 << 20
	// RestoredMarker, in a data dir, says that RestoreBackup wrote its fsm.db
	// and that the next Open bootstraps a new single-voter Raft group on it
	// (see Open). Open removes it once raft holds that configuration.
	RestoredMarker = "restored.json"
)

// ErrBadBackup means a backup file or stream is not one, is of an unknown
// format, or its checksum does not match (truncated or corrupted).
var ErrBadBackup = errors.New("storage: not a valid backup")

// BackupHeader describes a backup: what it holds and where it was taken.
type BackupHeader struct {
	Format       int       `json:"format"`
	ClusterID    string    `json:"cluster_id"`
	Jurisdiction string    `json:"jurisdiction"`
	AppliedIndex uint64    `json:"applied_index"`
	AppliedTerm  uint64    `json:"applied_term"`
	TakenAt      time.Time `json:"taken_at"`
	Node         string    `json:"node"`
	Leader       bool      `json:"leader"`
	// BodyBytes is the size of the copied fsm.db (set by Backup and by readers).
	BodyBytes uint64 `json:"body_bytes"`
}

// Backup writes a consistent copy of the store to w in the backup format:
// after a linearizable read (so it holds every write committed before the
// call, whichever node of the group serves it), one bbolt read transaction of
// fsm.db is streamed with tx.WriteTo; the applied index and cluster id in the
// header are those of that transaction. Writes go on while it streams (the
// read transaction pins its pages, as a Raft snapshot's does).
func (s *Store) Backup(ctx context.Context, w io.Writer) (BackupHeader, error) {
	if err := s.LinearizableRead(ctx); err != nil {
		return BackupHeader{}, err
	}
	s.fsm.mu.RLock()
	if s.fsm.db == nil {
		s.fsm.mu.RUnlock()
		return BackupHeader{}, ErrClosed
	}
	if err := s.fsm.flush(); err != nil {
		s.fsm.mu.RUnlock()
		return BackupHeader{}, err
	}
	tx, err := s.fsm.db.Begin(false)
	s.fsm.mu.RUnlock()
	if err != nil {
		return BackupHeader{}, fmt.Errorf("storage: begin backup: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	h := BackupHeader{
		Format:       BackupFormat,
		ClusterID:    string(tx.Bucket(bucketMeta).Get(keyClusterID)),
		Jurisdiction: s.cfg.Jurisdiction,
		TakenAt:      time.Now().UTC(),
		Node:         s.cfg.NodeID,
		Leader:       s.IsLeader(),
		BodyBytes:    uint64(tx.Size()),
	}
	h.AppliedIndex, h.AppliedTerm = readApplied(tx)
	hw := &hashWriter{w: w, h: sha256.New()}
	if err := writeBackupHeader(hw, h); err != nil {
		return h, err
	}
	n, err := tx.WriteTo(hw)
	if err != nil {
		return h, fmt.Errorf("storage: backup: %w", err)
	}
	if uint64(n) != h.BodyBytes {
		return h, fmt.Errorf("storage: backup: wrote %d bytes of fsm.db, announced %d", n, h.BodyBytes)
	}
	if _, err := w.Write(hw.h.Sum(nil)); err != nil {
		return h, fmt.Errorf("storage: backup: %w", err)
	}
	return h, nil
}

// BackupToFile writes a backup to path atomically (a temporary file beside it,
// fsynced, renamed, directory fsynced).
func (s *Store) BackupToFile(ctx context.Context, path string) (BackupHeader, error) {
	var h BackupHeader
	err := durable.WriteFile(path, 0o600, func(w io.Writer) error {
		var err error
		h, err = s.Backup(ctx, w)
		return err
	})
	return h, err
}

type hashWriter struct {
	w io.Writer
	h hash.Hash
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	return n, err
}

func writeBackupHeader(w io.Writer, h BackupHeader) error {
	js, err := json.Marshal(h)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(backupMagic)
	_ = binary.Write(&buf, binary.BigEndian, uint16(BackupFormat))
	_ = binary.Write(&buf, binary.BigEndian, uint32(len(js)))
	buf.Write(js)
	_ = binary.Write(&buf, binary.BigEndian, h.BodyBytes)
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("storage: backup: %w", err)
	}
	return nil
}

// readBackupHeader reads the part before the body from r (which should hash
// what it reads).
func readBackupHeader(r io.Reader) (BackupHeader, error) {
	var h BackupHeader
	var fixed [8 + 2 + 4]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return h, fmt.Errorf("%w: header: %w", ErrBadBackup, err)
	}
	if string(fixed[:8]) != backupMagic {
		return h, fmt.Errorf("%w: no %s magic", ErrBadBackup, backupMagic)
	}
	if v := binary.BigEndian.Uint16(fixed[8:10]); v != BackupFormat {
		return h, fmt.Errorf("%w: format %d, this build reads %d", ErrBadBackup, v, BackupFormat)
	}
	n := binary.BigEndian.Uint32(fixed[10:14])
	if n > maxBackupHeader {
		return h, fmt.Errorf("%w: header of %d bytes", ErrBadBackup, n)
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		return h, fmt.Errorf("%w: header: %w", ErrBadBackup, err)
	}
	if err := json.Unmarshal(js, &h); err != nil {
		return h, fmt.Errorf("%w: header: %w", ErrBadBackup, err)
	}
	var bl [8]byte
	if _, err := io.ReadFull(r, bl[:]); err != nil {
		return h, fmt.Errorf("%w: header: %w", ErrBadBackup, err)
	}
	h.BodyBytes = binary.BigEndian.Uint64(bl[:])
	return h, nil
}

// CopyBackup reads a backup stream from r, writes every byte of it to w, and
// checks the trailer: it returns ErrBadBackup (wrapped) if the stream is not a
// backup, is truncated, or its checksum does not match. Nothing after the
// trailer is read.
func CopyBackup(w io.Writer, r io.Reader) (BackupHeader, error) {
	return copyBackup(w, nil, r, nil)
}

// copyBackup is CopyBackup, writing the body alone to body when it is not nil
// and calling check (when not nil) with the header before the body is read.
func copyBackup(w, body io.Writer, r io.Reader, check func(BackupHeader) error) (BackupHeader, error) {
	if w == nil {
		w = io.Discard
	}
	sum := sha256.New()
	tee := io.TeeReader(r, io.MultiWriter(w, sum))
	h, err := readBackupHeader(tee)
	if err != nil {
		return h, err
	}
	if h.BodyBytes > math.MaxInt64 {
		// int64 would turn it negative and CopyN would copy nothing: a file of
		// a header and its checksum would verify.
		return h, fmt.Errorf("%w: body length %d out of range", ErrBadBackup, h.BodyBytes)
	}
	if check != nil {
		if err := check(h); err != nil {
			return h, err
		}
	}
	dst := io.Discard
	if body != nil {
		dst = body
	}
	if n, err := io.CopyN(dst, tee, int64(h.BodyBytes)); err != nil {
		return h, fmt.Errorf("%w: body ends after %d of %d bytes: %w", ErrBadBackup, n, h.BodyBytes, err)
	}
	want := sum.Sum(nil)
	var got [sha256.Size]byte
	if _, err := io.ReadFull(r, got[:]); err != nil {
		return h, fmt.Errorf("%w: no checksum trailer: %w", ErrBadBackup, err)
	}
	if _, err := w.Write(got[:]); err != nil {
		return h, err
	}
	if !bytes.Equal(got[:], want) {
		return h, fmt.Errorf("%w: SHA-256 mismatch (file corrupted)", ErrBadBackup)
	}
	return h, nil
}

// VerifyBackupFile checks the backup at path end to end and returns its header.
func VerifyBackupFile(path string) (BackupHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return BackupHeader{}, err
	}
	defer f.Close()
	return CopyBackup(nil, bufio.NewReaderSize(f, 1<<20))
}

// RestoreOptions are the checks RestoreBackup makes before it seeds a data dir.
type RestoreOptions struct {
	// Jurisdiction is the jurisdiction of the node that will open the data
	// dir (its Config.Jurisdiction): a backup of another one is refused
	// (ErrWrongJurisdiction) as soon as its header is read, and Open refuses
	// the restored dir on a node of another jurisdiction.
	Jurisdiction string
	// KEKFile is the jurisdiction's key-encryption key file (seal). It is
	// required (ErrKEKRequired) when the backup holds a wrapped client key:
	// the KEK's erasure ledger (KEKFile+".erasures") is what keeps keys of
	// clients erased AFTER the backup was taken from being unwrapped again,
	// so the ledger must exist and parse, the backup's keys must be wrapped
	// by this KEK, and the ledger must not be older than the backup
	// (ErrLedgerOutdated: last modified before the backup's TakenAt), unless
	// AllowOldLedger. When given for a backup without keys, the KEK and its
	// ledger must still exist and load.
	KEKFile string
	// AllowOldLedger accepts a ledger last modified before the backup was
	// taken: the operator states that no client was erased since.
	AllowOldLedger bool
}

// RestoreResult is what RestoreBackup restored.
type RestoreResult struct {
	// BackupHeader is the backup's header (ClusterID is the OLD group's).
	BackupHeader
	// NewClusterID is the id of the group the restored dir founds.
	NewClusterID string
	// ClientKeys counts the wrapped client keys the backup holds, Erasures its
	// erasure records; ErasedKeys counts the client keys the KEK's ledger names
	// (clients erased after the backup: their keys never unwrap again).
	ClientKeys, Erasures, ErasedKeys int
}

// ledgerClockSlack is how much older than the backup's TakenAt a ledger's
// modification time may be and still count as changed after it: file times
// come from a coarse clock (and some filesystems keep 1 or 2 s).
const ledgerClockSlack = 2 * time.Second

// restoreTmp is the directory, inside the data dir, in which RestoreBackup
// builds the restored files before it moves them into place.
const restoreTmp = ".restore-tmp"

// RestoreBackup seeds dataDir — which must be empty or absent (a
// .restore-tmp left by a restore that crashed is removed) — from the
// backup at path, so that the next Open founds a NEW Raft group holding the
// backup's records. In one pass over the file it checks the header (format,
// opt.Jurisdiction) before the body, then writes the body as fsm.db while
// hashing and checks the checksum; then the client keys against
// opt.KEKFile's ledger (see RestoreOptions), resets the FSM's applied index
// and term, gives it a NEW cluster id (a restored group must never be taken
// for, or merge into, the group the backup came from, and its servers refuse
// that group's Raft connections from their first start: groupcheck.go),
// records where it came from (meta restored_from: the backup's header,
// jurisdiction included) and leaves RestoredMarker. Everything is built in
// dataDir/.restore-tmp and moved into place at the end (the marker, then
// fsm.db, which completes the restore); a restore that fails leaves dataDir
// as it found it (absent stays absent, empty stays empty).
//
// Open then bootstraps a single-voter configuration of this node (as
// --bootstrap does) whose entries apply on top of the restored records; the
// other nodes of the jurisdiction join it as new servers with empty data
// dirs. Erasures the backup holds are replayed into the KEK's erasure ledger
// at Open (Config.OnErase) and, as the new data dir has no shred.done,
// shredded within ShredWithin (free pages of the copy may carry erased bytes).
func RestoreBackup(path, dataDir string, opt RestoreOptions) (RestoreResult, error) {
	created, err := prepareRestoreDir(dataDir)
	if err != nil {
		return RestoreResult{}, err
	}
	tmp := filepath.Join(dataDir, restoreTmp)
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(tmp)
			if created {
				_ = os.Remove(dataDir)
			}
		}
	}()
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return RestoreResult{}, fmt.Errorf("storage: restore: %w", err)
	}
	res, err := buildRestore(path, tmp, opt)
	if err != nil {
		return res, err
	}
	// The marker first: a crash after it and before fsm.db leaves a dir that
	// Open refuses (seedRestoredGroup: applied index is not 1), never one
	// that starts as an ordinary node.
	if err := os.Rename(filepath.Join(tmp, RestoredMarker), filepath.Join(dataDir, RestoredMarker)); err != nil {
		return res, fmt.Errorf("storage: restore: %w", err)
	}
	if err := os.Rename(filepath.Join(tmp, FSMFile), filepath.Join(dataDir, FSMFile)); err != nil {
		_ = os.Remove(filepath.Join(dataDir, RestoredMarker))
		return res, fmt.Errorf("storage: restore: %w", err)
	}
	done = true
	_ = os.RemoveAll(tmp)
	err = durable.SyncDir(dataDir)
	if err == nil && created {
		err = durable.SyncDir(filepath.Dir(dataDir))
	}
	if err != nil {
		return res, fmt.Errorf("storage: restore: %w", err)
	}
	return res, nil
}

// prepareRestoreDir makes sure dataDir exists and is empty (but for a
// restoreTmp leftover, removed) and says whether it created it.
func prepareRestoreDir(dataDir string) (created bool, err error) {
	entries, err := os.ReadDir(dataDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return false, fmt.Errorf("storage: restore: %w", err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("storage: restore: %w", err)
	}
	for _, e := range entries {
		if e.Name() != restoreTmp {
			return false, fmt.Errorf("storage: restore: data dir %s is not empty: restore into a new or empty dir", dataDir)
		}
	}
	if err := os.RemoveAll(filepath.Join(dataDir, restoreTmp)); err != nil {
		return false, fmt.Errorf("storage: restore: remove a leftover of a failed restore: %w", err)
	}
	return false, nil
}

// buildRestore writes fsm.db and RestoredMarker into dir (see RestoreBackup).
func buildRestore(path, dir string, opt RestoreOptions) (RestoreResult, error) {
	var res RestoreResult
	f, err := os.Open(path)
	if err != nil {
		return res, fmt.Errorf("storage: restore: %w", err)
	}
	defer f.Close()
	fsmPath := filepath.Join(dir, FSMFile)
	err = durable.WriteFile(fsmPath, 0o600, func(w io.Writer) error {
		var err error
		res.BackupHeader, err = copyBackup(nil, w, bufio.NewReaderSize(f, 1<<20), func(h BackupHeader) error {
			if h.Jurisdiction != opt.Jurisdiction {
				return fmt.Errorf("%w: %s is a backup of jurisdiction %q, the node is in %q: a jurisdiction's records are restored only onto its own nodes",
					ErrWrongJurisdiction, path, h.Jurisdiction, opt.Jurisdiction)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return res, fmt.Errorf("storage: restore %s: %w", path, err)
	}
	if _, err := checkSnapshotFile(fsmPath); err != nil {
		return res, err
	}
	h := res.BackupHeader
	from, _ := json.Marshal(h)
	res.NewClusterID = NewID()
	db, err := openBolt(fsmPath)
	if err != nil {
		return res, fmt.Errorf("storage: restore: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := checkRestoreKeys(tx, h, opt, &res); err != nil {
			return err
		}
		m := tx.Bucket(bucketMeta)
		if err := m.Put(keyClusterID, []byte(res.NewClusterID)); err != nil {
			return err
		}
		// The new group's history starts with a snapshot at index 1, term 1
		// (seedRestoredGroup): the FSM reflects it.
		if err := m.Put(keyAppliedIndex, u64(restoredIndex)); err != nil {
			return err
		}
		if err := m.Put(keyAppliedTerm, u64(restoredTerm)); err != nil {
			return err
		}
		return m.Put(keyRestoredFrom, from)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, fmt.Errorf("storage: restore: %w", err)
	}
	err = durable.WriteFile(filepath.Join(dir, RestoredMarker), 0o600, func(w io.Writer) error {
		_, err := w.Write(append(from, '\n'))
		return err
	})
	if err != nil {
		return res, fmt.Errorf("storage: restore: %w", err)
	}
	return res, nil
}

// checkRestoreKeys counts the backup's client keys and erasures and checks
// them against opt's KEK (see RestoreOptions).
func checkRestoreKeys(tx *bolt.Tx, h BackupHeader, opt RestoreOptions, res *RestoreResult) error {
	res.ClientKeys = tx.Bucket(bucketClientKeys).Stats().KeyN
	res.Erasures = tx.Bucket(bucketErasures).Stats().KeyN
	if opt.KEKFile == "" {
		if res.ClientKeys > 0 {
			return fmt.Errorf("%w: the backup holds %d wrapped client keys: give the jurisdiction's key-encryption key file, whose erasure ledger keeps clients erased after the backup erased",
				ErrKEKRequired, res.ClientKeys)
		}
		return nil
	}
	ledger := opt.KEKFile + seal.LedgerSuffix
	info, err := os.Stat(ledger)
	if err != nil {
		// LoadKEK would make an empty one: the ledger's absence is the point.
		return fmt.Errorf("%w: erasure ledger %s: %w", ErrKEKRequired, ledger, err)
	}
	kek, err := seal.LoadKEK(opt.KEKFile)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKEKRequired, err)
	}
	// Only keys the backup holds can come back: without any, how recent the
	// ledger is does not matter.
	if res.ClientKeys > 0 && info.ModTime().Before(h.TakenAt.Add(-ledgerClockSlack)) && !opt.AllowOldLedger {
		return fmt.Errorf("%w: %s was last changed %s, before the backup was taken (%s): it may lack erasures made since",
			ErrLedgerOutdated, ledger, info.ModTime().UTC().Format(time.RFC3339), h.TakenAt.UTC().Format(time.RFC3339))
	}
	return tx.Bucket(bucketClientKeys).ForEach(func(_, v []byte) error {
		var ck bookingv1.ClientKey
		if err := proto.Unmarshal(v, &ck); err != nil {
			return fmt.Errorf("storage: restore: a client key does not decode: %w", err)
		}
		if ck.KekId != kek.ID() {
			return fmt.Errorf("%w: the backup's client keys are wrapped by %s, %s holds %s", seal.ErrWrongKEK, ck.KekId, opt.KEKFile, kek.ID())
		}
		if kek.Erased(ck.ClientId, ck.KeyId) {
			res.ErasedKeys++
		}
		return nil
	})
}

// restoredIndex and restoredTerm are the index and term of the snapshot a
// restored group's history starts with.
const (
	restoredIndex = 1
	restoredTerm  = 1
)

// seedRestoredGroup runs in Open, before raft starts, on a data dir that
// RestoreBackup wrote and that holds no Raft state yet: it makes the restored
// fsm.db the group's first snapshot (index 1, term 1, a configuration of this
// server alone as the only voter) and sets the current term to 1, with no log
// entry. A server that joins the new group is thus sent that snapshot
// (InstallSnapshot: the leader's log begins after it) — with a bootstrap
// entry instead, the leader would replicate the log from index 1 and a
// joiner would never get the restored records.
func (s *Store) seedRestoredGroup(rc *raft.Config) error {
	has, err := raft.HasExistingState(s.logs, s.logs, s.snaps)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if has {
		return nil // seeded by an earlier Open that stopped before removing the marker
	}
	if got := s.fsm.applied.Load(); got != restoredIndex {
		return fmt.Errorf("storage: %s is present but fsm.db's applied index is %d, not %d: not a data dir barberpro restore wrote", RestoredMarker, got, restoredIndex)
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: s.trans.LocalAddr()}}}
	snap, err := s.fsm.Snapshot()
	if err != nil {
		return err
	}
	sink, err := s.snaps.Create(raft.SnapshotVersionMax, restoredIndex, restoredTerm, conf, restoredIndex, s.trans)
	if err != nil {
		snap.Release()
		return fmt.Errorf("storage: seed restored group: %w", err)
	}
	if err := snap.Persist(sink); err != nil {
		return fmt.Errorf("storage: seed restored group: %w", err)
	}
	if err := s.logs.SetUint64(keyCurrentTerm, restoredTerm); err != nil {
		return fmt.Errorf("storage: seed restored group: %w", err)
	}
	s.logger.Info("seeded a new raft group from a restored backup: its first snapshot holds the restored records",
		"index", restoredIndex, "addr", s.trans.LocalAddr())
	return nil
}

// keyRestoredFrom is the meta key holding the header (JSON) of the backup a
// restored FSM came from.
var keyRestoredFrom = []byte("restored_from")

// RestoredFrom returns the header of the backup this store was restored
// from, if it was (ok false otherwise).
func (s *Store) RestoredFrom() (h BackupHeader, ok bool) {
	_ = s.fsm.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyRestoredFrom); v != nil {
			ok = json.Unmarshal(v, &h) == nil
		}
		return nil
	})
	return h, ok
}

// restoredPending reports whether dataDir holds RestoredMarker.
func restoredPending(dataDir string) bool {
	return fileExists(filepath.Join(dataDir, RestoredMarker))
}
