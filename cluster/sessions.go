package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/actors/session"
	"github.com/barberpro/edge/edge"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage"
)

// edgeSessions serves the edge's Sessions interface with the node's session
// actors and its store: the edge reads a refusal from the reply's error code
// and takes err for a transport fault only; the export reads the client's
// sealed notes from this node's replica and has the session layer unseal them
// with this node's KEK.
type edgeSessions struct {
	sessions *session.Sessions
	store    *storage.Store
}

// Do sends req to its session actor. A reply (refusals included) comes back
// with a nil error; no reply is actors.ErrUnavailable (503 at the edge).
func (e edgeSessions) Do(ctx context.Context, req *calendarv1.SessionRequest) (*calendarv1.SessionReply, error) {
	rep, err := e.sessions.Do(ctx, req)
	if rep != nil {
		return rep, nil
	}
	return nil, fmt.Errorf("%w: %w", actors.ErrUnavailable, err)
}

// ClientNotes unseals every note of clientID this jurisdiction holds, for the
// client's export: one reply per session with its booking, text and time. An
// erased client has none. The edge's "export" audit record covers the read.
func (e edgeSessions) ClientNotes(ctx context.Context, clientID string) ([]*calendarv1.SessionReply, error) {
	sealed, err := e.store.ClientNotes(ctx, clientID)
	if err != nil {
		return nil, err
	}
	if len(sealed) == 0 {
		return nil, nil
	}
	notes, err := e.sessions.ClientNotes(ctx, clientID, sealed)
	switch {
	case errors.Is(err, session.ErrErased):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%w: %w", actors.ErrUnavailable, err)
	}
	out := make([]*calendarv1.SessionReply, 0, len(notes))
	for _, n := range notes {
		b, err := e.store.Booking(ctx, n.BookingID)
		if err != nil {
			return nil, err
		}
		out = append(out, &calendarv1.SessionReply{Booking: b, Notes: n.Text, NotesUpdatedAtMs: n.UpdatedAtMs})
	}
	return out, nil
}

var (
	_ session.Store = (*storage.Store)(nil)
	_ edge.Sessions = edgeSessions{}
)
