package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// Bucket names of the FSM's bbolt file (fsm.db).
var (
	bucketProviders      = []byte("providers")       // provider id → Provider
	bucketBookings       = []byte("bookings")        // booking id → Booking
	bucketProviderTime   = []byte("provider_time")   // providerID 0x00 be64(start_ms) bookingID → be64(blocked_until_ms) (non-cancelled only; empty in files written before 7f398c5)
	bucketClientBookings = []byte("client_bookings") // clientID 0x00 be64(created_at_ms) bookingID → empty
	bucketIdempotency    = []byte("idempotency")     // key → IdempotencyRecord, written before records moved to idempotency_time
	bucketMeta           = []byte("meta")            // applied_index, applied_term
	// Time-ordered indexes that Compact walks from the oldest entry (compact.go).
	bucketIdempotencyTime = []byte("idempotency_time") // be64(created_at_ms) key → IdempotencyRecord (empty: the record is in idempotency)
	bucketCancelledTime   = []byte("cancelled_time")   // be64(cancelled_at_ms) bookingID → empty (cancelled only)

	// allBuckets are the buckets every fsm.db and every snapshot has had since
	// the first format (a restored snapshot must hold them all).
	allBuckets = [][]byte{bucketProviders, bucketBookings, bucketProviderTime, bucketClientBookings, bucketIdempotency, bucketMeta}
	// indexBuckets were added later; openDB creates and fills a missing one
	// from the records (ensureIndexes), so files and snapshots written
	// without them still open.
	indexBuckets = [][]byte{bucketIdempotencyTime, bucketCancelledTime}
	// fsmBuckets is every bucket of fsm.db.
	fsmBuckets = append(append(append([][]byte{}, allBuckets...), indexBuckets...), psychBuckets...)
	// recordBuckets are the buckets Digest hashes, in this order (all but meta).
	recordBuckets = append([][]byte{bucketProviders, bucketBookings, bucketProviderTime, bucketClientBookings, bucketIdempotency,
		bucketIdempotencyTime, bucketCancelledTime}, psychBuckets...)

	keyAppliedIndex = []byte("applied_index")
	keyAppliedTerm  = []byte("applied_term")
)

const (
	// MaxBlockedDuration is the longest span [start, blocked_until) a booking may
	// block: 480 minutes of service plus 120 minutes of buffer. The overlap check
	// relies on it: it seeks the provider's time index to start-MaxBlockedDuration.
	MaxBlockedDuration = 10 * time.Hour
	maxBlockedMs       = int64(MaxBlockedDuration / time.Millisecond)

	// MaxIDLength is the longest id (provider, booking, client, idempotency key)
	// the FSM accepts, in bytes.
	MaxIDLength = 256
)

var marshalOpts = proto.MarshalOptions{Deterministic: true}

// fsm is the raft.BatchingFSM over bbolt. Apply, ApplyBatch, Snapshot and
// Restore are called by raft from one goroutine; the read methods may be
// called concurrently with them. mu guards the db pointer, which Restore swaps.
type fsm struct {
	path   string
	logger *slog.Logger

	mu sync.RWMutex
	db *bolt.DB

	applied     atomic.Uint64 // highest log index reflected in db (mirror of meta)
	appliedTerm atomic.Uint64
	// group mirrors meta.cluster_id ("" until the group's FoundGroup entry
	// applied): the Raft transport reads it at every handshake (groupcheck.go),
	// so it must not wait for mu.
	group atomic.Pointer[string]
	// onGroup, if set (before raft starts), is called with the cluster id
	// whenever fsm.db is seen holding one (setGroup).
	onGroup func(string)

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced whenever applied advances

	// installHook, set only by tests (export_test.go), runs where the
	// snapshot-restore failpoint fires; an error aborts the restore there, as
	// a crash at that point would, but lets the test go on.
	installHook atomic.Pointer[func() error]
	// Write failures (see ApplyBatch). fault is non-nil while a batch is
	// being retried; abandoned latches, with its cause, once a batch was
	// given up (at close, or because the raft log could not vouch for it).
	fault       atomic.Pointer[fsmFault]
	faultMu     sync.Mutex // guards faultLogged (faults are set by ApplyBatch and by flushes)
	faultLogged time.Time
	abandoned   atomic.Pointer[error]
	stop        chan struct{} // closed by stopRetrying
	// waitDurable, set by the Store, returns once the raft log holds index on
	// disk (segLog.waitDurable): a leader's appends fdatasync in the
	// background, and raft may hand the FSM an entry before that ends.
	waitDurable        func(index uint64, stop <-chan struct{}) error
	stopOnce           sync.Once
	retryMin, retryMax time.Duration

	// jurisdiction is Config.Jurisdiction: the jurisdiction a consent must
	// name to count for a booking ("" = any). Set before the first apply;
	// every replica of a group must have the same.
	jurisdiction string
	// onErase is Config.OnErase, called after the transaction that applied
	// an EraseHealthData committed (see notifyErased).
	onErase func(clientID string, keyIDs []string)
	// erasures counts the EraseHealthData commands applied (each erasing
	// something) by this process, restored snapshots included.
	erasures atomic.Uint64
	// restores counts the snapshots restored: the shred loop (shred.go) watches
	// it and erasures.
	restores atomic.Uint64

	// Lazy durability (fsmsync.go). lazy (guarded by mu) is set by
	// startSyncing: commits skip fsync and syncLoop fsyncs. synced is the
	// applied index as of the last fsync; syncMu serializes fsyncs;
	// syncFault latches a failed fsync.
	lazy         bool
	syncMu       sync.Mutex
	synced       atomic.Uint64
	syncFault    atomic.Pointer[error]
	syncStop     chan struct{}
	syncDone     chan struct{}
	syncStopOnce sync.Once
	// fsync is (*bolt.DB).Sync; tests make it fail.
	fsync func(*bolt.DB) error

	// providers caches decoded provider records for the apply path.
	providers providerCache
	// idem locates idempotency records in idempotency_time (idemlocator.go).
	idem idemLocator

	// Deferred commits (fsmcommit.go). pendMu guards pend (the open write
	// transaction) and failed (logs of a transaction whose commit failed;
	// the first failedAnswered of them were answered); uncommitted mirrors
	// "pend or failed logs" for readers that do not take pendMu.
	// committed/committedTerm are the last log in fsm.db (applied and
	// appliedTerm: the last applied, committed or not). commitEvery (set by
	// startSyncing; 0 commits every batch) bounds a transaction's age.
	pendMu         sync.Mutex
	pend           *pendingTx
	failed         []*raft.Log
	failedAnswered int
	uncommitted    atomic.Bool
	committed      atomic.Uint64
	committedTerm  atomic.Uint64
	commitEvery    time.Duration
	commits        atomic.Uint64 // transactions committed by the apply path

	// providersVer changes whenever the provider records a read may see
	// change (providersChanged): Store.ProvidersVersion.
	providersVer atomic.Uint64
}

// Retry delays of a failed FSM write, and how often a still failing one is
// logged.
const (
	fsmRetryMin   = 50 * time.Millisecond
	fsmRetryMax   = time.Second
	faultLogEvery = 30 * time.Second
)

