package actors

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/barberpro/edge/actors/internal/activation"
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
type retireNow = activation.RetireNow

// activations is what an actor tells the directory about its lifecycle. A
// cluster host can provide its own or none.
type activations = activation.Activations

// calendarNames name the calendar actors in errors.
var calendarNames = activation.Names{
	Unavailable: ErrUnavailable,
	Describe:    func(providerID string) string { return "calendar of provider " + providerID },
}

// localDirectory maps providerID → PID of its activation in this process and
// activates calendar actors on demand.
type localDirectory struct {
	*activation.Directory
	timeout time.Duration
}

var _ requester = (*localDirectory)(nil)

// newLocalDirectory returns the in-process directory of the calendar actors of
// cfg, spawned in system.
func newLocalDirectory(system *actor.ActorSystem, cfg *Config) *localDirectory {
	d := &localDirectory{timeout: cfg.RequestTimeout}
	d.Directory = activation.NewDirectory(system,
		func(providerID string) *actor.Props {
			return actor.PropsFromProducer(func() actor.Actor { return newCalendarActor(providerID, cfg, d.Directory) })
		},
		activation.Options{
			Names:  calendarNames,
			Name:   func(providerID string) string { return "calendar/" + providerID },
			Closed: "calendars stopped",
			// Writes carry idempotency keys and booking ids, so a retry has one effect.
			WatchGone:         true,
			DeadLetterBackoff: 5 * time.Millisecond,
			Late: func(pid *actor.PID) {
				cfg.Logger.Warn("calendar actor did not retire in time; stopping it", slog.String("pid", pid.String()))
			},
		})
	return d
}

// Request implements requester.
func (d *localDirectory) Request(ctx context.Context, providerID string, msg proto.Message) (*calendarv1.Reply, error) {
	activation.Stamp(ctx, msg) // inside localRequest, Directory.Request cannot
	res, err := d.Directory.Request(ctx, providerID, &localRequest{msg: msg}, d.timeout)
	if err != nil {
		return nil, err
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
