package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// Defaults of the retention settings (see Config).
const (
	// DefaultIdempotencyTTL is how long an idempotency record is kept: a
	// client retrying a request within a day gets the first answer.
	DefaultIdempotencyTTL = 24 * time.Hour
	// DefaultCancelledRetention is how long a cancelled booking stays
	// readable (GET, the client's list) after its cancellation: 30 days, so a
	// client or operator looking back over a month still sees it, and well
	// above DefaultIdempotencyTTL, so a replayed request never finds its
	// booking removed while its idempotency record lives.
	DefaultCancelledRetention = 30 * 24 * time.Hour
	// DefaultCompactInterval is how often the leader proposes a Compact.
	DefaultCompactInterval = time.Minute

	// maintainTick is the period of the maintenance loop (fault probe,
	// leadership hand-off, compaction schedule).
	maintainTick = time.Second
	// faultTransferEvery spaces the leadership transfers a degraded leader
	// attempts.
	faultTransferEvery = 5 * time.Second
	// probeBytes is the size of the write probe (probeDisk).
	probeBytes = 4 << 20
	// maxCompactRounds bounds the back-to-back Compacts of one run (each
	// removes up to DefaultCompactRemovals per kind); the rest waits for the
	// next run.
	maxCompactRounds = 50
)

// WriteFault returns nil while this node can write, else an error wrapping
// ErrStorageUnavailable that says what failed and since when: the FSM cannot
// apply committed entries to fsm.db (it retries them), or the last write to
// raft.db failed. While it is non-nil, Propose and ProposeLocal refuse at
// once, LinearizableRead on this node fails, Ready reports it, and local
// reads keep working. It clears by itself when a write succeeds again,
// except after a failed background fdatasync of the leader's log
// (ErrLogBroken) or a batch the FSM gave up on (its error wraps the cause,
// ErrLogBroken when the log could not vouch for the batch): those last until
// the node restarts.
func (s *Store) WriteFault() error {
	if err := s.fsm.writeFault(); err != nil {
		return err
	}
	return s.logs.WriteFault()
}

// Compact proposes one Compact command with this node's IdempotencyTTL and
// CancelledRetention (leader only, like ProposeLocal) and returns how many
// records it removed and whether more were due. The cutoffs are computed by
// every replica from the command's proposed_at_ms (Config.Clock on this node).
func (s *Store) Compact(ctx context.Context) (removed uint64, more bool, err error) {
	cmd := &bookingv1.Command{Op: &bookingv1.Command_Compact{Compact: &bookingv1.Compact{
		IdempotencyTtlMs:     s.cfg.IdempotencyTTL.Milliseconds(),
		CancelledRetentionMs: s.cfg.CancelledRetention.Milliseconds(),
		MaxRemovals:          DefaultCompactRemovals,
	}}}
	res, err := s.ProposeLocal(ctx, cmd)
	if err != nil {
		return 0, false, err
	}
	return res.GetRemoved(), res.GetMore(), nil
}

// maintain runs until Close: every maintainTick, once the raft log is broken
// it stops raft (haltRaft) and does nothing else; while raft.db's last write
// failed it probes the data dir (probeDisk; success clears the fault, as a
// successful raft write would, even when raft has nothing to write), hands
// leadership to another voter while this node leads but cannot write (so the
// group keeps taking writes), and, on the leader every CompactInterval when
// its replica holds something due (compactDue), proposes Compact until
// nothing more is due.
func (s *Store) maintain(ctx context.Context) {
	defer close(s.maintainDone)
	tick := maintainTick
	if iv := s.cfg.CompactInterval; iv > 0 && iv < tick {
		tick = iv
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	nextCompact := time.Now().Add(s.cfg.CompactInterval)
	var lastTransfer time.Time
	var logFaultSeen bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if lf := s.logs.WriteFault(); errors.Is(lf, ErrLogBroken) {
			s.haltRaft(lf)
			continue
		} else if lf != nil {
			if !logFaultSeen {
				s.logger.Error("raft log write failed: storage unavailable (node refuses writes and reports unready until a write succeeds)", "err", lf)
			}
			logFaultSeen = true
			if err := probeDisk(s.cfg.DataDir, probeBytes); err == nil {
				s.logs.clearFault()
				s.logger.Info("raft log writes resumed: the data dir takes writes again")
				logFaultSeen = false
			}
		} else if logFaultSeen {
			s.logger.Info("raft log writes resumed")
			logFaultSeen = false
		}
		fault := s.WriteFault()
		if fault != nil && s.IsLeader() && time.Since(lastTransfer) >= faultTransferEvery {
			lastTransfer = time.Now()
			s.handOffDegraded(ctx, fault)
		}
		if s.cfg.CompactInterval > 0 && fault == nil && !time.Now().Before(nextCompact) {
			nextCompact = time.Now().Add(s.cfg.CompactInterval)
			if s.IsLeader() && s.fsm.compactDue(s.cfg.Clock().UnixMilli(), s.cfg.IdempotencyTTL.Milliseconds(), s.cfg.CancelledRetention.Milliseconds()) {
				s.compactAll(ctx)
			}
		}
	}
}