var _ raft.BatchingFSM = (*fsm)(nil)

func openFSM(path string, logger *slog.Logger) (*fsm, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &fsm{path: path, logger: logger, notify: make(chan struct{}), stop: make(chan struct{}),
		retryMin: fsmRetryMin, retryMax: fsmRetryMax, fsync: (*bolt.DB).Sync}
	if err := discardUntrustedFSM(path, logger); err != nil {
		return nil, err
	}
	removeRestoreLeftovers(path, logger)
	if err := f.openDB(); err != nil {
		return nil, err
	}
	return f, nil
}

func openBolt(path string) (*bolt.DB, error) {
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
}

// openDB opens f.path, creates missing buckets and loads the applied index.
// Callers hold mu (or own f exclusively).
func (f *fsm) openDB() error {
	db, err := openBolt(f.path)
	if err != nil {
		return fmt.Errorf("storage: open fsm %s: %w", f.path, err)
	}
	var idx, term uint64
	var group string
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// The psychology buckets came later; a file or snapshot without them
		// holds none of their records, so empty buckets are its exact state.
		for _, b := range psychBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if err := ensureIndexes(tx); err != nil {
			return err
		}
		idx, term = readApplied(tx)
		group = string(tx.Bucket(bucketMeta).Get(keyClusterID))
		f.idem.load(tx)
		return nil
	})
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("storage: init fsm: %w", err)
	}
	db.NoSync = f.lazy // the init above was fsynced either way
	f.db = db
	f.setGroup(group)
	f.committed.Store(idx)
	f.committedTerm.Store(term)
	f.setApplied(idx, term)
	return nil
}

// setGroup records the cluster id fsm.db holds and, when it is set, hands it
// to onGroup (the Store keeps it in raft.db too: groupid.go).
func (f *fsm) setGroup(g string) {
	f.group.Store(&g)
	if g != "" && f.onGroup != nil {
		f.onGroup(g)
	}
}

// groupID returns the cluster id the FSM holds ("" before FoundGroup applied).
func (f *fsm) groupID() string {
	if p := f.group.Load(); p != nil {
		return *p
	}
	return ""
}

func readApplied(tx *bolt.Tx) (idx, term uint64) {
	m := tx.Bucket(bucketMeta)
	if v := m.Get(keyAppliedIndex); len(v) == 8 {
		idx = binary.BigEndian.Uint64(v)
	}
	if v := m.Get(keyAppliedTerm); len(v) == 8 {
		term = binary.BigEndian.Uint64(v)
	}
	return idx, term
}

// close stops the sync loop, fsyncs fsm.db, closes it and marks it clean
// (see closeDurably).
func (f *fsm) close() error {
	f.stopSyncing()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	return f.closeDurably()
}

func (f *fsm) setApplied(idx, term uint64) {
	f.applied.Store(idx)
	f.appliedTerm.Store(term)
	f.wake()
}

// wake closes and replaces the notify channel.
func (f *fsm) wake() {
	f.notifyMu.Lock()
	close(f.notify)
	f.notify = make(chan struct{})
	f.notifyMu.Unlock()
}

// changed returns a channel closed at the next advance of the applied index
// (and when a write fault begins).
func (f *fsm) changed() <-chan struct{} {
	f.notifyMu.Lock()
	defer f.notifyMu.Unlock()
	return f.notify
}

// view runs fn in a read transaction on the current db, after committing
// what is pending (fsmcommit.go): a read sees every log applied before it,
// also while the FSM cannot commit the answered ones (viewFailed).
func (f *fsm) view(fn func(tx *bolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return ErrClosed
	}
	if err := f.flush(); err != nil {
		return f.viewFailed(fn)
	}
	return f.db.View(fn)
}

// Apply applies one log; see ApplyBatch.
func (f *fsm) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies every log of the batch in a bbolt transaction (not
// fsynced once startSyncing ran: see fsmsync.go; kept open across batches
// then: see fsmcommit.go) and stores the last index in meta in the same
// transaction. Logs at or below the stored applied index
// were applied before a restart and get a nil response. A LogCommand's response is a []*CommandResult, one per
// command of its CommandBatch (one INVALID result if the data does not decode).
//
// A failure of bbolt itself (I/O error, full disk) rolls the transaction
// back, so neither the records nor meta.applied_index move. raft has already
// committed these entries: skipping them would make this replica diverge and
// panicking would take the node down for a condition that may pass. So the
// FSM is marked faulty (writeFault: Propose refuses at once and Ready
// reports it, both with ErrStorageUnavailable) and ApplyBatch retries the
// same batch with a growing delay (retryMin doubling to retryMax) until a
// transaction commits; then the fault clears by itself. Meanwhile raft's FSM
// goroutine is blocked here: committed batches queue in raft's fsmMutateCh
// (128 batches) and then raft's main loop waits, which is backpressure, not
// loss. Each attempt re-reads meta.applied_index, so a transaction whose
// commit reported an error yet reached the file (a failed fsync of the meta
// page) is not applied twice. stopRetrying (Store.Close) ends the retries:
// the batch is then abandoned (see abandonedResponses) and the FSM never
// writes again in this process.
//
// A batch is applied only once the raft log holds it on disk (awaitDurable).
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	if err := f.awaitDurable(logs); err != nil {
		return abandonedResponses(logs, err)
	}
	var prev []interface{}
	var prevErased []erasedAt
	for attempt := 0; ; attempt++ {
		if f.abandoned.Load() != nil {
			return abandonedResponses(logs, errors.New("an earlier batch was abandoned"))
		}
		out, erased, err := f.applyOnce(logs, prev, prevErased)
		if err == nil {
			f.notifyErased(erased)
			return out
		}
		prev, prevErased = out, erased
		f.setFault(err, logs)
		if !f.waitRetry(attempt) {
			f.abandon(err)
			f.logger.Error("fsm gave up applying entries at close; they stay in the raft log and are applied after restart",
				"first_index", logs[0].Index, "last_index", logs[len(logs)-1].Index, "err", err)
			return abandonedResponses(logs, err)
		}
	}
}

// abandon latches cause as the reason the FSM gave up on a batch (the first
// one kept); it reports whether this call latched it.
func (f *fsm) abandon(cause error) bool {
	return f.abandoned.CompareAndSwap(nil, &cause)
}

// awaitDurable waits until the raft log holds logs on disk. raft commits an
// entry once a majority acked it, counting the leader's copy before the
// leader's background fdatasync ends (segmentlog_async.go); applying it only
// once that fdatasync covers it means nothing answers, reads or snapshots an
// entry that a majority does not hold on disk. On a follower the entries are
// on disk already. If the wait ends otherwise (the store closes, or the
// fdatasync failed and the log can no longer vouch for them) the batch is
// abandoned (the FSM writes nothing more in this process) and the error
// returned.
func (f *fsm) awaitDurable(logs []*raft.Log) error {
	if f.waitDurable == nil || len(logs) == 0 {
		return nil
	}
	err := f.waitDurable(logs[len(logs)-1].Index, f.stop)
	switch {
	case err == nil || !f.abandon(err):
	case errors.Is(err, ErrClosed):
		f.logger.Warn("fsm closing before the raft log's fdatasync of entries ended; they are applied after restart",
			"first_index", logs[0].Index, "last_index", logs[len(logs)-1].Index)
	default:
		f.logger.Error("fsm gave up applying entries: the raft log cannot vouch for them on disk; a restart rescans it",
			"first_index", logs[0].Index, "last_index", logs[len(logs)-1].Index, "err", err)
	}
	return err
}

