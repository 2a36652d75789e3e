package edge

import (
	"context"
	"errors"
	"net/http"
	"unicode/utf8"

	"github.com/barberpro/edge/edge/auth"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/topology"
)

// Sessions (psychology.md, "Sessions"): each booking of a vertical with sessions
// is a session, served by its session actor in the home jurisdiction (the
// booking id routes the request there). The edge reads the booking from the
// local store to know its vertical and who may ask; the actor checks the
// caller again, seals and unseals notes, and audits what it answers. Refusals
// the edge decides itself (a role that may not, a provider who does not treat
// the client) are audited here, in the booking's home store.

// maxNoteBytes bounds a session's notes.
const maxNoteBytes = 64 << 10

// sessionOut is a session in an answer.
type sessionOut struct {
	BookingID  string `json:"booking_id"`
	Status     string `json:"status"`
	ProviderID string `json:"provider_id"`
	ClientID   string `json:"client_id"`
	ServiceID  string `json:"service_id"`
	Start      string `json:"start"`
	End        string `json:"end"`
	Erased     bool   `json:"erased,omitempty"`
}

// notesIn is the body of PUT /v1/sessions/{id}/notes.
type notesIn struct {
	Text *string `json:"text"`
}

// notesOut is the answer of the notes routes.
type notesOut struct {
	BookingID string `json:"booking_id"`
	Text      string `json:"text"`
	UpdatedAt string `json:"updated_at,omitempty"`
}

// sessionBooking reads the booking of a session route; refusals are audited as
// action. The read route (treatingOnly false) lets the booking's client and
// provider and operators: anyone else is answered 404 as for a missing booking,
// and only those may learn that a booking is not a session (404). The other
// routes let the treating provider alone: everyone else is answered 403 whether
// the session exists or not (no existence oracle), and a booking of a vertical
// without sessions is 404 for its own provider only.
func (s *Server) sessionBooking(ctx context.Context, id, action string, treatingOnly bool) (*bookingv1.Booking, topology.Vertical, error) {
	forbidden := errForbidden("only the treating provider may do this")
	b, err := s.readBooking(ctx, id)
	if err != nil {
		var ae *apiError
		if treatingOnly && errors.As(err, &ae) && ae.status == http.StatusNotFound {
			return nil, topology.Vertical{}, forbidden
		}
		return nil, topology.Vertical{}, err
	}
	v := s.vertical(b.GetVertical())
	c, _ := callerOf(ctx)
	treating := c.p.Role == auth.RoleProvider && c.p.Subject == b.GetProviderId()
	switch {
	case treatingOnly && !treating:
		return nil, v, s.refuse(ctx, v.Audit, action, id, forbidden)
	case !treatingOnly && !owns(ctx, b.GetClientId(), b.GetProviderId()):
		return nil, v, s.refuse(ctx, v.Audit, action, id, notFound("booking %q does not exist", id))
	case !v.Sessions:
		return nil, v, notFound("booking %q is not a session", id)
	}
	if err := s.checkBookingResidency(ctx, b, v); err != nil {
		return nil, v, err
	}
	return b, v, nil
}

// sessionDo sends req, with the caller and entry node, to the session actor and
// maps a refusal in its reply to its problem.
func (s *Server) sessionDo(ctx context.Context, req *calendarv1.SessionRequest) (*calendarv1.SessionReply, error) {
	if s.cfg.Sessions == nil {
		return nil, &apiError{http.StatusServiceUnavailable, CodeJurisdictionUnavailable, "sessions are not served on this node; retry", nil}
	}
	c, _ := callerOf(ctx)
	req.Subject, req.Role, req.Node = c.p.Subject, string(c.p.Role), c.node
	reply, err := s.cfg.Sessions.Do(ctx, req)
	if rerr := replyError(reply.GetError(), reply.GetDetail()); rerr != nil {
		return nil, rerr
	}
	if err != nil {
		return nil, err
	}
	return reply, nil
}

// getSession handles GET /v1/sessions/{id}.
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := r.PathValue("id")
	b, _, err := s.sessionBooking(ctx, id, "session.read", false)
	if err != nil {
		return err
	}
	reply, err := s.sessionDo(ctx, &calendarv1.SessionRequest{BookingId: id, Op: &calendarv1.SessionRequest_Get{Get: &calendarv1.GetSession{}}})
	if err != nil {
		return err
	}
	if reply.GetBooking() != nil {
		b = reply.GetBooking()
	}
	s.cacheFor(w, b.GetVertical())
	writeJSON(w, http.StatusOK, s.formatSession(ctx, b))
	return nil
}

