package activation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// RetireNow tells an actor that its directory no longer routes to it: every
// request enqueued before it has been handled, so the actor may stop once
// nothing is in flight.
type RetireNow struct{}

// Activations is what an actor tells its directory about its life. A cluster
// grain has none (nil): the cluster keeps its own directory.
type Activations interface {
	// Retire stops routing to pid and calls mark (which enqueues RetireNow to
	// the actor) while no request can be enqueued concurrently.
	Retire(key string, pid *actor.PID, mark func())
	// Stopped forgets pid once it has stopped.
	Stopped(key string, pid *actor.PID)
}

// Retire asks dir to stop routing to the actor of ctx (the activation of key);
// RetireNow then arrives after every request already routed to it. With a nil
// dir, RetireNow is sent at once.
func Retire(ctx actor.Context, dir Activations, key string) {
	self := ctx.Self()
	mark := func() { ctx.Send(self, &RetireNow{}) }
	if dir != nil {
		dir.Retire(key, self, mark)
	} else {
		mark()
	}
}

// Names says how errors name the actors of a kind.
type Names struct {
	// Unavailable is the sentinel every error of the kind wraps.
	Unavailable error
	// Describe names the actor of key in errors ("calendar of provider p",
	// "session b").
	Describe func(key string) string
}

// Options configure a Directory.
type Options struct {
	Names
	// Name is the actor name of the activation of key ("calendar/" + key).
	Name func(key string) string
	// Closed is the detail of the error of a request after Close ("calendars
	// stopped").
	Closed string
	// WatchGone: a request whose activation stopped (was forgotten) without
	// answering is sent again, after AwaitGrace, to a fresh activation. The
	// requests must be safe to repeat.
	WatchGone bool
	// DeadLetterBackoff: after a dead letter, the n-th attempt (from 0) waits
	// n×DeadLetterBackoff before the next.
	DeadLetterBackoff time.Duration
	// Late is called for each activation Close stops because it did not retire
	// in time (to log it); may be nil.
	Late func(pid *actor.PID)
}

// MaxAttempts bounds how many activations one Directory.Request tries.
const MaxAttempts = 5

// AwaitGrace is how long an answer may trail the stop of the activation that
// sent it (it was sent before the stop; only the hand-over to us is pending).
const AwaitGrace = 20 * time.Millisecond

// Directory maps key → PID of its activation in this process and activates
// actors on demand. It implements Activations for its actors. Safe for
// concurrent use.
type Directory struct {
	system *actor.ActorSystem
	props  func(key string) *actor.Props
	opts   Options

	mu      sync.Mutex
	entries map[string]*entry
	closed  bool
}

type entry struct {
	pid      *actor.PID
	retiring bool
	done     chan struct{} // closed when the entry is forgotten
}

var _ Activations = (*Directory)(nil)

// NewDirectory returns a Directory spawning the activation of a key in system
// with props(key). props is called under the directory's lock; it may refer to
// the Directory (as the actor's Activations).
func NewDirectory(system *actor.ActorSystem, props func(key string) *actor.Props, opts Options) *Directory {
	return &Directory{system: system, props: props, opts: opts, entries: map[string]*entry{}}
}