// applyOnce makes one attempt at ApplyBatch's transaction: it first applies
// again the logs of a deferred transaction whose commit failed (redoLocked),
// then applies logs into the open transaction (fsmcommit.go) and commits it
// if it is due. Logs already in meta.applied_index are skipped; their
// response is taken from prev (the previous attempt's, whose commit reported
// an error but reached the file, or whose logs redoLocked applied again),
// and so are their erasures (prevErased). It returns the erasures of the
// batch (to notify once it committed: a batch that erases commits at once).
func (f *fsm) applyOnce(logs []*raft.Log, prev []interface{}, prevErased []erasedAt) ([]interface{}, []erasedAt, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if prev == nil {
		prev = make([]interface{}, len(logs))
	}
	if f.db == nil {
		return prev, prevErased, ErrClosed
	}
	f.pendMu.Lock()
	defer f.pendMu.Unlock()
	// A failure before logs are applied keeps the previous attempt's answers.
	if err := f.redoLocked(); err != nil {
		return prev, prevErased, err
	}
	p, err := f.beginLocked()
	if err != nil {
		return prev, prevErased, err
	}
	r := f.applyInTx(p.tx, logs, prev, prevErased)
	if r.err != nil {
		f.abortLocked(p)
		return r.out, r.erased, r.err
	}
	p.add(logs, r)
	if r.providers {
		f.providersChanged() // under pendMu: a reader of the new version waits for this apply
	}
	// A batch applied during a write fault commits at once: only a commit
	// ends the fault (a retried batch whose apply failed leaves no failed
	// logs for redoLocked to commit).
	if f.commitDue(p, len(r.erased) > 0 || f.fault.Load() != nil) {
		if err := f.commitLocked(len(logs)); err != nil {
			return r.out, r.erased, err
		}
	}
	// applied moves only now: a linearizable read returns once applied
	// covers its index (Store.waitApplied), and a batch whose own commit
	// failed above is rolled back unanswered — a read let through before
	// that commit would have missed it with no error.
	if r.lastIdx != 0 {
		f.setApplied(r.lastIdx, r.lastTerm)
	} else if r.storedIdx > f.applied.Load() {
		f.setApplied(r.storedIdx, r.storedTerm)
	}
	return r.out, r.erased, nil
}

// txApply is what applyInTx did in a transaction.
type txApply struct {
	out                   []interface{} // one response per log
	erased                []erasedAt    // clients the logs erased
	lastIdx, lastTerm     uint64        // the last log applied (0: none was new)
	storedIdx, storedTerm uint64        // meta.applied_index before the logs
	group                 string        // meta.cluster_id after the logs, read while the FSM has none
	providers             bool          // a provider record was written
	idemRemoved           []idemEntry   // idempotency records the logs deleted (idemLocator.forget after the commit)
	err                   error         // a bbolt failure: tx must be rolled back
}

// applyInTx applies logs in tx, skipping those at or below meta's applied
// index (their answers from prev and prevErased when given), and stores the
// last index, its term and the entry clock in meta.
func (f *fsm) applyInTx(tx *bolt.Tx, logs []*raft.Log, prev []interface{}, prevErased []erasedAt) txApply {
	r := txApply{out: make([]interface{}, len(logs))}
	r.storedIdx, r.storedTerm = readApplied(tx)
	a := applier{tx: tx, jurisdiction: f.jurisdiction, providers: &f.providers, idem: &f.idem}
	for i, l := range logs {
		if l.Index <= r.storedIdx {
			if prev != nil {
				r.out[i] = prev[i]
			}
			for _, e := range prevErased {
				if e.index == l.Index {
					a.erased = append(a.erased, e)
				}
			}
			continue
		}
		if l.Type == raft.LogCommand {
			a.index = l.Index
			r.out[i] = a.applyLog(l)
		}
		r.lastIdx, r.lastTerm = l.Index, l.Term
	}
	r.erased = a.erased
	r.providers = a.providersWritten
	r.idemRemoved = a.idemRemoved
	if f.groupID() == "" {
		r.group = string(tx.Bucket(bucketMeta).Get(keyClusterID))
	}
	if r.err = a.err; r.err != nil || r.lastIdx == 0 {
		return r
	}
	m := tx.Bucket(bucketMeta)
	if a.clockMoved { // once per batch, not per command
		if r.err = m.Put(keyEntryClock, u64(uint64(a.clock))); r.err != nil {
			return r
		}
	}
	if r.err = m.Put(keyAppliedIndex, u64(r.lastIdx)); r.err != nil {
		return r
	}
	r.err = m.Put(keyAppliedTerm, u64(r.lastTerm))
	return r
}

// fsmFault is the FSM's write failure while it retries.
type fsmFault struct {
	err         error
	first, last uint64 // the batch's log indexes
	since       time.Time
	attempts    int
}

// setFault records a failed attempt to write logs (ApplyBatch's, or a
// flush's: fsmcommit.go). The first failure of an episode is logged as an
// error, then one warning every faultLogEvery.
func (f *fsm) setFault(err error, logs []*raft.Log) {
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	var first, last uint64
	if len(logs) > 0 {
		first, last = logs[0].Index, logs[len(logs)-1].Index
	}
	now := time.Now()
	cur := f.fault.Load()
	since, attempts := now, 1
	if cur != nil {
		since, attempts = cur.since, cur.attempts+1
	}
	f.fault.Store(&fsmFault{err: err, first: first, last: last, since: since, attempts: attempts})
	if cur == nil {
		f.wake() // waiters for the applied index learn they would wait in vain
	}
	switch {
	case cur == nil:
		f.logger.Error("fsm write failed: storage unavailable, retrying the same entries (node refuses writes and reports unready until a write succeeds)",
			"first_index", first, "last_index", last, "err", err)
	case now.Sub(f.faultLogged) >= faultLogEvery:
		f.logger.Warn("fsm write still failing", "first_index", first, "last_index", last,
			"attempts", attempts, "since", since, "err", err)
	default:
		return
	}
	f.faultLogged = now
}

// clearFault ends a fault episode (a write succeeded), if one is on.
func (f *fsm) clearFault() {
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	cur := f.fault.Swap(nil)
	if cur == nil {
		return
	}
	f.logger.Info("fsm writes resumed", "first_index", cur.first, "last_index", cur.last,
		"failed_attempts", cur.attempts, "degraded_for", time.Since(cur.since))
}

// writeFault returns an error wrapping ErrStorageUnavailable while the FSM
// cannot write (or has given up on a batch: at close, or because the raft
// log could not vouch for it on disk), else nil.
func (f *fsm) writeFault() error {
	if cur := f.fault.Load(); cur != nil {
		return fmt.Errorf("%w: fsm cannot apply entries %d..%d since %s (%d attempts): %v",
			ErrStorageUnavailable, cur.first, cur.last, cur.since.UTC().Format(time.RFC3339), cur.attempts, cur.err)
	}
	if cause := f.abandoned.Load(); cause != nil {
		return fmt.Errorf("%w: fsm gave up on a batch; restart the node: %w", ErrStorageUnavailable, *cause)
	}
	if err := f.syncFault.Load(); err != nil {
		return *err
	}
	return nil
}