// haltRaft shuts this node's raft down for good once its log is broken
// (ErrLogBroken, cause). A broken log takes no write until the process
// restarts and has cut off what the failed fdatasync covered (raft's
// in-memory log cache still holds those entries and could replicate them).
// Left running, this node stays the leader until a hand-off succeeds
// (handOffDegraded, every faultTransferEvery), which needs a follower that
// takes its entries; until then the proposals waiting for the cut entries go
// unanswered, and the group has no leader that can write. Stopped, it is to
// the group what a crashed voter is: the others elect one of themselves
// within an election timeout (the vote rule elects one whose log holds every
// committed entry), and the waiting proposals are answered at once with an
// unknown outcome (leadership lost, or ErrClosed for entries raft had not
// yet written). Local reads keep working; Close finishes the shutdown; a
// restart rescans the log and rejoins the group.
func (s *Store) haltRaft(cause error) {
	if !s.halted.CompareAndSwap(false, true) {
		return
	}
	s.logger.Error("raft log broken: raft stopped on this node so that the other voters elect a leader; restart the node", "err", cause)
	if err := s.stopRaft(); err != nil {
		s.logger.Warn("raft shutdown after the log broke", "err", err)
	}
}

// handOffDegraded transfers leadership away from this node, which cannot
// write, when another voter exists.
func (s *Store) handOffDegraded(ctx context.Context, fault error) {
	tctx, cancel := context.WithTimeout(ctx, 2*s.cfg.ElectionTimeout+s.cfg.HeartbeatTimeout)
	defer cancel()
	err := s.TransferLeadership(tctx)
	switch {
	case err == nil:
		s.logger.Warn("handed leadership over: this node cannot write", "fault", fault)
	case errors.Is(err, ErrNoOtherVoter), errors.Is(err, ErrNotLeader), errors.Is(err, ErrClosed), ctx.Err() != nil:
	default:
		s.logger.Warn("leadership hand-off of a node that cannot write failed", "err", err, "fault", fault)
	}
}

// compactAll proposes Compact until one reports nothing more due (bounded by
// maxCompactRounds), stopping at the first error (not leader any more,
// closing, storage fault): the next run continues.
func (s *Store) compactAll(ctx context.Context) {
	var total uint64
	start := time.Now()
	for range maxCompactRounds {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
		removed, more, err := s.Compact(cctx)
		cancel()
		total += removed
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("compaction stopped", "err", err, "removed", total)
			}
			return
		}
		if !more {
			break
		}
	}
	if total > 0 {
		s.logger.Info("compacted", "removed", total, "took", time.Since(start))
	}
}

// probeDisk writes size bytes to a temporary file in dir, fsyncs and removes
// it: nil means the filesystem takes that much again. A tiny write would not
// do: bbolt reuses free pages inside its file, so small transactions can
// succeed on a full disk while the next append, which must grow the file,
// fails.
func probeDisk(dir string, size int) error {
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	buf := make([]byte, 256<<10)
	for left := size; left > 0 && err == nil; left -= len(buf) {
		_, err = f.Write(buf[:min(left, len(buf))])
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// validateRetention checks the retention settings for Config.Validate.
func (c Config) validateRetention() []error {
	var errs []error
	if c.IdempotencyTTL < time.Second {
		errs = append(errs, fmt.Errorf("IdempotencyTTL (%s) must be at least 1s", c.IdempotencyTTL))
	}
	if c.CancelledRetention < time.Second {
		errs = append(errs, fmt.Errorf("CancelledRetention (%s) must be at least 1s", c.CancelledRetention))
	}
	if c.CompactInterval == 0 {
		errs = append(errs, errors.New("CompactInterval must not be 0 (negative disables compaction)"))
	}
	return errs
}
