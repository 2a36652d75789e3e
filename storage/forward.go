package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// Forwarder carries a proposal or a read-index request to the group's leader
// when this node is not the leader. The cluster layer implements it over its
// own transport (storage imports neither protoactor nor HTTP); on the leader
// the request is served by Store.ProposeLocal or Store.ReadIndexLocal.
//
// Contract:
//   - Propose returns the leader's CommandResult whenever ProposeLocal returned
//     one, for every result code (SLOT_TAKEN etc. too). The Store derives the
//     error from the result's code, so the Forwarder's error is then ignored.
//   - Without a result, the error must keep the far side's sentinels for
//     errors.Is: ErrNotLeader alone means the far side refused before
//     proposing (certainly not applied; the Store retries at the new leader);
//     ErrNotLeader together with ErrOutcomeUnknown means the command may have
//     committed. ErrorKinds and ErrorFromKinds carry the sentinels across a
//     wire. Any other error (transport failure, timeout) is treated as an
//     unknown outcome.
//   - The command carries its idempotency key; the Forwarder must send it
//     unchanged (also ProposedAtMs, which the Store sets before forwarding so
//     every retry proposes the same bytes).
//   - Both methods must honour ctx.
type Forwarder interface {
	Propose(ctx context.Context, leader raft.ServerID, addr raft.ServerAddress, cmd *bookingv1.Command) (*bookingv1.CommandResult, error)
	ReadIndex(ctx context.Context, leader raft.ServerID, addr raft.ServerAddress) (uint64, error)
}

// forwarderBox holds the Forwarder and, for a BatchForwarder, the batcher
// that group-commits forwarded proposals through it (started at the first
// forwarded proposal, so a Store that fails to open starts none).
type forwarderBox struct {
	f        Forwarder
	bf       BatchForwarder
	once     sync.Once
	fb       *fwdBatcher
	replaced chan struct{} // closed when SetForwarder replaces the box
}

// SetForwarder replaces Config.Forwarder (nil turns forwarding off), for a
// cluster layer that can only build its Forwarder after the Store is open.
// A BatchForwarder carries the proposals waiting on this node to the leader
// in batches (see BatchForwarder).
func (s *Store) SetForwarder(f Forwarder) {
	box := &forwarderBox{f: f, replaced: make(chan struct{})}
	box.bf, _ = f.(BatchForwarder)
	if old := s.fwd.Swap(box); old != nil {
		close(old.replaced)
	}
}

func (s *Store) forwarder() Forwarder {
	if b := s.fwd.Load(); b != nil {
		return b.f
	}
	return nil
}

// forwardPropose sends cmd to the leader: through the batcher when the
// Forwarder batches, else alone.
func (s *Store) forwardPropose(ctx context.Context, leader raft.ServerID, addr raft.ServerAddress, cmd *bookingv1.Command) (*bookingv1.CommandResult, error) {
	box := s.fwd.Load()
	if box == nil || box.f == nil {
		return nil, fmt.Errorf("%w: forwarding turned off", ErrNotLeader)
	}
	if box.bf != nil {
		box.once.Do(func() { box.fb = newFwdBatcher(box.bf, s.cfg.MaxBatch, s.cfg.MaxInflight, s.done, box.replaced) })
		return box.fb.propose(ctx, leader, addr, cmd)
	}
	return box.f.Propose(ctx, leader, addr, cmd)
}