// waitRetry sleeps before attempt+1 (retryMin doubling up to retryMax); false
// if stopRetrying was called.
func (f *fsm) waitRetry(attempt int) bool {
	d := min(f.retryMin<<min(attempt, 20), f.retryMax)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-f.stop:
		return false
	}
}

// stopRetrying makes a blocked ApplyBatch give up (Store.Close calls it
// before shutting raft down, which waits for the FSM goroutine). It does not
// affect applies that succeed.
func (f *fsm) stopRetrying() { f.stopOnce.Do(func() { close(f.stop) }) }

// abandonedResponses answers every log of a batch the FSM gave up on: an
// error (in place of the []*CommandResult) wrapping ErrClosed,
// ErrStorageUnavailable and ErrOutcomeUnknown. The entries are committed;
// this node applies them from its raft log after a restart.
func abandonedResponses(logs []*raft.Log, cause error) []interface{} {
	out := make([]interface{}, len(logs))
	for i, l := range logs {
		out[i] = fmt.Errorf("%w: %w: %w: entry %d committed but not applied on this node before it closed: %v",
			ErrClosed, ErrStorageUnavailable, ErrOutcomeUnknown, l.Index, cause)
	}
	return out
}

// applier applies commands inside one write transaction. Every command is
// judged completely before it writes, so a rejected command changes nothing.
// err records a bbolt failure (which aborts the whole batch).
type applier struct {
	tx  *bolt.Tx
	err error
	// clock is the largest proposed_at_ms of the entries applied so far
	// (meta.entry_clock_ms, loaded on first use): see entryTime.
	clock       int64
	clockLoaded bool
	clockMoved  bool // clock to be stored in meta when the batch ends

	jurisdiction string     // fsm.jurisdiction
	index        uint64     // the log being applied
	erased       []erasedAt // clients erased by this batch, in order

	providers *providerCache // fsm.providers (providerView)
	idem      *idemLocator   // fsm.idem
	// idemRemoved are the idempotency records deleted in tx: the locator
	// forgets them once tx commits (a transaction rolled back and applied
	// again must still find them).
	idemRemoved []idemEntry
	buckets     []namedBucket // the buckets of tx looked up so far (bucket)
	key         []byte        // scratch of get and overlap (bbolt keeps no key it is given)
	wkey        []byte        // scratch of the keys written (Put copies its key)
	// The audit chain's head (seq, hash) once read or appended in this
	// transaction (auditHead reads it from the audit bucket once).
	auditSeq   uint64
	auditHash  []byte
	auditKnown bool
	canon      []byte // scratch of appendAudit: prev_hash || canonical bytes
	// providersWritten: a provider record was put (fsm.providersVersion).
	providersWritten bool
}

// keyEntryClock is the meta key of the largest proposed_at_ms applied.
var keyEntryClock = []byte("entry_clock_ms")

// entryTime advances the entry clock with cmd's proposed_at_ms and returns
// max(proposed_at_ms, clock). proposed_at_ms comes from the clock of whichever
// node first proposed the command; a node whose clock runs behind would stamp
// an idempotency record that the next Compact of a correct leader removes at
// once. The entry clock depends only on the log, so every replica computes
// the same value, and a snapshot carries it (meta).
func (a *applier) entryTime(cmd *bookingv1.Command) int64 {
	if !a.clockLoaded {
		a.clockLoaded = true
		if v := a.bucket(bucketMeta).Get(keyEntryClock); len(v) == 8 {
			a.clock = int64(binary.BigEndian.Uint64(v))
		}
	}
	if cmd.ProposedAtMs > a.clock {
		a.clock, a.clockMoved = cmd.ProposedAtMs, true
	}
	return a.clock
}

func (a *applier) applyLog(l *raft.Log) []*bookingv1.CommandResult {
	var batch bookingv1.CommandBatch
	if err := proto.Unmarshal(l.Data, &batch); err != nil {
		return []*bookingv1.CommandResult{{
			Code:   bookingv1.ResultCode_RESULT_CODE_INVALID,
			Detail: "undecodable command batch",
			Index:  l.Index,
		}}
	}
	res := make([]*bookingv1.CommandResult, len(batch.Commands))
	for i, cmd := range batch.Commands {
		r := a.apply(cmd)
		r.Index = l.Index
		res[i] = r
	}
	return res
}

func result(code bookingv1.ResultCode, format string, args ...any) *bookingv1.CommandResult {
	return &bookingv1.CommandResult{Code: code, Detail: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *bookingv1.CommandResult {
	return result(bookingv1.ResultCode_RESULT_CODE_INVALID, format, args...)
}

func okBooking(b *bookingv1.Booking) *bookingv1.CommandResult {
	return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Booking: b}
}

func okProvider(p *bookingv1.Provider) *bookingv1.CommandResult {
	return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Provider: p}
}

// validID reports why id is not acceptable as a key component, or "".
func validID(what, id string) string {
	switch {
	case id == "":
		return what + " is empty"
	case len(id) > MaxIDLength:
		return fmt.Sprintf("%s is longer than %d bytes", what, MaxIDLength)
	case strings.IndexByte(id, 0) >= 0:
		return what + " contains a NUL byte"
	case !utf8.ValidString(id):
		return what + " is not valid UTF-8"
	}
	return ""
}

// validIDs checks (what, id) pairs with validID in order and returns the first
// reason, or "".
func validIDs(whatID ...string) string {
	for i := 0; i+1 < len(whatID); i += 2 {
		if why := validID(whatID[i], whatID[i+1]); why != "" {
			return why
		}
	}
	return ""
}

func (a *applier) apply(cmd *bookingv1.Command) *bookingv1.CommandResult {
	if cmd == nil || cmd.Op == nil {
		return invalid("command has no operation")
	}
	now := a.entryTime(cmd)
	if c, ok := cmd.Op.(*bookingv1.Command_Compact); ok {
		if cmd.IdempotencyKey != "" {
			return invalid("compact takes no idempotency key")
		}
		if len(cmd.Audit) > 0 {
			return invalid("compact carries no audit records")
		}
		return a.compact(cmd, c.Compact)
	}
	// Malformed audit records refuse the command before anything is judged,
	// so nothing, not even an audit entry, is written for it.
	if why := validAudit(cmd.Audit); why != "" {
		return invalid("%s", why)
	}
	r, replayed := a.applyOp(cmd, now)
	if !replayed {
		// A replay answers a retry of a command whose records were appended
		// when it took effect: appending them again would log it twice.
		a.appendAudit(cmd.Audit, now, r)
	}
	return r
}