// Request sends msg to the activation of key and waits up to timeout (and ctx)
// for its answer, which it returns as is. A retiring activation is waited for
// and a fresh one activated; a dead letter (the actor stopped under us) is sent
// again to a fresh activation, and so is, with Options.WatchGone, a request
// whose activation stopped without answering. Errors wrap Names.Unavailable.
func (d *Directory) Request(ctx context.Context, key string, msg any, timeout time.Duration) (any, error) {
	unavailable, what := d.opts.Unavailable, d.opts.Describe(key)
	Stamp(ctx, msg) // the request msg serves, for the actor's log lines
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	for attempt := 0; attempt < MaxAttempts; attempt++ {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			break
		}
		f, pid, gone, wait, err := d.send(key, msg, left)
		if err != nil {
			return nil, err
		}
		if wait != nil { // the previous activation is retiring
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %s: %w", unavailable, what, ctx.Err())
			case <-time.After(left):
				return nil, fmt.Errorf("%w: %s is still retiring", unavailable, what)
			}
		}
		if !d.opts.WatchGone {
			gone = nil
		}
		res, err := await(ctx, f, gone)
		if errors.Is(err, errGone) {
			// It stopped (killed, or stopped by its host) without answering: our
			// message was dropped with its mailbox. Retry on a fresh activation.
			continue
		}
		if errors.Is(err, actor.ErrDeadLetter) {
			// The activation stopped under us: forget it and retry on a fresh one.
			d.forget(key, pid)
			if d.opts.DeadLetterBackoff > 0 {
				time.Sleep(time.Duration(attempt) * d.opts.DeadLetterBackoff)
			}
			continue
		}
		if errors.Is(err, actor.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s did not answer within %s: %w",
				unavailable, what, left.Round(time.Millisecond), err)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", unavailable, what, err)
		}
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", unavailable, what, err)
	}
	return nil, fmt.Errorf("%w: no activation of %s answered", unavailable, what)
}

// send enqueues msg to the activation of key, spawning one if needed. It holds
// mu while enqueueing so that Retire orders its marker after every request
// routed to the retiring activation.
func (d *Directory) send(key string, msg any, timeout time.Duration) (f *actor.Future, pid *actor.PID, gone, wait <-chan struct{}, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil, nil, nil, fmt.Errorf("%w: %s", d.opts.Unavailable, d.opts.Closed)
	}
	e := d.entries[key]
	if e != nil && e.retiring {
		return nil, nil, nil, e.done, nil
	}
	if e == nil {
		pid, err := d.system.Root.SpawnNamed(d.props(key), d.opts.Name(key))
		if err != nil && !errors.Is(err, actor.ErrNameExists) {
			return nil, nil, nil, nil, fmt.Errorf("%w: activate %s: %w", d.opts.Unavailable, d.opts.Describe(key), err)
		}
		e = &entry{pid: pid, done: make(chan struct{})}
		d.entries[key] = e
	}
	return d.system.Root.RequestFuture(e.pid, msg, timeout), e.pid, e.done, nil, nil
}

// forget drops the entry of pid, if it is still the current one.
func (d *Directory) forget(key string, pid *actor.PID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.entries[key]; e != nil && e.pid.Equal(pid) {
		delete(d.entries, key)
		close(e.done)
	}
}

// Retire implements Activations.
func (d *Directory) Retire(key string, pid *actor.PID, mark func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.entries[key]; e != nil && e.pid.Equal(pid) {
		e.retiring = true
	}
	mark()
}

// Stopped implements Activations.
func (d *Directory) Stopped(key string, pid *actor.PID) { d.forget(key, pid) }

// Active counts the activations, retiring ones included.
func (d *Directory) Active() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

// Close stops routing, sends RetireNow to every activation, and waits up to
// wait for them to finish what they hold; the rest are stopped (after
// Options.Late).
func (d *Directory) Close(wait time.Duration) {
	d.mu.Lock()
	d.closed = true
	var dones []chan struct{}
	var pids []*actor.PID
	for _, e := range d.entries {
		dones = append(dones, e.done)
		pids = append(pids, e.pid)
		if !e.retiring {
			e.retiring = true
			d.system.Root.Send(e.pid, &RetireNow{})
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
			if d.opts.Late != nil {
				d.opts.Late(pids[i])
			}
			d.system.Root.Stop(pids[i])
		}
	}
}

// errGone means the activation stopped without answering.
var errGone = errors.New("activation stopped")

// await waits for f, for ctx, or for the activation to be gone (a nil gone:
// never).
func await(ctx context.Context, f *actor.Future, gone <-chan struct{}) (any, error) {
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
		case <-time.After(AwaitGrace):
			return nil, errGone
		}
	}
}