// Propose replicates cmd through Raft and returns the FSM's verdict. Commands
// proposed concurrently are group-committed into one Raft entry. If
// cmd.ProposedAtMs is zero it is set from Config.Clock (cmd is not modified;
// a copy is sent).
//
// On the leader the command is proposed locally. On a follower with a
// Forwarder it is sent to the current leader (Forwarder.Propose, served there
// by ProposeLocal). While no leader is known, or the leader answers that it
// no longer leads, Propose waits for the next leader and tries again, for up
// to Config.LeaderWaitTimeout from the call; then it returns an error wrapping
// ErrNotLeader (the edge answers 503). Without a Forwarder a follower returns
// ErrNotLeader at once.
//
// Retries and idempotency: a retry is made without condition only when the
// previous attempt was certainly not proposed. When the outcome of an attempt
// is unknown (leadership lost in flight, the forwarded call failed or timed
// out, the leader shut down), Propose retries only if cmd carries an
// idempotency key: the FSM applies a key at most once and answers a repeat
// with the resource's current state, so the retry cannot take effect twice.
// A command without a key gets an error wrapping ErrNotLeader and
// ErrOutcomeUnknown instead. Callers that retry after such an error must send
// the same key.
//
// On RESULT_CODE_OK it returns the result and nil. On any other code it
// returns the result and an error wrapping the code's sentinel (ErrSlotTaken,
// ErrNotFound, ErrIdempotencyKeyReused, ErrInvalidTransition,
// ErrAlreadyExists, ErrInvalid, ErrConsentRequired, ErrProviderUnverified,
// ErrErased). It returns ErrClosed after Close, ErrTimeout
// if raft does not accept the entry within ApplyTimeout, and ctx's error if
// ctx ends first — in that case the command may still commit.
func (s *Store) Propose(ctx context.Context, cmd *bookingv1.Command) (*bookingv1.CommandResult, error) {
	cmd, data, err := s.prepare(ctx, cmd)
	if err != nil {
		return nil, err
	}
	fwd := s.forwarder()
	if fwd == nil {
		if s.raft.State() != raft.Leader {
			return nil, s.notLeader()
		}
		return s.b.submit(ctx, data)
	}
	keyed := cmd.IdempotencyKey != ""
	deadline := time.Now().Add(s.cfg.LeaderWaitTimeout)
	var lastErr error
	// unknown: an earlier attempt may have taken effect, so no later refusal
	// can make the outcome certain.
	unknown := false
	for attempt := 0; ; attempt++ {
		if s.closed.Load() {
			return nil, stillUnknown(ErrClosed, unknown)
		}
		if s.halted.Load() {
			// haltRaft stopped raft: this node learns no leader until it
			// restarts, and its fault says why.
			return nil, stillUnknown(s.WriteFault(), unknown)
		}
		changed := s.leaderChanged()
		var res *bookingv1.CommandResult
		var err error
		if s.raft.State() == raft.Leader {
			res, err = s.b.submit(ctx, data)
		} else if addr, id := s.raft.LeaderWithID(); id != "" && id != raft.ServerID(s.cfg.NodeID) {
			actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
			if keyed {
				// A keyed command may be sent again: when leadership moves while
				// the old leader is silent (crashed, partitioned), give up on it
				// at once and retry at the new leader instead of waiting out the
				// attempt's timeout.
				go func() {
					select {
					case <-changed:
						cancel()
					case <-actx.Done():
					}
				}()
			}
			res, err = s.forwardPropose(actx, id, addr, cmd)
			cancel()
			if res != nil {
				return res, resultError(res)
			}
			if err == nil {
				err = fmt.Errorf("%w: forwarder returned neither result nor error", ErrOutcomeUnknown)
			}
		} else {
			err = fmt.Errorf("%w: no leader known", ErrNotLeader)
		}
		if err == nil || res != nil {
			return res, err
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, stillUnknown(cerr, unknown || !notProposed(err))
		}
		if isDefinite(err) {
			return nil, err
		}
		if errors.Is(err, ErrClosed) && s.closed.Load() {
			return nil, stillUnknown(err, unknown)
		}
		if !notProposed(err) && !keyed {
			return nil, unknownOutcome(err)
		}
		unknown = unknown || !notProposed(err)
		lastErr = err
		if !time.Now().Before(deadline) {
			break
		}
		if err := s.backoff(ctx, changed, attempt, deadline); err != nil {
			return nil, stillUnknown(err, unknown)
		}
	}
	if !unknown && errors.Is(lastErr, ErrStorageUnavailable) {
		return nil, fmt.Errorf("%w: the leader could not write for %s: %v", ErrStorageUnavailable, s.cfg.LeaderWaitTimeout, lastErr)
	}
	if !unknown {
		return nil, fmt.Errorf("%w: no leader accepted the command within %s: %v", ErrNotLeader, s.cfg.LeaderWaitTimeout, lastErr)
	}
	return nil, fmt.Errorf("%w: %w: no leader accepted the command within %s: %v", ErrNotLeader, ErrOutcomeUnknown, s.cfg.LeaderWaitTimeout, lastErr)
}

