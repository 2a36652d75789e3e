package session

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/barberpro/edge/actors/internal/activation"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// retireNow tells a session actor that nothing routes to it any more: every
// request enqueued before it is handled, then the actor stops.
type retireNow = activation.RetireNow

// activations is what a session actor tells its directory about its life; nil
// for cluster grains (the cluster keeps its own directory).
type activations = activation.Activations

// sessionNames name the session actors in errors.
var sessionNames = activation.Names{
	Unavailable: ErrUnavailable,
	Describe:    func(bookingID string) string { return "session " + bookingID },
}

// localDirectory maps booking id → PID of its session actor in this process and
// activates them on demand (local mode: tests, a node without a cluster).
type localDirectory struct{ *activation.Directory }

// newLocalDirectory returns the in-process directory of the session actors of
// s, spawned in system.
func newLocalDirectory(s *Sessions, system *actor.ActorSystem) *localDirectory {
	d := &localDirectory{}
	d.Directory = activation.NewDirectory(system,
		func(bookingID string) *actor.Props {
			return actor.PropsFromProducer(func() actor.Actor { return newSessionActor(s, bookingID, d.Directory) })
		},
		activation.Options{
			Names:  sessionNames,
			Name:   func(bookingID string) string { return "session/" + bookingID },
			Closed: "sessions stopped",
			Late: func(*actor.PID) {
				s.cfg.Logger.Warn("session actor did not retire in time; stopping it")
			},
		})
	return d
}

// request sends req to the booking's actor and waits up to timeout (and ctx) for
// its reply. A retiring actor is waited for and a fresh one activated; a dead
// letter (the actor stopped under us) is retried on a fresh activation.
func (d *localDirectory) request(ctx context.Context, bookingID string, req *calendarv1.SessionRequest, timeout time.Duration) (*calendarv1.SessionReply, error) {
	res, err := d.Request(ctx, bookingID, req, timeout)
	if err != nil {
		return nil, err
	}
	rep, ok := res.(*calendarv1.SessionReply)
	if !ok {
		return nil, fmt.Errorf("%w: unexpected answer %T", ErrUnavailable, res)
	}
	return rep, nil
}
