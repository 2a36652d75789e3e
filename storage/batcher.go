package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protowire"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// batcher implements group commit. Propose hands it an encoded command; its
// loop takes one in-flight slot (at most MaxInflight batches proposed and not
// yet applied), then packs every pending command, up to MaxBatch, into one
// CommandBatch Raft entry. While all slots are busy, new commands queue up, so
// under load batches grow by themselves; with no load a command goes out
// alone at once. One goroutine per in-flight batch waits for its future and
// hands each caller its own result.
type batcher struct {
	raft     *raft.Raft
	maxBatch int
	timeout  time.Duration

	in      chan *proposal
	slots   chan struct{}
	stop    chan struct{} // closed by close()
	down    chan struct{} // closed by raftDown() once raft has shut down
	stopped chan struct{} // closed when the loop and every in-flight batch are done
	wg      sync.WaitGroup
	once    sync.Once

	lastBatchSize atomic.Int64
	// commitSeconds observes the latency of each batch that commits
	// (Store.Collectors).
	commitSeconds prometheus.Histogram

	// logFault reports a failing raft.db (LogStore.WriteFault); set before
	// the first submit. raft's LogCache flattens the LogStore's error into
	// text, so a failed batch is matched to the fault this way.
	logFault func() error
}

type proposal struct {
	data []byte       // the marshalled Command
	done chan outcome // buffered 1: the batcher never blocks on a gone caller
}

type outcome struct {
	res *bookingv1.CommandResult
	err error
}

func newBatcher(r *raft.Raft, maxBatch, maxInflight int, timeout time.Duration) *batcher {
	b := &batcher{
		raft:     r,
		maxBatch: maxBatch,
		timeout:  timeout,
		in:       make(chan *proposal, maxBatch*maxInflight),
		slots:    make(chan struct{}, maxInflight),
		stop:     make(chan struct{}),
		down:     make(chan struct{}),
		stopped:  make(chan struct{}),

		commitSeconds: newCommitHistogram(),
	}
	b.wg.Add(1)
	go b.loop()
	go func() { b.wg.Wait(); close(b.stopped) }()
	return b
}

// submit enqueues data and waits for its outcome. A canceled ctx stops the
// wait, not the command: once enqueued it may still commit.
func (b *batcher) submit(ctx context.Context, data []byte) (*bookingv1.CommandResult, error) {
	p, err := b.enqueue(ctx, data)
	if err != nil {
		return nil, err
	}
	return b.wait(ctx, p)
}