// applyOp judges and applies cmd's operation (with its idempotency key);
// replayed reports that the key's first answer was replayed.
func (a *applier) applyOp(cmd *bookingv1.Command, now int64) (r *bookingv1.CommandResult, replayed bool) {
	key := cmd.IdempotencyKey
	if key != "" {
		if why := validID("idempotency_key", key); why != "" {
			return invalid("%s", why), false
		}
		if rec := a.idempotency(key); rec != nil {
			if !bytes.Equal(rec.RequestHash, cmd.RequestHash) {
				return result(bookingv1.ResultCode_RESULT_CODE_IDEMPOTENCY_MISMATCH,
					"idempotency key %q was used by a different request", key), false
			}
			return a.replay(cmd, rec), true
		}
	}
	var resourceID string
	switch op := cmd.Op.(type) {
	case *bookingv1.Command_CreateProvider:
		r = a.createProvider(cmd, op.CreateProvider)
	case *bookingv1.Command_UpdateProvider:
		r = a.updateProvider(cmd, op.UpdateProvider)
	case *bookingv1.Command_CreateBooking:
		r = a.createBooking(cmd, op.CreateBooking, now)
	case *bookingv1.Command_CancelBooking:
		r = a.cancelBooking(cmd, op.CancelBooking)
	case *bookingv1.Command_RescheduleBooking:
		r = a.rescheduleBooking(cmd, op.RescheduleBooking, now)
	case *bookingv1.Command_FoundGroup:
		return a.foundGroup(op.FoundGroup), false
	default:
		var ok bool
		if r, resourceID, ok = a.applyPsych(cmd, now); !ok {
			return invalid("unknown operation"), false
		}
	}
	if r.Code != bookingv1.ResultCode_RESULT_CODE_OK || key == "" {
		return r, false
	}
	switch {
	case resourceID != "":
	case r.Booking != nil:
		resourceID = r.Booking.Id
	case r.Provider != nil:
		resourceID = r.Provider.Id
	}
	// The record goes in time order (idemlocator.go); its locator entry
	// with it, and both go if the transaction is rolled back (the entry
	// then locates nothing).
	a.put(bucketIdempotencyTime, atKey(now, key), &bookingv1.IdempotencyRecord{
		Key:         key,
		RequestHash: cmd.RequestHash,
		ResourceId:  resourceID,
		CreatedAtMs: now,
		FirstResult: firstResult(r),
	})
	a.idem.set(key, now)
	return r, false
}

// MaxFirstResultBytes bounds the first answer an idempotency record keeps
// (IdempotencyRecord.first_result): a booking, provider or consent is well
// under it, and so is a series of the edge's 52 occurrences at most; a bigger
// result is not kept, and its replay answers the current state. Records, first answers included, go when the idempotency TTL expires
// them (compaction), so the bound also bounds what a key costs the store.
const MaxFirstResultBytes = 64 << 10

// firstResult is r as a record keeps it: its deterministic encoding (every
// replica writes the same bytes), or nil when over MaxFirstResultBytes.
// Only the records an answer is rendered from are kept: never a note or a
// client key (erasure must be able to destroy those), nor the index, which
// is this entry's and not the answer's.
func firstResult(r *bookingv1.CommandResult) []byte {
	kept := &bookingv1.CommandResult{Code: r.Code, Booking: r.Booking, Provider: r.Provider,
		Consent: r.Consent, Series: r.Series, Bookings: r.Bookings}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(kept)
	if err != nil || len(b) > MaxFirstResultBytes {
		return nil
	}
	return b
}

// replay answers a repeated keyed command with the current state of the
// resource it created or changed, and changes nothing.
func (a *applier) replay(cmd *bookingv1.Command, rec *bookingv1.IdempotencyRecord) *bookingv1.CommandResult {
	if r, ok := a.replayPsych(cmd, rec); ok {
		return r
	}
	switch cmd.Op.(type) {
	case *bookingv1.Command_CreateProvider, *bookingv1.Command_UpdateProvider, *bookingv1.Command_VerifyProvider:
		if p := a.provider(rec.ResourceId); p != nil {
			return okProvider(p)
		}
	default:
		if b := a.booking(rec.ResourceId); b != nil {
			return okBooking(b)
		}
	}
	return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND,
		"idempotency key %q refers to %q, which no longer exists", rec.Key, rec.ResourceId)
}

func (a *applier) createProvider(cmd *bookingv1.Command, op *bookingv1.CreateProvider) *bookingv1.CommandResult {
	p := op.GetProvider()
	if p == nil {
		return invalid("create_provider without provider")
	}
	if why := validID("provider id", p.Id); why != "" {
		return invalid("%s", why)
	}
	if p.Timezone == "" {
		return invalid("provider %q has no timezone", p.Id)
	}
	if a.providerView(p.Id) != nil {
		return result(bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS, "provider %q already exists", p.Id)
	}
	np := proto.Clone(p).(*bookingv1.Provider)
	np.CreatedAtMs = cmd.ProposedAtMs
	np.UpdatedAtMs = cmd.ProposedAtMs
	np.Version = 1
	if !a.put(bucketProviders, []byte(np.Id), np) {
		return invalid("provider %q cannot be encoded", p.Id)
	}
	return okProvider(np)
}

func (a *applier) updateProvider(cmd *bookingv1.Command, op *bookingv1.UpdateProvider) *bookingv1.CommandResult {
	p := op.GetProvider()
	if p == nil {
		return invalid("update_provider without provider")
	}
	if why := validID("provider id", p.Id); why != "" {
		return invalid("%s", why)
	}
	cur := a.providerView(p.Id) // cloned below, never changed
	if cur == nil {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "provider %q not found", p.Id)
	}
	// Optimistic concurrency: an update computed from version V applies only to
	// version V, so two concurrent changes cannot silently undo each other.
	if p.Version != 0 && p.Version != cur.Version {
		return result(bookingv1.ResultCode_RESULT_CODE_INVALID_TRANSITION,
			"provider %q changed since it was read (version %d, now %d)", p.Id, p.Version, cur.Version)
	}
	np := proto.Clone(cur).(*bookingv1.Provider)
	np.Name = p.Name
	np.Services = cloneSlice(p.Services)
	np.WeeklyHours = cloneSlice(p.WeeklyHours)
	np.DateOverrides = cloneSlice(p.DateOverrides)
	np.MinNoticeMinutes = p.MinNoticeMinutes
	np.HorizonDays = p.HorizonDays
	np.SlotStepMinutes = p.SlotStepMinutes
	np.Version = cur.Version + 1
	np.UpdatedAtMs = cmd.ProposedAtMs
	if !a.put(bucketProviders, []byte(np.Id), np) {
		return invalid("provider %q cannot be encoded", p.Id)
	}
	return okProvider(np)
}

func cloneSlice[T proto.Message](in []T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i, m := range in {
		out[i] = proto.Clone(m).(T)
	}
	return out
}

// checkTimes validates a booking's [start, end, blocked_until).
func checkTimes(start, end, blocked int64) string {
	switch {
	case start <= 0:
		return "start_ms must be positive"
	case !(start < end):
		return "start_ms must be before end_ms"
	case !(end <= blocked):
		return "blocked_until_ms must not be before end_ms"
	case blocked-start > maxBlockedMs:
		return fmt.Sprintf("booking blocks more than %s", MaxBlockedDuration)
	}
	return ""
}