// formatSession converts a session's booking, times in its provider's zone.
func (s *Server) formatSession(ctx context.Context, b *bookingv1.Booking) sessionOut {
	loc := s.providerZone(ctx, b.GetProviderId())
	status := sessionStatusName(b.GetSessionStatus())
	if status == "" {
		status = "scheduled"
	}
	if b.GetStatus() == bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
		status = "cancelled"
	}
	return sessionOut{BookingID: b.GetId(), Status: status, ProviderID: b.GetProviderId(), ClientID: b.GetClientId(),
		ServiceID: b.GetServiceId(), Start: formatInstant(b.GetStartMs(), loc), End: formatInstant(b.GetEndMs(), loc),
		Erased: b.GetErased()}
}

// moveSession returns the handler of POST /v1/sessions/{id}/<move>: the treating
// provider moves the session to status (illegal moves: 422). The body is
// optional and, when present, must be {}.
func (s *Server) moveSession(status bookingv1.SessionStatus) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		ctx := r.Context()
		var in struct{}
		if _, err := s.decodeBody(w, r, &in, true); err != nil {
			return err
		}
		id := r.PathValue("id")
		b, _, err := s.sessionBooking(ctx, id, "session.move", true)
		if err != nil {
			return err
		}
		reply, err := s.sessionDo(ctx, &calendarv1.SessionRequest{BookingId: id,
			Op: &calendarv1.SessionRequest_Move{Move: &calendarv1.MoveSession{Status: status}}})
		if err != nil {
			return err
		}
		if reply.GetBooking() != nil {
			b = reply.GetBooking()
		}
		writeJSON(w, http.StatusOK, s.formatSession(ctx, b))
		return nil
	}
}

// putNotes handles PUT /v1/sessions/{id}/notes (the treating provider): the
// session actor seals the text before anything is proposed.
func (s *Server) putNotes(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var in notesIn
	if _, err := s.decodeBody(w, r, &in, false); err != nil {
		return err
	}
	id := r.PathValue("id")
	b, v, err := s.sessionBooking(ctx, id, "notes.write", true)
	if err != nil {
		return err
	}
	if !v.EncryptedAtRest {
		return invalid("%s sessions take no notes: the vertical's data is not encrypted at rest", v.Name)
	}
	switch {
	case in.Text == nil:
		return invalid("text is required")
	case len(*in.Text) > maxNoteBytes:
		return invalid("text must have at most %d bytes", maxNoteBytes)
	case !utf8.ValidString(*in.Text):
		return invalid("text must be valid UTF-8")
	}
	reply, err := s.sessionDo(ctx, &calendarv1.SessionRequest{BookingId: id,
		Op: &calendarv1.SessionRequest_PutNotes{PutNotes: &calendarv1.PutNotes{Text: *in.Text}}})
	if err != nil {
		return err
	}
	return s.writeNotes(ctx, w, b, reply)
}

// getNotes handles GET /v1/sessions/{id}/notes (the treating provider).
func (s *Server) getNotes(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id := r.PathValue("id")
	b, v, err := s.sessionBooking(ctx, id, "notes.read", true)
	if err != nil {
		return err
	}
	if !v.EncryptedAtRest {
		return notFound("%s sessions have no notes", v.Name)
	}
	reply, err := s.sessionDo(ctx, &calendarv1.SessionRequest{BookingId: id,
		Op: &calendarv1.SessionRequest_GetNotes{GetNotes: &calendarv1.GetNotes{}}})
	if err != nil {
		return err
	}
	s.cacheFor(w, b.GetVertical())
	return s.writeNotes(ctx, w, b, reply)
}

// writeNotes answers a session's notes.
func (s *Server) writeNotes(ctx context.Context, w http.ResponseWriter, b *bookingv1.Booking, reply *calendarv1.SessionReply) error {
	out := notesOut{BookingID: b.GetId(), Text: reply.GetNotes()}
	if ms := reply.GetNotesUpdatedAtMs(); ms != 0 {
		out.UpdatedAt = formatInstant(ms, s.providerZone(ctx, b.GetProviderId()))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
