package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"google.golang.org/protobuf/proto"
)

// requester delivers a calendarv1 request to the calendar actor of a provider
// and returns its Reply; error replies come back as an error wrapping a sentinel
// (and the reply). The local directory implements it in-process; a cluster-backed
// one (grain requests through identity lookup) can replace it.
type requester interface {
	Request(ctx context.Context, providerID string, msg proto.Message) (*calendarv1.Reply, error)
}

// localRequest wraps a request sent in-process, so the actor answers with a
// localReply that also carries the store's Go error.
type localRequest struct{ msg proto.Message }

// localReply is the in-process answer to a localRequest.
type localReply struct {
	reply *calendarv1.Reply
	cause error
}

// retireNow tells an actor that the directory no longer routes to it: it stops
// once nothing is in flight.
type retireNow struct{}

// activations is what an actor tells the directory about its lifecycle. A
// cluster host can provide its own or none.
type activations interface {
	// retire stops routing to pid and calls mark (which enqueues retireNow to the
	// actor) while no request can be enqueued concurrently.
	retire(providerID string, pid *actor.PID, mark func())
	// stopped forgets pid once it has stopped.
	stopped(providerID string, pid *actor.PID)
}

const maxAttempts = 5

// localDirectory maps providerID → PID of its activation in this process and
// activates calendar actors on demand.
type localDirectory struct {
	system  *actor.ActorSystem
	props   func(providerID string) *actor.Props
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry
	closed  bool
}

type entry struct {
	pid      *actor.PID
	retiring bool
	done     chan struct{} // closed when the entry is forgotten
}

var _ requester = (*localDirectory)(nil)

func actorName(providerID string) string { return "calendar/" + providerID }

// Request implements requester.
func (d *localDirectory) Request(ctx context.Context, providerID string, msg proto.Message) (*calendarv1.Reply, error) {
	deadline := time.Now().Add(d.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		timeout := time.Until(deadline)
		if timeout <= 0 || ctx.Err() != nil {
			break
		}
		f, pid, gone, wait, err := d.send(providerID, &localRequest{msg: msg}, timeout)
		if err != nil {
			return nil, err
		}
		if wait != nil { // the previous activation is retiring
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: calendar of provider %s: %w", ErrUnavailable, providerID, ctx.Err())
			case <-time.After(timeout):
				return nil, fmt.Errorf("%w: calendar of provider %s is still retiring", ErrUnavailable, providerID)
			}
		}
		res, err := awaitFuture(ctx, f, gone)
		if errors.Is(err, errActivationGone) {
			// It stopped (killed, or stopped by its host) without answering: our
			// message was dropped with its mailbox. Retry on a fresh activation;
			// writes carry idempotency keys and booking ids, so a retry has one effect.
			continue
		}
		if errors.Is(err, actor.ErrDeadLetter) {
			// The activation stopped under us: forget it and retry on a fresh one.
			d.forget(providerID, pid)
			time.Sleep(time.Duration(attempt) * 5 * time.Millisecond)
			continue
		}
		if errors.Is(err, actor.ErrTimeout) {
			return nil, fmt.Errorf("%w: calendar of provider %s did not answer within %s: %w",
				ErrUnavailable, providerID, timeout.Round(time.Millisecond), err)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: calendar of provider %s: %w", ErrUnavailable, providerID, err)
		}
		switch r := res.(type) {
		case *localReply:
			return r.reply, replyError(r.reply, r.cause)
		case *calendarv1.Reply:
			return r, replyError(r, nil)
		default:
			return nil, fmt.Errorf("%w: unexpected answer %T", ErrUnavailable, res)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: calendar of provider %s: %w", ErrUnavailable, providerID, err)
	}
	return nil, fmt.Errorf("%w: no activation of the calendar of provider %s answered", ErrUnavailable, providerID)
}

// send enqueues msg to the provider's activation, spawning one if needed. It
// holds mu while enqueueing so that retire can order its marker after every
// request routed to the retiring activation.
func (d *localDirectory) send(providerID string, msg any, timeout time.Duration) (f *actor.Future, pid *actor.PID, gone, wait <-chan struct{}, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil, nil, nil, fmt.Errorf("%w: calendars stopped", ErrUnavailable)
	}
	e := d.entries[providerID]
	if e != nil && e.retiring {
		return nil, nil, nil, e.done, nil
	}
	if e == nil {
		pid, err := d.system.Root.SpawnNamed(d.props(providerID), actorName(providerID))
		if err != nil && !errors.Is(err, actor.ErrNameExists) {
			return nil, nil, nil, nil, fmt.Errorf("%w: activate calendar of provider %s: %w", ErrUnavailable, providerID, err)
		}
		e = &entry{pid: pid, done: make(chan struct{})}
		d.entries[providerID] = e
	}
	return d.system.Root.RequestFuture(e.pid, msg, timeout), e.pid, e.done, nil, nil
}

// forget drops the entry of pid, if it is still the current one.
func (d *localDirectory) forget(providerID string, pid *actor.PID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.entries[providerID]; e != nil && e.pid.Equal(pid) {
		delete(d.entries, providerID)
		close(e.done)
	}
}

func (d *localDirectory) retire(providerID string, pid *actor.PID, mark func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.entries[providerID]; e != nil && e.pid.Equal(pid) {
		e.retiring = true
	}
	mark()
}

func (d *localDirectory) stopped(providerID string, pid *actor.PID) { d.forget(providerID, pid) }

// active counts the activations, retiring ones included.
func (d *localDirectory) active() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

// close stops routing, asks every activation to retire, and waits up to wait
// for them to finish their writes in flight; the rest are stopped.
func (d *localDirectory) close(wait time.Duration) {
	d.mu.Lock()
	d.closed = true
	var dones []chan struct{}
	var pids []*actor.PID
	for _, e := range d.entries {
		dones = append(dones, e.done)
		pids = append(pids, e.pid)
		if !e.retiring {
			e.retiring = true
			d.system.Root.Send(e.pid, &retireNow{})
		}
	}
	d.mu.Unlock()
	deadline := time.After(wait)
	late := false
	for i, done := range dones {
		if !late {
			select {
			case <-done:
				continue
			case <-deadline:
				late = true
			}
		}
		select {
		case <-done:
		default:
			d.log.Warn("calendar actor did not retire in time; stopping it", slog.String("pid", pids[i].String()))
			d.system.Root.Stop(pids[i])
		}
	}
}

// errActivationGone means the activation stopped without answering.
var errActivationGone = errors.New("calendar activation stopped")

// awaitGrace is how long an answer may trail the stop of the activation that sent
// it (it was sent before the stop; only the hand-over to us is pending).
const awaitGrace = 20 * time.Millisecond

// awaitFuture waits for f, for ctx, or for the activation to be gone.
func awaitFuture(ctx context.Context, f *actor.Future, gone <-chan struct{}) (any, error) {
	type result struct {
		v   any
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f.Result()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-gone:
		select {
		case r := <-ch:
			return r.v, r.err
		case <-time.After(awaitGrace):
			return nil, errActivationGone
		}
	}
}