func (a *applier) createBooking(cmd *bookingv1.Command, op *bookingv1.CreateBooking, now int64) *bookingv1.CommandResult {
	b := op.GetBooking()
	if b == nil {
		return invalid("create_booking without booking")
	}
	if why := checkNewBooking(b); why != "" {
		return invalid("%s", why)
	}
	if b.SeriesId != "" {
		return invalid("create_booking sets no series_id (create_series does)")
	}
	p := a.providerView(b.ProviderId) // read only
	if p == nil {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "provider %q not found", b.ProviderId)
	}
	if a.booking(b.Id) != nil {
		return result(bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS, "booking %q already exists", b.Id)
	}
	// Consent and verification come before the slot: a client without
	// consent learns nothing about the provider's calendar.
	if r := a.checkBookable(p, b.ClientId, op.ConsentPurpose, op.RequireVerified, now); r != nil {
		return r
	}
	if other := a.overlap(b.ProviderId, b.StartMs, b.BlockedUntilMs, ""); other != "" {
		return result(bookingv1.ResultCode_RESULT_CODE_SLOT_TAKEN, "overlaps another booking of the provider")
	}
	nb := a.insertBooking(b, p, cmd.ProposedAtMs, op.ConsentPurpose)
	if nb == nil {
		return invalid("booking %q cannot be encoded", b.Id)
	}
	return okBooking(nb)
}

// checkNewBooking reports why b cannot be created (ids, times, the fields
// only the FSM sets), or "".
func checkNewBooking(b *bookingv1.Booking) string {
	if why := validIDs("booking id", b.Id, "provider_id", b.ProviderId, "client_id", b.ClientId); why != "" {
		return why
	}
	if why := checkTimes(b.StartMs, b.EndMs, b.BlockedUntilMs); why != "" {
		return why
	}
	switch {
	case b.CancelReason != "":
		return "a new booking has no cancel_reason"
	case b.Erased:
		return "a new booking is not erased"
	case b.SessionStatus != bookingv1.SessionStatus_SESSION_STATUS_UNSPECIFIED &&
		b.SessionStatus != bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED:
		return "a new session must be scheduled"
	}
	return ""
}

// insertBooking stores b as a new confirmed booking of p created at
// createdMs, with its indexes; nil if b cannot be encoded (nothing written).
// It sets the fields the FSM owns in b itself and returns it: callers pass a
// booking of their own (the decoded command's, or a clone), not one read
// from a cache.
func (a *applier) insertBooking(b *bookingv1.Booking, p *bookingv1.Provider, createdMs int64, purpose string) *bookingv1.Booking {
	nb := b
	nb.ConsentPurpose = purpose
	nb.Status = bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED
	nb.CreatedAtMs = createdMs
	nb.UpdatedAtMs = createdMs
	nb.Version = 1
	if nb.Vertical == "" {
		nb.Vertical = p.Vertical
	}
	if !a.put(bucketBookings, []byte(nb.Id), nb) {
		return nil
	}
	a.putTimeIndex(nb)
	a.putKey(bucketClientBookings, a.timeKey(nb.ClientId, nb.CreatedAtMs, nb.Id))
	return nb
}

func (a *applier) cancelBooking(cmd *bookingv1.Command, op *bookingv1.CancelBooking) *bookingv1.CommandResult {
	cur := a.booking(op.BookingId)
	if cur == nil {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "booking %q not found", op.BookingId)
	}
	if cur.Status == bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
		return okBooking(cur)
	}
	if sessionStarted(cur) {
		return result(bookingv1.ResultCode_RESULT_CODE_INVALID_TRANSITION,
			"session %q is %s and cannot be cancelled", cur.Id, cur.SessionStatus)
	}
	return okBooking(a.cancel(cur, cmd.ProposedAtMs, ""))
}

// sessionStarted reports whether b is a session past scheduled (checked in,
// completed, no-show): it can be neither cancelled nor rescheduled.
func sessionStarted(b *bookingv1.Booking) bool {
	switch b.SessionStatus {
	case bookingv1.SessionStatus_SESSION_STATUS_UNSPECIFIED, bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED:
		return false
	}
	return true
}

// cancel writes cur cancelled at atMs with reason (a session goes
// cancelled too) and returns the new record. cur must be confirmed.
func (a *applier) cancel(cur *bookingv1.Booking, atMs int64, reason string) *bookingv1.Booking {
	nb := proto.Clone(cur).(*bookingv1.Booking)
	nb.Status = bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED
	nb.CancelReason = reason
	if nb.SessionStatus != bookingv1.SessionStatus_SESSION_STATUS_UNSPECIFIED {
		nb.SessionStatus = bookingv1.SessionStatus_SESSION_STATUS_CANCELLED
	}
	nb.Version++
	nb.UpdatedAtMs = atMs
	a.put(bucketBookings, []byte(nb.Id), nb)
	a.deleteKey(bucketProviderTime, a.timeKey(cur.ProviderId, cur.StartMs, cur.Id))
	a.putKey(bucketCancelledTime, atKey(nb.UpdatedAtMs, nb.Id))
	return nb
}

func (a *applier) rescheduleBooking(cmd *bookingv1.Command, op *bookingv1.RescheduleBooking, now int64) *bookingv1.CommandResult {
	cur := a.booking(op.BookingId)
	if cur == nil {
		return result(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND, "booking %q not found", op.BookingId)
	}
	if cur.Status != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED {
		return result(bookingv1.ResultCode_RESULT_CODE_INVALID_TRANSITION,
			"booking %q is %s and cannot be rescheduled", cur.Id, cur.Status)
	}
	if sessionStarted(cur) {
		return result(bookingv1.ResultCode_RESULT_CODE_INVALID_TRANSITION,
			"session %q is %s and cannot be rescheduled", cur.Id, cur.SessionStatus)
	}
	if why := checkTimes(op.StartMs, op.EndMs, op.BlockedUntilMs); why != "" {
		return invalid("%s", why)
	}
	// A booking moved is made anew at its new time: the consent it was created
	// under (and the one the proposer names) must be active at the entry time,
	// before the slot is looked at, as for CreateBooking.
	for _, purpose := range []string{cur.ConsentPurpose, op.ConsentPurpose} {
		if purpose != "" && a.activeConsent(cur.ClientId, purpose, now, "") == nil {
			return result(bookingv1.ResultCode_RESULT_CODE_CONSENT_REQUIRED,
				"no active consent of the client for %q", purpose)
		}
	}
	if other := a.overlap(cur.ProviderId, op.StartMs, op.BlockedUntilMs, cur.Id); other != "" {
		return result(bookingv1.ResultCode_RESULT_CODE_SLOT_TAKEN, "overlaps another booking of the provider")
	}
	nb := proto.Clone(cur).(*bookingv1.Booking)
	nb.StartMs, nb.EndMs, nb.BlockedUntilMs = op.StartMs, op.EndMs, op.BlockedUntilMs
	nb.Version++
	nb.UpdatedAtMs = cmd.ProposedAtMs
	a.deleteKey(bucketProviderTime, a.timeKey(cur.ProviderId, cur.StartMs, cur.Id))
	a.putTimeIndex(nb)
	a.put(bucketBookings, []byte(nb.Id), nb)
	return okBooking(nb)
}

