package storage

import (
	"context"
	"crypto/tls"
	"encoding/base64"
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
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// File and directory names inside Config.DataDir.
const (
	FSMFile      = "fsm.db"    // the FSM's bbolt file
	RaftFile     = "raft.db"   // Raft's stable store: term, vote, disk and cluster id (LogStore)
	RaftLogDir   = "raft-log"  // Raft's log: segment files (LogStore, segmentlog.go)
	SnapshotsDir = "snapshots" // raft.FileSnapshotStore
)

const (
	snapshotsRetained = 2
	logCacheSize      = 512
	defaultPageLimit  = 50
	maxPageLimit      = 1000
)

// Config configures a Store. Start from DefaultConfig or LocalConfig and set
// NodeID, DataDir and RaftAddr (or Transport).
type Config struct {
	// NodeID is this node's Raft server ID. Required; stable across restarts.
	NodeID string
	// DataDir holds fsm.db, raft.db and snapshots/. Required; created if missing.
	DataDir string
	// RaftAddr is the host:port the TCP transport binds and advertises (port 0
	// picks a free port; the host must not be unspecified, e.g. 0.0.0.0).
	// Required when Transport is nil; ignored otherwise.
	RaftAddr string
	// Bootstrap bootstraps a new group with this node as its only voter when
	// the data dir holds no Raft state. On an existing data dir it does nothing,
	// so it is safe to leave on across restarts.
	Bootstrap bool
	// Transport is the Raft transport; nil means a TCP transport on RaftAddr,
	// owned (and closed) by the Store. A Transport passed in is not closed by
	// Store.Close. Tests may pass a raft.InmemTransport.
	Transport raft.Transport
	// RaftTLS secures the TCP transport on RaftAddr: every accepted connection
	// does a TLS server handshake and every dial a TLS client handshake (ServerName
	// = the dialed host) with it, so it must work in both roles (certificates,
	// ClientCAs with ClientAuth, RootCAs) and decide in VerifyConnection which peers
	// may speak Raft. cluster builds it from the node's certificate (package
	// cluster/pki). nil means plain TCP: storage's own tests only.
	RaftTLS *tls.Config
	// Clock stamps proposed_at_ms on commands that have none. Default time.Now.
	Clock func() time.Time
	// Logger receives the Store's and raft's logs (raft's hclog output is
	// bridged into it). Default slog.Default().
	Logger *slog.Logger

	// HeartbeatTimeout is how long a follower waits without contact from the
	// leader before it starts an election (raft randomizes it to [1x, 2x));
	// the leader heartbeats every HeartbeatTimeout/10. Must be >=
	// LeaderLeaseTimeout and at least 5ms. DefaultConfig: 300ms (heartbeats
	// every 30ms, well above a 5-20ms inter-city round trip); LocalConfig: 200ms.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits for an election to finish
	// before it starts another (randomized to [1x, 2x)). Must be >=
	// HeartbeatTimeout. DefaultConfig: 300ms; LocalConfig: 200ms.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without reaching a
	// quorum; it then steps down. Must be <= HeartbeatTimeout and at least 5ms.
	// Only how fast a cut-off leader stops accepting writes depends on it
	// (reads verify leadership anyway); too short and load spikes (fsync,
	// GC) make a healthy leader step down. DefaultConfig: 200ms; LocalConfig:
	// 100ms (75ms made a leader step down in a 3-node loopback benchmark on
	// 2 cores at 256 proposers).
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is the longest the leader waits before sending an
	// AppendEntries carrying the commit index (also how long an idle
	// follower may lag the commit). At least 1ms. DefaultConfig: 10ms;
	// LocalConfig: 5ms.
	CommitTimeout time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger a new one (checked every SnapshotInterval). DefaultConfig: 8192.
	SnapshotThreshold uint64
	// SnapshotInterval is how often raft checks SnapshotThreshold (jittered).
	// DefaultConfig: 2m.
	SnapshotInterval time.Duration
	// TrailingLogs is how many log entries stay after a snapshot, so a slightly
	// lagging follower catches up from the log. DefaultConfig: 10240.
	TrailingLogs uint64

	// MaxBatch is the most commands packed into one Raft entry (CommandBatch).
	// Default 256.
	MaxBatch int
	// MaxInflight is the most batches proposed and not yet applied; while all
	// are in flight new commands queue, which is what makes batches form under
	// load. Default 4.
	MaxInflight int
	// FSMSyncInterval is how often fsm.db is fsynced: its commits skip
	// fsync (an acknowledged write is durable in the raft log, fdatasynced on every
	// append, and the FSM catches up from it after a crash; see DESIGN.md,
	// "Durability"). fsm.db is also fsynced before every Raft snapshot and at
	// Close. It is also the longest the FSM keeps its write transaction open
	// across batches before committing it (a read commits it sooner; see
	// DESIGN.md, "Deferred commits"). Negative fsyncs and commits every
	// batch. Default 100ms (DefaultFSMSyncInterval).
	FSMSyncInterval time.Duration
	// ApplyTimeout is how long Propose waits for raft to accept (enqueue) a
	// batch (ErrTimeout past it); it also bounds each forwarded proposal, a
	// membership change's enqueue, and a follower's wait for its FSM to reach
	// a read index (a forwarded read-index request gets at most half of
	// LeaderWaitTimeout: readAttemptTimeout). Default 5s (both presets).
	ApplyTimeout time.Duration

	// Forwarder carries a proposal or a read-index request to the group's
	// leader when this node is not the leader (see Forwarder, SetForwarder).
	// nil: a follower returns ErrNotLeader, as a single group without a
	// cluster layer does.
	Forwarder Forwarder
	// LeaderWaitTimeout is how long Propose and LinearizableRead keep trying
	// while no leader is known or the leader changes, measured from the call;
	// then ErrNotLeader (503 at the edge). Only used with a Forwarder.
	// Default 2s (both presets): about twice the worst election seen with
	// DefaultConfig's timeouts.
	LeaderWaitTimeout time.Duration
	// MaxVoters is how many voters AddServer lets the group have; servers
	// added beyond it join as non-voters. Default 5.
	MaxVoters int
	// CloseTransferTimeout bounds the leadership transfer Close attempts when
	// this node leads and another voter exists, so a clean shutdown does not
	// cost the group an election. Negative disables it. Default 1s
	// (DefaultConfig), 500ms (LocalConfig).
	CloseTransferTimeout time.Duration

	// IdempotencyTTL is how long an idempotency record is kept after the
	// command that wrote it: a request repeated with the same key within it
	// gets the first answer, after it (and the next compaction) it takes
	// effect anew. Age is measured on Raft entry times (proposed_at_ms), not
	// a replica's clock. At least 1s. Default 24h (DefaultIdempotencyTTL).
	IdempotencyTTL time.Duration
	// CancelledRetention is how long a cancelled booking is kept after its
	// cancellation (then GET answers not found and the client's list drops
	// it). At least 1s. Default 720h = 30 days (DefaultCancelledRetention).
	CancelledRetention time.Duration
	// CompactInterval is how often the leader proposes a Compact command
	// carrying IdempotencyTTL and CancelledRetention (more at once while one
	// reports more due). Negative disables compaction: records are kept
	// forever. Default 1m.
	CompactInterval time.Duration

	// ShredWithin bounds how long after this node applies an EraseHealthData
	// it starts a shred (shred.go): a snapshot with the Raft log truncated to
	// it, older snapshots removed, fsm.db and raft.db rewritten without free
	// pages, so no byte of the erased client's wrapped key or sealed notes is
	// left in the data dir. Must be positive. Default 1m (DefaultConfig), 3s
	// (LocalConfig).
	ShredWithin time.Duration
	// Jurisdiction is the jurisdiction whose records this group holds
	// ("ar"...). A consent counts for a booking only if it names it, and
	// GrantConsent refuses a consent naming another. "" checks no
	// jurisdiction. It decides how commands apply, so every node of a group
	// must have the same.
	Jurisdiction string
	// OnErase, when set, is called with the client's id and the ids of
	// every data key its Erasure names (all its erasures so far; none for a
	// client erased before any key) after the transaction that applied an
	// EraseHealthData committed (on every replica, also when the erasure
	// arrives in an installed snapshot), and at Open for every erasure
	// recorded, so a crash between the commit and the call loses nothing. It
	// may thus be called more than once for a key and must be idempotent. It
	// runs on the FSM's goroutine: keep it short (cluster appends the
	// (client, key id) pairs to the KEK's erasure ledger).
	OnErase func(clientID string, keyIDs []string)
}

// DefaultConfig returns the preset for production nodes on a LAN of cities
// (tens of milliseconds between nodes). Set NodeID, DataDir and RaftAddr.
func DefaultConfig() Config {
	return Config{
		Bootstrap:          false,
		Clock:              time.Now,
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 200 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotInterval:   2 * time.Minute,
		TrailingLogs:       10240,
		MaxBatch:           256,
		MaxInflight:        4,
		ApplyTimeout:       5 * time.Second,
		FSMSyncInterval:    DefaultFSMSyncInterval,

		LeaderWaitTimeout:    2 * time.Second,
		MaxVoters:            5,
		CloseTransferTimeout: time.Second,

		IdempotencyTTL:     DefaultIdempotencyTTL,
		CancelledRetention: DefaultCancelledRetention,
		CompactInterval:    DefaultCompactInterval,

		ShredWithin: DefaultShredWithin,
	}
}

// LocalConfig returns the preset for tests and simulations on loopback:
// heartbeat and election 200ms, lease 100ms, commit 5ms, snapshots every 1024
// entries checked every 5s, 512 trailing logs, leader wait 2s, close
// transfer 500ms.
func LocalConfig() Config {
	c := DefaultConfig()
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CloseTransferTimeout = 500 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 1024
	c.SnapshotInterval = 5 * time.Second
	c.TrailingLogs = 512
	c.ShredWithin = 3 * time.Second
	return c
}

// Validate reports the first problem with c, or nil.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.NodeID == "" {
		bad("NodeID is required")
	}
	if c.DataDir == "" {
		bad("DataDir is required")
	}
	if c.Transport == nil && c.RaftAddr == "" {
		bad("RaftAddr is required when Transport is nil")
	}
	const minTimeout = 5 * time.Millisecond
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"HeartbeatTimeout", c.HeartbeatTimeout}, {"ElectionTimeout", c.ElectionTimeout}, {"LeaderLeaseTimeout", c.LeaderLeaseTimeout}, {"SnapshotInterval", c.SnapshotInterval}} {
		if d.v < minTimeout {
			bad("%s (%s) must be at least %s", d.name, d.v, minTimeout)
		}
	}
	if c.CommitTimeout < time.Millisecond {
		bad("CommitTimeout (%s) must be at least 1ms", c.CommitTimeout)
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		bad("LeaderLeaseTimeout (%s) must not exceed HeartbeatTimeout (%s)", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		bad("ElectionTimeout (%s) must not be less than HeartbeatTimeout (%s)", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.SnapshotThreshold == 0 {
		bad("SnapshotThreshold must be positive")
	}
	if c.MaxBatch <= 0 {
		bad("MaxBatch (%d) must be positive", c.MaxBatch)
	}
	if c.MaxInflight <= 0 {
		bad("MaxInflight (%d) must be positive", c.MaxInflight)
	}
	if c.ApplyTimeout <= 0 {
		bad("ApplyTimeout (%s) must be positive", c.ApplyTimeout)
	}
	if c.LeaderWaitTimeout <= 0 {
		bad("LeaderWaitTimeout (%s) must be positive", c.LeaderWaitTimeout)
	}
	if c.MaxVoters <= 0 {
		bad("MaxVoters (%d) must be positive", c.MaxVoters)
	}
	errs = append(errs, c.validateRetention()...)
	errs = append(errs, c.validateShred()...)
	if len(errs) > 0 {
		return fmt.Errorf("storage: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// zeroToDefault sets *v to def when it is the zero value.
func zeroToDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// raftConfig derives raft's configuration. MaxAppendEntries (entries per
// AppendEntries RPC, and the apply channel's buffer with BatchApplyCh) is
// sized to MaxBatch, within raft's [64, 1024].
func (c Config) raftConfig(logger *slog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.SnapshotInterval = c.SnapshotInterval
	rc.TrailingLogs = c.TrailingLogs
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = min(max(c.MaxBatch, 64), 1024)
	rc.NoSnapshotRestoreOnStart = true
	rc.Logger = newHclogAdapter(logger, "raft")
	return rc
}

// Store is one node's replica of the booking store: a Raft group member whose
// FSM keeps the records in bbolt. All methods are safe for concurrent use.
type Store struct {
	cfg    Config
	logger *slog.Logger

	fsm   *fsm
	logs  *LogStore
	snaps *raft.FileSnapshotStore
	trans raft.Transport
	owned *raft.NetworkTransport // the TCP transport we created, or nil
	guard *voteGuard             // wraps trans: raft's transport
	raft  *raft.Raft
	b     *batcher

	fwd       atomic.Pointer[forwarderBox]
	subs      leaderSubs
	memberMu  sync.Mutex // serializes AddServer and RemoveServer
	lcMu      sync.Mutex
	lcCh      chan struct{} // closed and replaced at every leader change
	observer  *raft.Observer
	done      chan struct{} // closed by Close after raft shut down
	watchDone chan struct{}

	readyTarget atomic.Uint64 // FSM-visible commit index latched when a leader was first known
	readyAsking atomic.Bool   // a follower is asking the leader for readyTarget
	closed      atomic.Bool
	closeOnce   sync.Once
	closeErr    error

	stopMaintain context.CancelFunc // ends maintain (maintain.go)
	maintainDone chan struct{}
	// raftStop: stopRaft runs once. halted: haltRaft stopped raft because
	// the log broke (maintain.go).
	raftStop sync.Once
	halted   atomic.Bool

	// foreignRefused counts Raft connections refused as another group's
	// (groupcheck.go).
	foreignRefused prometheus.Counter
	// stableGroup is the cluster id as raft.db's stable store holds it
	// (groupid.go); "" until the node knows its group.
	stableGroup atomic.Pointer[string]

	shredMu   sync.Mutex         // one shred at a time (shred.go)
	stopShred context.CancelFunc // ends shredLoop
	shredDone chan struct{}
}

// Open opens (or creates) the store in cfg.DataDir and starts its Raft node.
// Zero MaxBatch, MaxInflight, ApplyTimeout, FSMSyncInterval,
// LeaderWaitTimeout, MaxVoters, CloseTransferTimeout, IdempotencyTTL,
// CancelledRetention, CompactInterval, ShredWithin, Clock and Logger take
// DefaultConfig's values.
// With cfg.Bootstrap and no Raft state on disk it bootstraps a single-voter
// group; on an existing data dir it resumes. Before raft starts, an FSM
// behind the latest snapshot is brought up to it from the log or by restoring
// the snapshot (see catchUpFSM); Open fails if neither is possible. Open does
// not wait for a leader: use WaitReady. A data dir restored from a backup of
// another jurisdiction than cfg.Jurisdiction is refused (ErrWrongJurisdiction).
func Open(cfg Config) (_ *Store, err error) {
	def := DefaultConfig()
	zeroToDefault(&cfg.MaxBatch, def.MaxBatch)
	zeroToDefault(&cfg.MaxInflight, def.MaxInflight)
	zeroToDefault(&cfg.ApplyTimeout, def.ApplyTimeout)
	zeroToDefault(&cfg.FSMSyncInterval, def.FSMSyncInterval)
	zeroToDefault(&cfg.LeaderWaitTimeout, def.LeaderWaitTimeout)
	zeroToDefault(&cfg.MaxVoters, def.MaxVoters)
	zeroToDefault(&cfg.CloseTransferTimeout, def.CloseTransferTimeout)
	zeroToDefault(&cfg.IdempotencyTTL, def.IdempotencyTTL)
	zeroToDefault(&cfg.CancelledRetention, def.CancelledRetention)
	zeroToDefault(&cfg.CompactInterval, def.CompactInterval)
	zeroToDefault(&cfg.ShredWithin, def.ShredWithin)
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		cfg:       cfg,
		logger:    cfg.Logger.With("raft_server", cfg.NodeID), // the caller names the component and node
		lcCh:      make(chan struct{}),
		done:      make(chan struct{}),
		watchDone: make(chan struct{}),

		foreignRefused: newForeignGroupCounter(),
	}
	s.SetForwarder(cfg.Forwarder)
	defer func() {
		if err != nil {
			s.closeFiles()
		}
	}()
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, SnapshotsDir), 0o700); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	removeCompactLeftovers(cfg.DataDir, s.logger)
	if s.fsm, err = openFSM(filepath.Join(cfg.DataDir, FSMFile), s.logger); err != nil {
		return nil, err
	}
	s.fsm.jurisdiction, s.fsm.onErase = cfg.Jurisdiction, cfg.OnErase
	if s.logs, err = openLogStore(filepath.Join(cfg.DataDir, RaftFile), s.logger); err != nil {
		return nil, err
	}
	// The FSM applies nothing its log does not hold on disk (a leader's
	// appends fdatasync in the background: segmentlog_async.go).
	s.fsm.waitDurable = s.logs.log.waitDurable
	hl := newHclogAdapter(s.logger, "raft")
	if s.snaps, err = raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.DataDir, SnapshotsDir), snapshotsRetained, hl.Named("snapshots")); err != nil {
		return nil, fmt.Errorf("storage: snapshot store: %w", err)
	}
	// Before raft starts: with NoSnapshotRestoreOnStart it would count the
	// latest snapshot as applied whether or not the FSM reflects it.
	if err := catchUpFSM(s.fsm, s.logs, s.snaps, s.logger); err != nil {
		return nil, err
	}
	if err := s.keepGroupID(); err != nil {
		return nil, err
	}
	// A dir restored from a backup holds that backup's jurisdiction's
	// records (also when they came in a snapshot, as on a joiner): never
	// serve them from a node of another, nor replay their erasures into its
	// KEK's ledger.
	if from, ok := s.RestoredFrom(); ok && from.Jurisdiction != cfg.Jurisdiction {
		return nil, fmt.Errorf("%w: %s was restored from a backup of jurisdiction %q (taken %s by %s); this node is in %q",
			ErrWrongJurisdiction, cfg.DataDir, from.Jurisdiction, from.TakenAt.UTC().Format(time.RFC3339), from.Node, cfg.Jurisdiction)
	}
	s.fsm.replayErasures()
	s.trans = cfg.Transport
	if s.trans == nil {
		gc := &groupCheck{local: s.localGroupID, refused: s.foreignRefused, logger: s.logger}
		nt, err := newTCPTransport(cfg.RaftAddr, cfg.RaftTLS, gc, hl.Named("transport"))
		if err != nil {
			return nil, fmt.Errorf("storage: raft transport on %s: %w", cfg.RaftAddr, err)
		}
		s.owned, s.trans = nt, nt
	}
	// A leader's log appends fdatasync in the background: the commit index it
	// sends is capped at what its log holds on disk, and an AppendEntries
	// from another leader fences them (segmentlog_async.go).
	s.guard = newVoteGuard(&commitCap{Transport: s.trans, durable: s.logs.DurableIndex}, s.logs.log.fence)
	rc := cfg.raftConfig(s.logger)
	notify := make(chan bool, 16)
	rc.NotifyCh = notify
	restored := restoredPending(cfg.DataDir)
	if restored {
		if err := s.seedRestoredGroup(rc); err != nil {
			return nil, err
		}
	}
	if cfg.Bootstrap || restored {
		has, err := raft.HasExistingState(s.logs, s.logs, s.snaps)
		if err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter, ID: rc.LocalID, Address: s.trans.LocalAddr(),
			}}}
			if err := raft.BootstrapCluster(rc, s.logs, s.logs, s.snaps, s.trans, conf); err != nil {
				return nil, fmt.Errorf("storage: bootstrap: %w", err)
			}
			s.logger.Info("bootstrapped new raft group", "addr", s.trans.LocalAddr(), "restored_from_backup", restored)
		}
		if restored {
			// Raft holds the new group's configuration (now or since an
			// earlier Open that crashed before this): the marker has done
			// its work.
			if err := os.Remove(filepath.Join(cfg.DataDir, RestoredMarker)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("storage: remove %s: %w", RestoredMarker, err)
			}
			_ = durable.SyncDir(cfg.DataDir)
		}
	}
	// From here on the FSM commits without fsync (fsmsync.go): catch-up and
	// a restored backup's seeding above were fsynced.
	s.fsm.startSyncing(cfg.FSMSyncInterval)
	cache, err := raft.NewLogCache(logCacheSize, s.logs)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if s.raft, err = raft.NewRaft(rc, s.fsm, cache, s.logs, s.snaps, s.guard); err != nil {
		return nil, fmt.Errorf("storage: start raft: %w", err)
	}
	self := rc.LocalID
	mayVote := func() bool { return hasVote(s.raft.GetConfiguration().Configuration(), self) }
	s.guard.mayVote.Store(&mayVote)
	leading := func() bool { return s.raft.State() == raft.Leader }
	s.logs.leading.Store(&leading)
	obs := make(chan raft.Observation, 16)
	s.observer = raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(s.observer)
	go s.watchRaft(notify, obs)
	s.b = newBatcher(s.raft, cfg.MaxBatch, cfg.MaxInflight, cfg.ApplyTimeout)
	s.b.logFault = s.logs.WriteFault
	mctx, stop := context.WithCancel(context.Background())
	s.stopMaintain, s.maintainDone = stop, make(chan struct{})
	go s.maintain(mctx)
	sctx, stopShred := context.WithCancel(context.Background())
	s.stopShred, s.shredDone = stopShred, make(chan struct{})
	go s.shredLoop(sctx)
	s.logger.Info("store opened", "data_dir", cfg.DataDir, "raft_addr", s.trans.LocalAddr(), "applied_index", s.fsm.applied.Load())
	return s, nil
}

