package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// BatchForwarder is a Forwarder that can also carry several proposals to the
// leader in one message. When the Store's Forwarder implements it, the
// proposals made on a follower while earlier ones are in flight go to the
// leader together (group commit across the hop, like the batcher's on the
// leader), served there by Store.ProposeBatchLocal.
//
// Contract, for each command as for Forwarder.Propose: with a nil error,
// out[i] is cmds[i]'s outcome (the leader's result whenever its FSM produced
// one, else an error keeping the far side's sentinels); len(out) must be
// len(cmds). A non-nil error means the exchange as a whole failed, and holds
// for every command: ErrNotLeader alone means none was proposed, any other
// error an unknown outcome. Every command is sent unchanged (idempotency key,
// ProposedAtMs). ProposeBatch must honour ctx.
type BatchForwarder interface {
	Forwarder
	ProposeBatch(ctx context.Context, leader raft.ServerID, addr raft.ServerAddress, cmds []*bookingv1.Command) ([]Outcome, error)
}

// Outcome is one command's answer in a batch of proposals: Result whenever
// the FSM produced one (the error then derives from its code), else Err.
type Outcome struct {
	Result *bookingv1.CommandResult
	Err    error
}

// ProposeBatchLocal is ProposeLocal for several commands, for the cluster
// layer serving a follower's forwarded batch: every command is handed to the
// group commit on its own (commands of one batch may share a Raft entry with
// other proposals, or be split over several), and out[i] is cmds[i]'s outcome
// with ProposeLocal's meaning: a command refused because this node is not
// (or no longer) the leader gets ErrNotLeader alone, one whose entry lost
// leadership in flight ErrNotLeader with ErrOutcomeUnknown. A batch of more
// than Config.MaxBatch commands is refused whole (ErrBatchTooLarge, nothing
// proposed).
func (s *Store) ProposeBatchLocal(ctx context.Context, cmds []*bookingv1.Command) []Outcome {
	out := make([]Outcome, len(cmds))
	if len(cmds) > s.cfg.MaxBatch {
		err := fmt.Errorf("%w: %d commands, at most %d", ErrBatchTooLarge, len(cmds), s.cfg.MaxBatch)
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	ps := make([]*proposal, len(cmds))
	for i, cmd := range cmds {
		_, data, err := s.prepare(ctx, cmd)
		if err == nil && s.raft.State() != raft.Leader {
			err = s.notLeader()
		}
		if err == nil {
			ps[i], err = s.b.enqueue(ctx, data)
		}
		out[i].Err = err
	}
	for i, p := range ps {
		if p != nil {
			out[i].Result, out[i].Err = s.b.wait(ctx, p)
		}
	}
	return out
}

// fwdBatcher group-commits a follower's forwarded proposals: its loop takes
// one in-flight slot (at most maxInflight batches sent and not answered),
// then packs every waiting proposal for the same leader, up to maxBatch, into
// one BatchForwarder.ProposeBatch call. With no load a proposal goes out
// alone at once; under load batches grow while the slots are busy.
type fwdBatcher struct {
	fwd      BatchForwarder
	maxBatch int
	in       chan *fwdCall // unbuffered: a call handed over is owned by the loop
	slots    chan struct{}
	stop     <-chan struct{} // closed by Store.Close
	replaced <-chan struct{} // closed when SetForwarder replaces the Forwarder
	exited   chan struct{}   // closed when the loop returns
}

type fwdCall struct {
	ctx    context.Context
	leader raft.ServerID
	addr   raft.ServerAddress
	cmd    *bookingv1.Command
	done   chan outcome // buffered 1
}

func newFwdBatcher(f BatchForwarder, maxBatch, maxInflight int, stop, replaced <-chan struct{}) *fwdBatcher {
	b := &fwdBatcher{
		fwd: f, maxBatch: maxBatch,
		in:       make(chan *fwdCall),
		slots:    make(chan struct{}, maxInflight),
		stop:     stop,
		replaced: replaced,
		exited:   make(chan struct{}),
	}
	go b.loop()
	return b
}

// errNotSent answers a call the loop took but will never send.
var errNotSent = fmt.Errorf("%w: forwarding stopped before the proposal was sent", ErrNotLeader)

// propose is Forwarder.Propose through the batch: cmd goes to leader with
// the other proposals waiting for it.
func (b *fwdBatcher) propose(ctx context.Context, leader raft.ServerID, addr raft.ServerAddress, cmd *bookingv1.Command) (*bookingv1.CommandResult, error) {
	c := &fwdCall{ctx: ctx, leader: leader, addr: addr, cmd: cmd, done: make(chan outcome, 1)}
	select {
	case b.in <- c:
	case <-b.exited:
		return nil, errNotSent
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w (not sent)", ErrNotLeader, ctx.Err())
	}
	select {
	case o := <-c.done:
		return o.res, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *fwdBatcher) loop() {
	defer close(b.exited)
	var held *fwdCall // taken from in, for another leader than the last batch's
	defer func() {
		if held != nil {
			held.done <- outcome{err: errNotSent}
		}
	}()
	for {
		select {
		case b.slots <- struct{}{}:
		case <-b.stop:
			return
		case <-b.replaced:
			return
		}
		first := held
		held = nil
		if first == nil {
			select {
			case first = <-b.in:
			case <-b.stop:
				return
			case <-b.replaced:
				return
			}
		}
		batch, next, _ := drain(b.in, []*fwdCall{first}, b.maxBatch, func(c *fwdCall) bool {
			return c.leader == first.leader && c.addr == first.addr
		})
		held = next // nil unless a call for another leader ended the batch
		go b.send(batch)
	}
}

// send makes one ProposeBatch call for the calls of batch whose caller still
// waits, and answers each of them.
func (b *fwdBatcher) send(batch []*fwdCall) {
	defer func() { <-b.slots }()
	live := batch[:0]
	var deadline time.Time
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			// The caller has gone (it answered itself with ctx's error): do
			// not propose what nobody waits for.
			c.done <- outcome{err: err}
			continue
		}
		live = append(live, c)
		if dl, ok := c.ctx.Deadline(); ok && dl.After(deadline) {
			deadline = dl
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	defer cancel()
	cmds := make([]*bookingv1.Command, len(live))
	for i, c := range live {
		cmds[i] = c.cmd
	}
	outs, err := b.fwd.ProposeBatch(ctx, live[0].leader, live[0].addr, cmds)
	if err == nil && len(outs) != len(live) {
		err = fmt.Errorf("%w: forwarder returned %d outcomes for %d commands", ErrOutcomeUnknown, len(outs), len(live))
	}
	for i, c := range live {
		if err != nil {
			c.done <- outcome{err: err}
			continue
		}
		c.done <- outcome{res: outs[i].Result, err: outs[i].Err}
	}
}