// ProposeLocal is Propose without forwarding: it proposes cmd if this node
// is the leader and returns ErrNotLeader (not proposed) otherwise. The cluster
// layer calls it when a forwarded proposal arrives. Result and errors as for
// Propose; an error wrapping both ErrNotLeader and ErrOutcomeUnknown means
// leadership was lost while the command was in flight.
func (s *Store) ProposeLocal(ctx context.Context, cmd *bookingv1.Command) (*bookingv1.CommandResult, error) {
	_, data, err := s.prepare(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if s.raft.State() != raft.Leader {
		return nil, s.notLeader()
	}
	return s.b.submit(ctx, data)
}

// prepare checks cmd, stamps ProposedAtMs on a copy if unset, and marshals it.
func (s *Store) prepare(ctx context.Context, cmd *bookingv1.Command) (*bookingv1.Command, []byte, error) {
	if s.closed.Load() {
		return nil, nil, ErrClosed
	}
	if err := s.WriteFault(); err != nil {
		return nil, nil, err // refused at once: nothing proposed
	}
	if cmd == nil {
		return nil, nil, fmt.Errorf("%w: nil command", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if cmd.ProposedAtMs == 0 {
		cmd = proto.Clone(cmd).(*bookingv1.Command)
		cmd.ProposedAtMs = s.cfg.Clock().UnixMilli()
	}
	data, err := marshalOpts.Marshal(cmd)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return cmd, data, nil
}

// LinearizableRead makes the next local reads observe every write committed
// before it was called (ReadIndex). On the leader it confirms leadership with
// a quorum (VerifyLeader), takes the commit index and waits until the FSM has
// applied it; if the leader has not yet committed an entry of its own term, it
// commits a barrier instead. On a follower with a Forwarder it asks the
// leader for that index (Forwarder.ReadIndex, served by ReadIndexLocal;
// each request bounded by readAttemptTimeout), retrying like Propose for up
// to LeaderWaitTimeout (reads have no effect, so every failure is retried),
// then waits until the local FSM has applied it
// (bounded by ApplyTimeout: ErrTimeout). Without a Forwarder a follower
// returns ErrNotLeader.
func (s *Store) LinearizableRead(ctx context.Context) error {
	if err := s.readable(ctx); err != nil {
		return err
	}
	fwd := s.forwarder()
	if fwd == nil {
		if s.raft.State() != raft.Leader {
			return s.notLeader()
		}
		idx, err := s.ReadIndexLocal(ctx)
		if err != nil {
			return err
		}
		return s.waitApplied(ctx, idx)
	}
	deadline := time.Now().Add(s.cfg.LeaderWaitTimeout)
	var lastErr error
	for attempt := 0; ; attempt++ {
		if s.closed.Load() {
			return ErrClosed
		}
		changed := s.leaderChanged()
		var idx uint64
		var err error
		if s.raft.State() == raft.Leader {
			idx, err = s.ReadIndexLocal(ctx)
		} else if addr, id := s.raft.LeaderWithID(); id != "" && id != raft.ServerID(s.cfg.NodeID) {
			actx, cancel := context.WithTimeout(ctx, s.readAttemptTimeout())
			idx, err = fwd.ReadIndex(actx, id, addr)
			cancel()
		} else {
			err = fmt.Errorf("%w: no leader known", ErrNotLeader)
		}
		if err == nil {
			wctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
			defer cancel()
			if err := s.waitApplied(wctx, idx); err != nil {
				if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("%w: applied index %d did not reach read index %d within %s", ErrTimeout, s.fsm.applied.Load(), idx, s.cfg.ApplyTimeout)
				}
				return err
			}
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if errors.Is(err, ErrClosed) && s.closed.Load() {
			return err
		}
		lastErr = err
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: no leader served the read index within %s: %v", ErrNotLeader, s.cfg.LeaderWaitTimeout, lastErr)
		}
		if err := s.backoff(ctx, changed, attempt, deadline); err != nil {
			return err
		}
	}
}

// readAttemptTimeout bounds one forwarded read-index request: half of
// LeaderWaitTimeout (at most ApplyTimeout), so that a request lost on the
// way (a peer's actor connection being re-established drops it) leaves time
// to ask again, of the same leader or a new one, before the read gives up.
// A read has no effect, so asking twice is harmless.
func (s *Store) readAttemptTimeout() time.Duration {
	return min(s.cfg.ApplyTimeout, s.cfg.LeaderWaitTimeout/2)
}

// ReadIndexLocal serves a read-index request on the leader: it confirms
// leadership with a quorum (VerifyLeader), takes the commit index (committing
// a barrier first if the leader has no entry of its own term committed yet)
// and returns the applied index a replica's FSM must reach to reflect every
// write committed before the call. It does not wait for this node's FSM.
// ErrNotLeader if this node is not the leader.
func (s *Store) ReadIndexLocal(ctx context.Context) (uint64, error) {
	if err := s.readable(ctx); err != nil {
		return 0, err
	}
	if s.raft.State() != raft.Leader {
		return 0, s.notLeader()
	}
	if err := s.awaitFuture(ctx, s.raft.VerifyLeader()); err != nil {
		return 0, err
	}
	commit := s.raft.CommitIndex()
	var l raft.Log
	if err := s.logs.GetLog(commit, &l); err == nil && l.Term != s.logs.CurrentTerm() {
		// The commit index may predate this term: commit a barrier of our
		// own. When it returns, the FSM has applied everything before it.
		if err := s.fsm.writeFault(); err != nil {
			return 0, err // the barrier would wait for an FSM that cannot write
		}
		if err := s.awaitFuture(ctx, s.raft.Barrier(s.cfg.ApplyTimeout)); err != nil {
			return 0, err
		}
		return s.fsm.applied.Load(), nil
	}
	// fsmTarget is 0 when the FSM already reflects everything up to commit;
	// the applied index (<= the current commit index) is then the target.
	return max(s.fsmTarget(commit), s.fsm.applied.Load()), nil
}

// backoff waits before the next attempt: until the leader changes, or a
// short growing delay (5ms doubling to 100ms), bounded by the deadline.
func (s *Store) backoff(ctx context.Context, changed <-chan struct{}, attempt int, deadline time.Time) error {
	d := min(5*time.Millisecond<<min(attempt, 5), 100*time.Millisecond)
	d = min(d, time.Until(deadline))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	}
	return nil
}

// notProposed reports whether err says the command was certainly not
// proposed: a refusal by a node that is not (or no longer) the leader, or by
// a leader that cannot write now (it hands leadership over, so a retry may
// find one that can).
func notProposed(err error) bool {
	return (errors.Is(err, ErrNotLeader) || errors.Is(err, ErrStorageUnavailable)) && !errors.Is(err, ErrOutcomeUnknown)
}

// isDefinite reports whether err is an answer about the command itself, so
// retrying elsewhere cannot change it.
func isDefinite(err error) bool {
	for _, s := range []error{ErrSlotTaken, ErrNotFound, ErrIdempotencyKeyReused, ErrInvalidTransition, ErrAlreadyExists, ErrInvalid,
		ErrConsentRequired, ErrProviderUnverified, ErrErased, ErrStale} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// stillUnknown marks err, the reason Propose stops retrying, with
// ErrOutcomeUnknown when an earlier attempt may have taken effect (unknown)
// and err does not say so already: a later refusal proves nothing about it.
func stillUnknown(err error, unknown bool) error {
	if !unknown || errors.Is(err, ErrOutcomeUnknown) {
		return err
	}
	return fmt.Errorf("%w: %w (an earlier attempt may have taken effect)", err, ErrOutcomeUnknown)
}

func unknownOutcome(err error) error {
	if errors.Is(err, ErrNotLeader) && errors.Is(err, ErrOutcomeUnknown) {
		return err
	}
	return fmt.Errorf("%w: %w: %v (command has no idempotency key, not retried)", ErrNotLeader, ErrOutcomeUnknown, err)
}

// Error kinds for carrying a forwarded request's error across a wire: each
// names one sentinel of this package.
var errorKinds = []struct {
	kind string
	err  error
}{
	{"not_found", ErrNotFound},
	{"slot_taken", ErrSlotTaken},
	{"idempotency_key_reused", ErrIdempotencyKeyReused},
	{"invalid_transition", ErrInvalidTransition},
	{"already_exists", ErrAlreadyExists},
	{"invalid", ErrInvalid},
	{"consent_required", ErrConsentRequired},
	{"provider_unverified", ErrProviderUnverified},
	{"erased", ErrErased},
	{"stale", ErrStale},
	{"not_leader", ErrNotLeader},
	{"outcome_unknown", ErrOutcomeUnknown},
	{"closed", ErrClosed},
	{"timeout", ErrTimeout},
	{"no_other_voter", ErrNoOtherVoter},
	{"last_voter", ErrLastVoter},
	{"storage_unavailable", ErrStorageUnavailable},
	{"deadline_exceeded", context.DeadlineExceeded},
	{"canceled", context.Canceled},
}

// ErrorKinds lists the names of the sentinels err wraps (e.g. ["not_leader",
// "outcome_unknown"]), for a Forwarder's server side to send with the message.
func ErrorKinds(err error) []string {
	var out []string
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			out = append(out, k.kind)
		}
	}
	return out
}

// ErrorFromKinds rebuilds an error on the Forwarder's client side that
// wraps the sentinels named by kinds (unknown names are ignored) and reads
// msg. With no known kind it is a plain error.
func ErrorFromKinds(kinds []string, msg string) error {
	var wrapped []error
	for _, name := range kinds {
		for _, k := range errorKinds {
			if k.kind == name {
				wrapped = append(wrapped, k.err)
			}
		}
	}
	if len(wrapped) == 0 {
		return errors.New(msg)
	}
	return &kindsError{msg: msg, errs: wrapped}
}

type kindsError struct {
	msg  string
	errs []error
}

func (e *kindsError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	names := make([]string, len(e.errs))
	for i, err := range e.errs {
		names[i] = err.Error()
	}
	return strings.Join(names, ": ")
}

func (e *kindsError) Unwrap() []error { return e.errs }