// Close first hands leadership to another voter if this node leads and one
// exists (bounded by CloseTransferTimeout; proposals refused meanwhile are
// retried at the new leader by Propose with a Forwarder), then stops the
// batcher (pending Propose calls get ErrClosed), shuts Raft down, closes the
// transport if the Store created it, closes both bbolt files and every
// LeaderChanges channel. Safe to call more than once; later calls return the
// first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopMaintain()
		<-s.maintainDone
		s.stopShred()
		<-s.shredDone
		s.transferOnClose()
		s.closed.Store(true)
		s.b.close()
		var errs []error
		if err := s.stopRaft(); err != nil {
			errs = append(errs, err)
		}
		<-s.b.stopped
		s.raft.DeregisterObserver(s.observer)
		close(s.done)
		<-s.watchDone
		s.subs.close()
		errs = append(errs, s.closeFiles())
		s.closeErr = errors.Join(errs...)
		s.logger.Info("store closed")
	})
	return s.closeErr
}

// stopRaft shuts raft down, once: Close calls it, and haltRaft when the log
// broke. A FSM retrying a failed write blocks raft's FSM goroutine, which
// Shutdown waits for, so it gives up first; then the batcher stops waiting
// for futures raft will not answer (raftDown). The shutdown's error goes to
// the first caller only.
func (s *Store) stopRaft() (err error) {
	s.raftStop.Do(func() {
		s.fsm.stopRetrying()
		if serr := s.raft.Shutdown().Error(); serr != nil {
			err = fmt.Errorf("raft shutdown: %w", serr)
		}
		s.b.raftDown()
	})
	return err
}