// overlap returns the id of a non-cancelled booking of providerID, other than
// exclude, whose [start, blocked_until) intersects [start, blocked), or "". It
// reads the time index alone (its values hold blocked_until_ms), backwards
// from blocked, and stops at the first entry other than exclude: the
// provider's entries are non-empty and pairwise disjoint (every insert was
// checked here, invariant 2), so sorted by start they are sorted by end too,
// and when the latest entry starting before blocked ends by start, every
// earlier one does. One seek and a step or two, however many bookings the
// provider has in the MaxBlockedDuration before start.
func (a *applier) overlap(providerID string, start, blocked int64, exclude string) string {
	a.key = appendTimeKey(a.key[:0], providerID, blocked, "")
	prefix := a.key[:len(providerID)+1]
	c := a.cursor(bucketProviderTime)
	// Keys before providerID 0x00 be64(blocked) are the entries starting
	// before blocked (or another provider's: the prefix ends the walk).
	k, v := c.Seek(a.key)
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		rest := k[len(prefix):]
		if len(rest) < 8 || len(v) != 8 || string(rest[8:]) == exclude {
			continue
		}
		if int64(binary.BigEndian.Uint64(v)) > start {
			return string(rest[8:])
		}
		return ""
	}
	return ""
}

// scanProviderTime calls fn, in start order, for every booking in the time index
// of providerID whose start lies in [from-MaxBlockedDuration, to): a superset of
// the bookings that can intersect [from, to), with the booking's start and
// blocked_until (from the index value). fn returns false to stop.
func scanProviderTime(tx *bolt.Tx, providerID string, from, to int64, fn func(id string, start, blockedUntil int64) bool) {
	seek := timeKey(providerID, max(from-maxBlockedMs, 0), "")
	scanTimeIndex(tx.Bucket(bucketProviderTime).Cursor(), seek, len(providerID)+1, to, func(id []byte, start, blocked int64) bool {
		return fn(string(id), start, blocked)
	})
}

// scanTimeIndex walks provider_time with c from seek (providerID 0x00
// be64(from)) while keys have seek's first prefixLen bytes (providerID 0x00)
// and start before to, calling fn with each booking id (valid only during
// the call), start and blocked_until. fn returns false to stop.
func scanTimeIndex(c *bolt.Cursor, seek []byte, prefixLen int, to int64, fn func(id []byte, start, blockedUntil int64) bool) {
	prefix := seek[:prefixLen]
	for k, v := c.Seek(seek); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		rest := k[len(prefix):]
		if len(rest) < 8 || len(v) != 8 {
			continue
		}
		start := int64(binary.BigEndian.Uint64(rest))
		if start >= to {
			return
		}
		if !fn(rest[8:], start, int64(binary.BigEndian.Uint64(v))) {
			return
		}
	}
}

// timeKey is id 0x00 be64(ms) suffix: the key layout of provider_time and
// client_bookings. ms is never negative (checkTimes, and created_at is clamped).
func timeKey(id string, ms int64, suffix string) []byte {
	return appendTimeKey(make([]byte, 0, len(id)+1+8+len(suffix)), id, ms, suffix)
}

// timeKey is timeKey(id, ms, suffix) in a's write-key scratch: valid until
// the next key built there, for a Put or Delete (which keep no key).
func (a *applier) timeKey(id string, ms int64, suffix string) []byte {
	a.wkey = appendTimeKey(a.wkey[:0], id, ms, suffix)
	return a.wkey
}

// appendTimeKey appends timeKey(id, ms, suffix) to k.
func appendTimeKey(k []byte, id string, ms int64, suffix string) []byte {
	k = append(k, id...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(max(ms, 0)))
	return append(k, suffix...)
}

// provider returns provider id decoded afresh (the caller may change it or
// hand it out in a result), or nil.
func (a *applier) provider(id string) *bookingv1.Provider {
	return getNew[bookingv1.Provider](a, bucketProviders, id)
}

// providerView returns provider id as stored, or nil, from the FSM's
// providerCache: shared, so read-only (proto.Clone it to change it).
func (a *applier) providerView(id string) *bookingv1.Provider {
	v := a.get(bucketProviders, id)
	if v == nil {
		return nil
	}
	return a.providers.decode(id, v)
}

func (a *applier) booking(id string) *bookingv1.Booking {
	return getNew[bookingv1.Booking](a, bucketBookings, id)
}

func (a *applier) idempotency(key string) *bookingv1.IdempotencyRecord {
	v := a.idem.value(key, a.get)
	if v == nil {
		return nil
	}
	rec := new(bookingv1.IdempotencyRecord)
	if proto.Unmarshal(v, rec) != nil {
		return nil
	}
	return rec
}

// get returns bucket[key] (valid until the transaction ends), nil if absent
// or key is not a possible key. It is (*bolt.Bucket).Get through the
// bucket's cursor of this transaction (our buckets hold no nested bucket),
// which Seek repositions from the root, writes since included.
func (a *applier) get(bucket []byte, key string) []byte {
	if key == "" || len(key) > bolt.MaxKeySize {
		return nil
	}
	a.key = append(a.key[:0], key...)
	if k, v := a.cursor(bucket).Seek(a.key); bytes.Equal(k, a.key) {
		return v
	}
	return nil
}

// getNew decodes bucket[key] into a new T, as getProto does (nil if absent
// or undecodable), allocating nothing when it is absent.
func getNew[T any, P interface {
	*T
	proto.Message
}](a *applier, bucket []byte, key string) P {
	v := a.get(bucket, key)
	if v == nil {
		return nil
	}
	m := P(new(T))
	if proto.Unmarshal(v, m) != nil {
		return nil
	}
	return m
}

// bucket returns the named bucket of a.tx, looked up once per transaction.
// names are the package's bucket variables (compared by identity).
func (a *applier) bucket(name []byte) *bolt.Bucket { return a.named(name).b }

// cursor returns a cursor of the named bucket, one per bucket and
// transaction (bbolt allocates a cursor, and its stack, per Get): callers
// position it with Seek (or First/Last), never go on from where an earlier
// caller left it.
func (a *applier) cursor(name []byte) *bolt.Cursor {
	nb := a.named(name)
	if nb.c == nil {
		nb.c = nb.b.Cursor()
	}
	return nb.c
}

func (a *applier) named(name []byte) *namedBucket {
	for i := range a.buckets {
		if nb := &a.buckets[i]; &nb.name[0] == &name[0] {
			return nb
		}
	}
	if a.buckets == nil {
		a.buckets = make([]namedBucket, 0, len(fsmBuckets))
	}
	b := a.tx.Bucket(name)
	if b != nil && appendOrdered(name) {
		b.FillPercent = appendFillPercent
	}
	a.buckets = append(a.buckets, namedBucket{name: name, b: b})
	return &a.buckets[len(a.buckets)-1]
}

// appendFillPercent is how full bbolt fills a page of an append-ordered
// bucket before it splits it (bbolt's default, 0.5, suits keys inserted
// anywhere: here a split page is never written into again).
const appendFillPercent = 0.9

