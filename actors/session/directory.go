package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// retireNow tells a session actor that nothing routes to it any more: every
// request enqueued before it is handled, then the actor stops.
type retireNow struct{}

// activations is what a session actor tells its directory about its life; nil
// for cluster grains (the cluster keeps its own directory).
type activations interface {
	// retire stops routing to pid and calls mark (which enqueues retireNow to
	// the actor) while no request can be enqueued concurrently.
	retire(bookingID string, pid *actor.PID, mark func())
	// stopped forgets pid once it has stopped.
	stopped(bookingID string, pid *actor.PID)
}

// localDirectory maps booking id → PID of its session actor in this process and
// activates them on demand (local mode: tests, a node without a cluster).
type localDirectory struct {
	system *actor.ActorSystem
	props  func(bookingID string) *actor.Props
	log    *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry
	closed  bool
}

type entry struct {
	pid      *actor.PID
	retiring bool
	done     chan struct{} // closed when the entry is forgotten
}

var _ activations = (*localDirectory)(nil)

const maxAttempts = 5

func actorName(bookingID string) string { return "session/" + bookingID }

// request sends req to the booking's actor and waits up to timeout (and ctx) for
// its reply. A retiring actor is waited for and a fresh one activated; a dead
// letter (the actor stopped under us) is retried on a fresh activation.
func (d *localDirectory) request(ctx context.Context, bookingID string, req *calendarv1.SessionRequest, timeout time.Duration) (*calendarv1.SessionReply, error) {
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			break
		}
		f, pid, wait, err := d.send(bookingID, req, left)
		if err != nil {
			return nil, err
		}
		if wait != nil {
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: session %s: %w", ErrUnavailable, bookingID, ctx.Err())
			case <-time.After(left):
				return nil, fmt.Errorf("%w: session %s is still retiring", ErrUnavailable, bookingID)
			}
		}
		res, err := await(ctx, f)
		if errors.Is(err, actor.ErrDeadLetter) {
			d.forget(bookingID, pid)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: session %s: %w", ErrUnavailable, bookingID, err)
		}
		rep, ok := res.(*calendarv1.SessionReply)
		if !ok {
			return nil, fmt.Errorf("%w: unexpected answer %T", ErrUnavailable, res)
		}
		return rep, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: session %s: %w", ErrUnavailable, bookingID, err)
	}
	return nil, fmt.Errorf("%w: no activation of session %s answered", ErrUnavailable, bookingID)
}

// send enqueues msg to the booking's actor, spawning one if needed. It holds mu
// while enqueueing so that retire orders its marker after every request routed to
// the retiring actor.
func (d *localDirectory) send(bookingID string, msg any, timeout time.Duration) (f *actor.Future, pid *actor.PID, wait <-chan struct{}, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil, nil, fmt.Errorf("%w: sessions stopped", ErrUnavailable)
	}
	e := d.entries[bookingID]
	if e != nil && e.retiring {
		return nil, nil, e.done, nil
	}
	if e == nil {
		pid, err := d.system.Root.SpawnNamed(d.props(bookingID), actorName(bookingID))
		if err != nil && !errors.Is(err, actor.ErrNameExists) {
			return nil, nil, nil, fmt.Errorf("%w: activate session %s: %w", ErrUnavailable, bookingID, err)
		}
		e = &entry{pid: pid, done: make(chan struct{})}
		d.entries[bookingID] = e
	}
	return d.system.Root.RequestFuture(e.pid, msg, timeout), e.pid, nil, nil
}

// forget drops the entry of pid, if it is still the current one.
func (d *localDirectory) forget(bookingID string, pid *actor.PID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.entries[bookingID]; e != nil && e.pid.Equal(pid) {
		delete(d.entries, bookingID)
		close(e.done)
	}
}

func (d *localDirectory) retire(bookingID string, pid *actor.PID, mark func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.entries[bookingID]; e != nil && e.pid.Equal(pid) {
		e.retiring = true
	}
	mark()
}

func (d *localDirectory) stopped(bookingID string, pid *actor.PID) { d.forget(bookingID, pid) }

// active counts the activations, retiring ones included.
func (d *localDirectory) active() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

// close stops routing, asks every actor to retire, and waits up to wait for them
// to finish what they hold; the rest are stopped.
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
			d.log.Warn("session actor did not retire in time; stopping it")
			d.system.Root.Stop(pids[i])
		}
	}
}

// await waits for f or for ctx.
func await(ctx context.Context, f *actor.Future) (any, error) {
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
	}
}