// enqueue hands data to the loop without waiting for its outcome (wait
// does). An error means data was not enqueued: certainly not proposed.
func (b *batcher) enqueue(ctx context.Context, data []byte) (*proposal, error) {
	p := &proposal{data: data, done: make(chan outcome, 1)}
	select {
	case b.in <- p:
		return p, nil
	case <-b.stop:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// wait waits for the outcome of an enqueued proposal, as submit does.
func (b *batcher) wait(ctx context.Context, p *proposal) (*bookingv1.CommandResult, error) {
	select {
	case o := <-p.done:
		return o.res, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.stopped:
		select {
		case o := <-p.done:
			return o.res, o.err
		default:
			return nil, ErrClosed
		}
	}
}

// close stops the loop; in-flight batches finish (raft shutdown fails them).
func (b *batcher) close() { b.once.Do(func() { close(b.stop) }) }

// raftDown tells in-flight batches that raft has shut down. raft does not
// answer a future whose entry was still queued in its (buffered) apply
// channel at shutdown, so finish stops waiting for it: the callers get
// ErrClosed with an unknown outcome.
func (b *batcher) raftDown() { close(b.down) }

func (b *batcher) loop() {
	defer b.wg.Done()
	for {
		select {
		case b.slots <- struct{}{}:
		case <-b.stop:
			return
		}
		var batch []*proposal
		select {
		case p := <-b.in:
			batch = append(batch, p)
		case <-b.stop:
			<-b.slots
			return
		}
		batch, _, _ = drain(b.in, batch, b.maxBatch, nil)
		b.lastBatchSize.Store(int64(len(batch)))
		size := 0
		for _, p := range batch {
			size += protowire.SizeTag(1) + protowire.SizeBytes(len(p.data))
		}
		// CommandBatch{commands: [...]}, written field by field: each command
		// was marshalled (deterministically) by its caller.
		data := make([]byte, 0, size)
		for _, p := range batch {
			data = protowire.AppendTag(data, 1, protowire.BytesType)
			data = protowire.AppendBytes(data, p.data)
		}
		proposed := time.Now()
		fut := b.raft.Apply(data, b.timeout)
		b.wg.Add(1)
		go b.finish(fut, batch, proposed)
	}
}

// drain appends to batch what in holds right now, up to max in all: group
// commit takes whatever queued while the last batch was in flight. A value
// for which belongs (if set) is false ends the batch without joining it: it
// is returned as held, for the next batch.
func drain[T any](in <-chan T, batch []T, max int, belongs func(T) bool) (_ []T, held T, isHeld bool) {
	for len(batch) < max {
		select {
		case v := <-in:
			if belongs != nil && !belongs(v) {
				return batch, v, true
			}
			batch = append(batch, v)
		default:
			return batch, held, false
		}
	}
	return batch, held, false
}

func (b *batcher) finish(fut raft.ApplyFuture, batch []*proposal, proposed time.Time) {
	defer b.wg.Done()
	defer func() { <-b.slots }()
	done := make(chan error, 1)
	go func() { done <- fut.Error() }() // leaks only for a future raft never answers
	var err error
	select {
	case err = <-done:
	case <-b.down:
		select {
		case err = <-done:
		default:
			err = fmt.Errorf("%w: %w: raft shut down with the batch in flight", ErrClosed, ErrOutcomeUnknown)
			for _, p := range batch {
				p.done <- outcome{err: err}
			}
			return
		}
	}
	if err != nil {
		err = b.mapError(err)
		for _, p := range batch {
			p.done <- outcome{err: err}
		}
		return
	}
	if ferr, ok := fut.Response().(error); ok {
		// The FSM gave up on the entry at close (see fsm.ApplyBatch).
		for _, p := range batch {
			p.done <- outcome{err: ferr}
		}
		return
	}
	b.observeCommit(time.Since(proposed))
	results, _ := fut.Response().([]*bookingv1.CommandResult)
	for i, p := range batch {
		if i >= len(results) || results[i] == nil {
			p.done <- outcome{err: fmt.Errorf("%w: raft returned %d results for a batch of %d", ErrInvalid, len(results), len(batch))}
			continue
		}
		r := results[i]
		p.done <- outcome{res: r, err: resultError(r)}
	}
}

// mapError is mapRaftError, except that an error raft passed on from the
// LogStore (the leader's StoreLogs failed: raft answered the batch with it and
// stepped down, nothing was replicated) becomes ErrStorageUnavailable: not
// proposed, safe to retry elsewhere.
func (b *batcher) mapError(err error) error {
	m := mapRaftError(err)
	if errors.Is(m, ErrNotLeader) || errors.Is(m, ErrClosed) || errors.Is(m, ErrTimeout) || b.logFault == nil {
		return m
	}
	if lf := b.logFault(); lf != nil {
		return fmt.Errorf("%w (raft: %v)", lf, err)
	}
	return m
}

// mapRaftError turns raft's errors into this package's sentinels.
func mapRaftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// raft refuses new entries during a transfer: not proposed.
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %w: %v (retry with the same idempotency key)", ErrNotLeader, ErrOutcomeUnknown, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v", ErrClosed, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return fmt.Errorf("storage: raft: %w", err)
}

// resultError returns nil for RESULT_CODE_OK, else an error wrapping the
// code's sentinel and carrying the FSM's detail.
func resultError(r *bookingv1.CommandResult) error {
	var s error
	switch r.Code {
	case bookingv1.ResultCode_RESULT_CODE_OK:
		return nil
	case bookingv1.ResultCode_RESULT_CODE_SLOT_TAKEN:
		s = ErrSlotTaken
	case bookingv1.ResultCode_RESULT_CODE_NOT_FOUND:
		s = ErrNotFound
	case bookingv1.ResultCode_RESULT_CODE_IDEMPOTENCY_MISMATCH:
		s = ErrIdempotencyKeyReused
	case bookingv1.ResultCode_RESULT_CODE_INVALID_TRANSITION:
		s = ErrInvalidTransition
	case bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS:
		s = ErrAlreadyExists
	case bookingv1.ResultCode_RESULT_CODE_CONSENT_REQUIRED:
		s = ErrConsentRequired
	case bookingv1.ResultCode_RESULT_CODE_PROVIDER_UNVERIFIED:
		s = ErrProviderUnverified
	case bookingv1.ResultCode_RESULT_CODE_ERASED:
		s = ErrErased
	case bookingv1.ResultCode_RESULT_CODE_STALE:
		s = ErrStale
	default:
		s = ErrInvalid
	}
	if r.Detail == "" {
		return s
	}
	return fmt.Errorf("%w: %s", s, r.Detail)
}