func (s *Store) closeFiles() error {
	var errs []error
	if s.guard != nil {
		s.guard.stopOnce.Do(func() { close(s.guard.stop) })
	}
	if s.owned != nil {
		if err := s.owned.Close(); err != nil {
			errs = append(errs, fmt.Errorf("transport: %w", err))
		}
	}
	if s.logs != nil {
		if err := s.logs.Close(); err != nil {
			errs = append(errs, fmt.Errorf("log store: %w", err))
		}
	}
	if s.fsm != nil {
		if err := s.fsm.close(); err != nil {
			errs = append(errs, fmt.Errorf("fsm: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Raft returns the underlying raft node, for tests and diagnostics
// (Snapshot, BootstrapCluster on a store opened without Bootstrap). Prefer
// AddServer, RemoveServer and TransferLeadership for membership changes. Do
// not call Apply on it directly: write through Propose.
func (s *Store) Raft() *raft.Raft { return s.raft }

func (s *Store) notLeader() error {
	_, id := s.raft.LeaderWithID()
	if id == "" {
		return fmt.Errorf("%w: no leader known", ErrNotLeader)
	}
	return fmt.Errorf("%w: leader is %s", ErrNotLeader, id)
}

// Provider returns the provider with id from the local replica; ErrNotFound.
func (s *Store) Provider(ctx context.Context, id string) (*bookingv1.Provider, error) {
	p := new(bookingv1.Provider)
	if err := s.get(ctx, bucketProviders, id, p); err != nil {
		return nil, err
	}
	return p, nil
}

// ProvidersVersion returns a number that changes whenever the provider
// records this replica serves (ListProviders, Provider) may have changed: a
// reader that gets v, reads, and gets v again read the records of v. Two
// different sets of records never share a version within a process.
// ErrClosed once the store is closed or its fsm.db could not be reopened
// (ListProviders's only failures that are not about its arguments).
func (s *Store) ProvidersVersion() (uint64, error) {
	if err := s.readable(context.Background()); err != nil {
		return 0, err
	}
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	if s.fsm.db == nil {
		return 0, ErrClosed
	}
	return s.fsm.providersVer.Load(), nil
}

// Booking returns the booking with id from the local replica; ErrNotFound.
func (s *Store) Booking(ctx context.Context, id string) (*bookingv1.Booking, error) {
	b := new(bookingv1.Booking)
	if err := s.get(ctx, bucketBookings, id, b); err != nil {
		return nil, err
	}
	return b, nil
}

// Idempotency returns the record of an idempotency key; ErrNotFound.
func (s *Store) Idempotency(ctx context.Context, key string) (*bookingv1.IdempotencyRecord, error) {
	// The usual answer, a key never used, needs no transaction (which would
	// wait on an apply in progress).
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	if absent, err := s.fsm.idemAbsent(key); err != nil || absent {
		if err == nil {
			err = &notFoundError{bucket: bucketIdempotency, key: key}
		}
		return nil, err
	}
	r := new(bookingv1.IdempotencyRecord)
	err := s.getWith(ctx, bucketIdempotency, key, r, func(get func(bucket []byte, key string) []byte) []byte {
		return s.fsm.idem.value(key, get)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (s *Store) get(ctx context.Context, bucket []byte, key string, m proto.Message) error {
	return s.getWith(ctx, bucket, key, m, func(get func(bucket []byte, key string) []byte) []byte {
		return get(bucket, key)
	})
}

// getWith decodes into m the value find reads with get (a lookup in the
// transaction peek runs: nil for an absent or impossible key); an error
// naming bucket and key wraps ErrNotFound when find reads none.
func (s *Store) getWith(ctx context.Context, bucket []byte, key string, m proto.Message,
	find func(get func(bucket []byte, key string) []byte) []byte) error {
	if err := s.readable(ctx); err != nil {
		return err
	}
	var found bool
	err := s.fsm.peek(func(tx *bolt.Tx) error {
		v := find(func(bucket []byte, key string) []byte {
			if key == "" || len(key) > bolt.MaxKeySize {
				return nil
			}
			return tx.Bucket(bucket).Get([]byte(key))
		})
		if v == nil {
			return nil
		}
		found = true
		return proto.Unmarshal(v, m)
	})
	if err != nil {
		return err
	}
	if !found {
		return &notFoundError{bucket: bucket, key: key}
	}
	return nil
}

// notFoundError is get's ErrNotFound, naming what was missing. Its text is
// made only when asked for: the edge asks for an idempotency record on every
// keyed write, and a miss is the usual answer (fmt.Errorf there was 1.4 % of a
// node's CPU at 100 clients).
type notFoundError struct {
	bucket []byte
	key    string
}

func (e *notFoundError) Error() string { return fmt.Sprintf("%v: %s %q", ErrNotFound, e.bucket, e.key) }
func (e *notFoundError) Unwrap() error { return ErrNotFound }

func (s *Store) readable(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// ProviderFilter selects providers for ListProviders. Empty City or Vertical
// match any. After is a cursor: the id of the last provider of the previous
// page (results are ordered by id). Limit <= 0 means 50; it is capped at 1000.
type ProviderFilter struct {
	City, Vertical, After string
	Limit                 int
}

func pageLimit(n int) int {
	if n <= 0 {
		return defaultPageLimit
	}
	return min(n, maxPageLimit)
}

// ListProviders returns providers matching f, ordered by id, and the cursor of
// the next page ("" when there is none).
func (s *Store) ListProviders(ctx context.Context, f ProviderFilter) (items []*bookingv1.Provider, next string, err error) {
	if err := s.readable(ctx); err != nil {
		return nil, "", err
	}
	limit := pageLimit(f.Limit)
	err = s.fsm.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketProviders).Cursor()
		var k, v []byte
		if f.After == "" {
			k, v = c.First()
		} else {
			k, v = c.Seek([]byte(f.After))
			if k != nil && string(k) == f.After {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			p := new(bookingv1.Provider)
			if err := proto.Unmarshal(v, p); err != nil {
				return fmt.Errorf("storage: provider %q: %w", k, err)
			}
			if (f.City != "" && p.City != f.City) || (f.Vertical != "" && p.Vertical != f.Vertical) {
				continue
			}
			if len(items) == limit {
				next = items[len(items)-1].Id
				return nil
			}
			items = append(items, p)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return items, next, nil
}

// Page asks for one page of a listing. After is the opaque cursor returned as
// next by the previous page ("" for the first). Limit <= 0 means 50; it is
// capped at 1000.
type Page struct {
	After string
	Limit int
}

// ClientBookings returns the client's bookings (cancelled ones included),
// newest created first, and the cursor of the next page ("" when none).
// A malformed cursor is ErrInvalid.
func (s *Store) ClientBookings(ctx context.Context, clientID string, p Page) ([]*bookingv1.Booking, string, error) {
	if err := s.readable(ctx); err != nil {
		return nil, "", err
	}
	limit := pageLimit(p.Limit)
	prefix := append([]byte(clientID), 0)
	var start []byte // exclusive upper bound of the scan
	if p.After != "" {
		raw, err := base64.RawURLEncoding.DecodeString(p.After)
		if err != nil || len(raw) < 8 {
			return nil, "", fmt.Errorf("%w: bad cursor", ErrInvalid)
		}
		start = append(append([]byte{}, prefix...), raw...)
	} else {
		start = append([]byte(clientID), 1)
	}
	var items []*bookingv1.Booking
	var next string
	// One page (at most limit+1 keys of one client): brief enough to read in
	// the FSM's open transaction, so the linearizable read before it costs no
	// commit (peek).
	err := s.fsm.peek(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketClientBookings).Cursor()
		k, _ := c.Seek(start)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for ; k != nil && len(k) >= len(prefix)+8 && string(k[:len(prefix)]) == string(prefix); k, _ = c.Prev() {
			if len(items) == limit {
				last := items[len(items)-1]
				next = clientCursor(last.CreatedAtMs, last.Id)
				return nil
			}
			id := string(k[len(prefix)+8:])
			b := new(bookingv1.Booking)
			if getProto(tx, bucketBookings, id, b) {
				items = append(items, b)
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return items, next, nil
}

func clientCursor(createdMs int64, id string) string {
	if createdMs < 0 {
		createdMs = 0
	}
	raw := binary.BigEndian.AppendUint64(nil, uint64(createdMs))
	return base64.RawURLEncoding.EncodeToString(append(raw, id...))
}

// ProviderBookings returns the provider's non-cancelled bookings whose
// [start, blocked_until) intersects [from, to), ordered by start, read from
// the time index.
func (s *Store) ProviderBookings(ctx context.Context, providerID string, from, to time.Time) ([]*bookingv1.Booking, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	fromMs, toMs := from.UnixMilli(), to.UnixMilli()
	var out []*bookingv1.Booking
	err := s.fsm.view(func(tx *bolt.Tx) error {
		scanProviderTime(tx, providerID, fromMs, toMs, func(id string, start, blocked int64) bool {
			if blocked <= fromMs || start >= toMs {
				return true
			}
			b := new(bookingv1.Booking)
			if getProto(tx, bucketBookings, id, b) && b.Status != bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
				out = append(out, b)
			}
			return true
		})
		return nil
	})
	return out, err
}

func (s *Store) awaitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return mapRaftError(err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fsmTarget returns the highest index <= commit that the FSM will see: raft
// does not hand no-op and barrier entries to the FSM, so the FSM's applied
// index may stop short of the commit index. Entries missing from the log were
// compacted into a snapshot the FSM already reflects: Open's catchUpFSM makes
// the FSM reach the latest snapshot before raft starts, and raft compacts
// after an installed snapshot is restored, never before.
func (s *Store) fsmTarget(commit uint64) uint64 {
	applied := s.fsm.applied.Load()
	for i := commit; i > applied; i-- {
		var l raft.Log
		if err := s.logs.GetLog(i, &l); err != nil {
			return 0
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i
		}
	}
	return 0
}

// waitApplied waits until the FSM has applied index idx. It does not commit
// the FSM's open transaction: the reads that follow see what it holds (peek
// reads in it; view commits it first), so a linearizable read costs no
// commit (fsmcommit.go). ErrStorageUnavailable while the FSM cannot write.
func (s *Store) waitApplied(ctx context.Context, idx uint64) error {
	for {
		ch := s.fsm.changed()
		if s.fsm.applied.Load() >= idx {
			return nil
		}
		if err := s.fsm.writeFault(); err != nil {
			return err // the FSM cannot get there until the disk recovers
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if s.closed.Load() {
			return ErrClosed
		}
	}
}

// FSMCommits counts the FSM's bbolt commits since Open (Stats.FSMCommits),
// without the raft queries Stats makes: the metric reads it at every scrape.
func (s *Store) FSMCommits() uint64 { return s.fsm.commits.Load() }

// Stats is a point-in-time view of the node for operators.
type Stats struct {
	State        string // Follower, Candidate, Leader or Shutdown
	Leader       string // leader's server ID, "" if unknown (same as LeaderID)
	AppliedIndex uint64 // last log index applied to the FSM (fsm.db may lack the last ones for up to FSMSyncInterval: deferred commits)
	CommitIndex  uint64
	LastLogIndex uint64
	// LogDurableIndex is the last index this node's Raft log holds on disk
	// (fdatasynced). A leader's appends return before their fdatasync, so on
	// the leader it trails LastLogIndex while one runs, and no entry of the
	// log is applied before it covers it; a lasting gap means a slow or
	// failing disk. A log emptied by compaction keeps its durable index, and
	// a restart starts it at the log's last index (0 if empty), so it may be
	// below AppliedIndex when the FSM holds more than the log.
	LogDurableIndex uint64
	LastBatchSize   int // commands in the last CommandBatch this node proposed
	// FSMCommits counts the FSM's bbolt commits since Open: one per
	// FSMSyncInterval under steady writes, more when a read transaction
	// (view), a snapshot or a size bound asked for one (fsmcommit.go).
	FSMCommits uint64

	Term     uint64 // current Raft term
	LeaderID string // leader's server ID, "" if unknown
	// Voters and NonVoters count the servers of the latest configuration.
	Voters, NonVoters int
	// LastContact is the time since this node last heard from a leader, as
	// raft.Stats "last_contact" reports it: 0 on the leader, -1 if never.
	LastContact time.Duration
	Servers     []Server // latest configuration, ordered by ID
}

// Stats returns the node's current Stats.
func (s *Store) Stats() Stats {
	_, id := s.raft.LeaderWithID()
	st := Stats{
		State:           s.raft.State().String(),
		Leader:          string(id),
		AppliedIndex:    s.fsm.applied.Load(),
		CommitIndex:     s.raft.CommitIndex(),
		LastLogIndex:    s.raft.LastIndex(),
		LogDurableIndex: s.logs.DurableIndex(),
		LastBatchSize:   int(s.b.lastBatchSize.Load()),
		FSMCommits:      s.FSMCommits(),
		Term:            s.raft.CurrentTerm(),
		LeaderID:        string(id),
		LastContact:     -1,
	}
	if st.State == raft.Leader.String() {
		st.LastContact = 0
	} else if last := s.raft.LastContact(); !last.IsZero() {
		st.LastContact = time.Since(last)
	}
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		st.Servers = toServers(f.Configuration().Servers)
		st.Voters, st.NonVoters = countVoters(st.Servers)
	}
	return st
}

// Ready returns nil once a leader is known and the FSM has applied every
// entry committed when the leader first became known after Open; otherwise an
// error saying why not (ErrClosed after Close; one wrapping
// ErrStorageUnavailable while WriteFault reports a failing disk). On the leader that is its
// commit index. A follower with a Forwarder asks the leader for it (a read
// index: the leader's commit, as the FSM sees it), because the commit index a
// follower learns is at most its own last log index: a follower far behind
// (a new or wiped server catching up) would otherwise report ready long before
// it has caught up. Without a Forwarder a follower uses its own commit index.
// An FSM behind the latest snapshot cannot pass: Open brings it up to the
// snapshot first (catchUpFSM).
func (s *Store) Ready() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.WriteFault(); err != nil {
		return fmt.Errorf("storage: not ready: %w", err)
	}
	addr, id := s.raft.LeaderWithID()
	if id == "" {
		return fmt.Errorf("storage: not ready: no leader known (state %s)", s.raft.State())
	}
	target := s.readyTarget.Load()
	if target == 0 {
		fwd := s.forwarder()
		if s.IsLeader() || fwd == nil {
			commit := s.raft.CommitIndex()
			if commit == 0 {
				return fmt.Errorf("storage: not ready: leader %s known, commit index not yet learned", id)
			}
			s.readyTarget.CompareAndSwap(0, s.fsmTarget(commit))
		} else {
			s.learnReadyTarget(fwd, id, addr)
			return fmt.Errorf("storage: not ready: asking leader %s for its commit index", id)
		}
		target = s.readyTarget.Load()
	}
	if applied := s.fsm.applied.Load(); applied < target {
		return fmt.Errorf("storage: not ready: applied index %d behind %d", applied, target)
	}
	return nil
}

// learnReadyTarget asks the leader for its read index, once at a time, and
// latches it as the index Ready waits for.
func (s *Store) learnReadyTarget(fwd Forwarder, leader raft.ServerID, addr raft.ServerAddress) {
	if !s.readyAsking.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.readyAsking.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
		defer cancel()
		idx, err := fwd.ReadIndex(ctx, leader, addr)
		if err != nil {
			s.logger.Debug("ready: read index from leader", "leader", leader, "err", err)
			return
		}
		s.readyTarget.CompareAndSwap(0, max(idx, 1))
	}()
}

// WaitReady polls Ready until it returns nil or ctx ends; then it returns
// ctx's error joined with Ready's last reason.
func (s *Store) WaitReady(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		err := s.Ready()
		if err == nil || errors.Is(err, ErrClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Digest returns a SHA-256 over every FSM record (all buckets but meta):
// replicas holding equal state return equal digests.
func (s *Store) Digest() ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return s.fsm.digest()
}