// appendOrdered reports whether the named bucket's new keys go at the end of
// its key range (or of one of a few ranges): the audit chain (seq), the
// time-ordered indexes, and the records keyed by ids in creation-time order
// (ids.New) — bookings, and audit_object whose objects are such ids.
func appendOrdered(name []byte) bool {
	for _, n := range [][]byte{bucketBookings, bucketAudit, bucketAuditObject, bucketIdempotencyTime, bucketCancelledTime} {
		if &n[0] == &name[0] {
			return true
		}
	}
	return false
}

type namedBucket struct {
	name []byte
	b    *bolt.Bucket
	c    *bolt.Cursor // cursor, made on first use
}

// providerCache keeps decoded providers by id, each with the exact bytes it
// was decoded from: a provider is decoded again only when the bytes stored
// for its id differ from the cached ones. Decoding is a function of the
// bytes alone, so an entry is right whatever happened to fsm.db since it
// was made (a write of the provider, a rolled back transaction, a snapshot
// installed, a compaction): no invalidation, and every replica judges from
// what its fsm.db holds, as without the cache. Entries are shared: never
// change a cached provider. At most providerCacheMax entries holding at
// most providerCacheMaxBytes of records (entries go, any, to make room; a
// record over that is decoded but not kept).
type providerCache struct {
	mu    sync.Mutex
	m     map[string]cachedProvider
	bytes int // sum of len(raw) over m
}

type cachedProvider struct {
	raw []byte
	p   *bookingv1.Provider
}

// providerCacheMax and providerCacheMaxBytes bound the providerCache. A
// decoded provider takes about 7 times its record's bytes on the heap (the
// largest the edge accepts: 92 KB encoded, 640 KB decoded), so a bound on
// entries alone would let 4096 large providers hold gigabytes; 4 MiB of
// records keeps the cache to tens of MiB, and thousands of ordinary
// providers (a few hundred bytes each) still fit.
const (
	providerCacheMax      = 4096
	providerCacheMaxBytes = 4 << 20
)

// decode returns raw (the record of provider id) decoded, nil if it does
// not decode.
func (c *providerCache) decode(id string, raw []byte) *bookingv1.Provider {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if ok && bytes.Equal(e.raw, raw) {
		return e.p
	}
	p := new(bookingv1.Provider)
	if proto.Unmarshal(raw, p) != nil {
		return nil
	}
	if ok {
		delete(c.m, id)
		c.bytes -= len(e.raw)
	}
	if len(raw) > providerCacheMaxBytes {
		return p
	}
	if c.m == nil {
		c.m = make(map[string]cachedProvider)
	}
	for len(c.m) >= providerCacheMax || c.bytes+len(raw) > providerCacheMaxBytes {
		for k, old := range c.m {
			delete(c.m, k)
			c.bytes -= len(old.raw)
			break
		}
	}
	c.m[id] = cachedProvider{raw: bytes.Clone(raw), p: p}
	c.bytes += len(raw)
	return p
}

// getProto reads bucket[key] into m; false if absent (or, defensively,
// undecodable — the FSM only stores what it marshalled itself).
func getProto(tx *bolt.Tx, bucket []byte, key string, m proto.Message) bool {
	if key == "" || len(key) > bolt.MaxKeySize {
		return false
	}
	v := tx.Bucket(bucket).Get([]byte(key))
	if v == nil {
		return false
	}
	return proto.Unmarshal(v, m) == nil
}

// put marshals m into bucket[key]. It returns false if m cannot be marshalled
// (invalid UTF-8 in a string field): the caller answers INVALID and nothing has
// been written yet, because put is the first write of every command.
func (a *applier) put(bucket, key []byte, m proto.Message) bool {
	v, err := marshalOpts.Marshal(m)
	if err != nil {
		return false
	}
	if err := a.bucket(bucket).Put(key, v); err != nil && a.err == nil {
		a.err = err
	}
	if bytes.Equal(bucket, bucketProviders) {
		a.providersWritten = true
	}
	return true
}

func (a *applier) putKey(bucket, key []byte) { a.putValue(bucket, key, []byte{}) }

func (a *applier) putValue(bucket, key, value []byte) {
	if err := a.bucket(bucket).Put(key, value); err != nil && a.err == nil {
		a.err = err
	}
}

// putTimeIndex indexes a non-cancelled booking in provider_time; the value is its
// blocked_until_ms, so overlap checks read the index alone.
func (a *applier) putTimeIndex(b *bookingv1.Booking) {
	a.putValue(bucketProviderTime, a.timeKey(b.ProviderId, b.StartMs, b.Id),
		binary.BigEndian.AppendUint64(nil, uint64(max(b.BlockedUntilMs, 0))))
}

func (a *applier) deleteKey(bucket, key []byte) {
	if err := a.bucket(bucket).Delete(key); err != nil && a.err == nil {
		a.err = err
	}
}

// Snapshot fsyncs fsm.db (when commits skip fsync: fsm.db then durably holds
// at least the snapshot's index before raft may compact its log past it),
// then captures a read transaction; Persist streams it. See snapshot.go.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, ErrClosed
	}
	if f.abandoned.Load() != nil {
		// raft believes the abandoned batch applied; this db does not hold it.
		return nil, fmt.Errorf("%w: fsm abandoned a batch, no snapshot until restart", ErrStorageUnavailable)
	}
	// Raft takes the snapshot as of every log it handed the FSM: what is
	// pending must be in fsm.db first.
	if err := f.flush(); err != nil {
		return nil, fmt.Errorf("storage: snapshot: %w", err)
	}
	if err := f.syncLocked(); err != nil {
		return nil, fmt.Errorf("storage: snapshot: %w", err)
	}
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("storage: begin snapshot: %w", err)
	}
	return &fsmSnapshot{tx: tx}, nil
}

// Restore replaces the whole db with the snapshot stream; raft calls it to
// install a snapshot from the leader (or a user restore). See snapshot.go.
// It refuses (ErrForeignGroupSnapshot, nothing swapped) a snapshot whose
// cluster id is set and differs from this node's; a node with no id yet (a
// joiner, or an fsm.db rebuilt after a power loss) accepts any.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.restore(rc, f.groupID(), f.beforeInstallSwap)
}

// beforeInstallSwap runs in raft's Restore between the snapshot copy being on
// disk and it replacing fsm.db: the snapshot-restore failpoint.
func (f *fsm) beforeInstallSwap() error {
	failpoint(fpSnapshotRestore)
	if h := f.installHook.Load(); h != nil {
		return (*h)()
	}
	return nil
}

// digest hashes every record of the record buckets (not meta).
func (f *fsm) digest() ([]byte, error) {
	var sum []byte
	err := f.view(func(tx *bolt.Tx) error {
		var err error
		sum, err = digestTx(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return sum, nil
}

// digestTx is the SHA-256 behind Store.Digest, over tx: every key and value of
// the record buckets, in bucket order, each length-prefixed. Inspect shares it.
func digestTx(tx *bolt.Tx) ([]byte, error) {
	h := sha256.New()
	var n [4]byte
	write := func(b []byte) {
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, name := range recordBuckets {
		write(name)
		b := tx.Bucket(name)
		if b == nil {
			continue // a file of an older format, read by Inspect: no index yet
		}
		if err := b.ForEach(func(k, v []byte) error {
			write(k)
			write(v)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return h.Sum(nil), nil
}
