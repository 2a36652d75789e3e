package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/barberpro/edge/actors/internal/activation"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/reqtrace"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/storage/seal"
	"google.golang.org/protobuf/proto"
)

// Roles of the callers a session actor tells apart (security.md's token roles).
const (
	roleClient   = "client"
	roleProvider = "provider"
	roleOperator = "operator"
)

// Audit actions of the session requests.
const (
	actionSessionRead = "session.read"
	actionSessionMove = "session.move"
	actionNotesRead   = "notes.read"
	actionNotesWrite  = "notes.write"
)

// linearizer is a Store that can wait until its replica applied every write
// committed before the call (*storage.Store can); the actor then reads after it.
type linearizer interface {
	LinearizableRead(ctx context.Context) error
}

// sessionActor serves the requests of one session, one at a time: the store
// calls of a request run inside Receive, so the requests of one session are
// serialized in arrival order.
type sessionActor struct {
	s         *Sessions
	cfg       *Config
	bookingID string      // "" until a grain's ClusterInit
	dir       activations // nil for cluster grains
	log       *slog.Logger
	stopSent  bool
	// rctx is the context of the request being served (its request id and
	// trace: activation.Traced), nil between requests; log with lctx().
	rctx context.Context
}

// lctx is the context of the actor's log lines: the request's being served
// (its request id and trace reach the line through reqtrace.Handler), else none.
func (a *sessionActor) lctx() context.Context {
	if a.rctx != nil {
		return a.rctx
	}
	return context.Background()
}

func newSessionActor(s *Sessions, bookingID string, dir activations) *sessionActor {
	// Logs name no booking (security.md: logs carry no ids of people's records).
	return &sessionActor{s: s, cfg: &s.cfg, bookingID: bookingID, dir: dir, log: reqtrace.Logger(s.cfg.Logger).With(slog.String("component", "session"))}
}

// Receive implements actor.Actor.
func (a *sessionActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.SetReceiveTimeout(a.s.idle)
	case *cluster.ClusterInit:
		a.bookingID = m.Identity.GetIdentity()
	case *actor.ReceiveTimeout:
		a.retire(ctx)
	case *retireNow:
		if !a.stopSent {
			a.stopSent = true
			ctx.Stop(ctx.Self())
		}
	case *actor.Stopped:
		if a.dir != nil {
			a.dir.Stopped(a.bookingID, ctx.Self())
		}
	case *calendarv1.SessionRequest:
		a.rctx = activation.Traced(context.Background(), m)
		a.log.DebugContext(a.rctx, "session request", slog.String("action", actionOf(m)))
		rep := a.serve(m)
		a.rctx = nil
		if ctx.Sender() != nil {
			ctx.Respond(rep)
		}
	}
}

// retire asks the directory to stop routing here; retireNow arrives after every
// request already routed to this actor.
func (a *sessionActor) retire(ctx actor.Context) {
	activation.Retire(ctx, a.dir, a.bookingID)
}

func (a *sessionActor) nowMs() int64 { return a.cfg.Clock().UnixMilli() }

// serve answers one request and appends its audit record, unless the command it
// proposed carried the record already. A successful read is answered only once
// its record committed; a refusal is answered even if its record could not be
// written (it discloses nothing), and the failure is logged.
func (a *sessionActor) serve(req *calendarv1.SessionRequest) *calendarv1.SessionReply {
	ctx, cancel := context.WithTimeout(a.lctx(), a.cfg.RequestTimeout) // the request's ids, for the store's log lines
	defer cancel()
	id := req.GetBookingId()
	if a.bookingID != "" && id != a.bookingID {
		return errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID,
			"request for session %q reached the session %q", id, a.bookingID)
	}
	action := actionOf(req)
	if action == "" || id == "" {
		return errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "the request names no session or no operation")
	}
	rec := &bookingv1.AuditRecord{
		Subject: req.GetSubject(),
		Role:    req.GetRole(),
		Action:  action,
		Object:  id,
		Node:    cmp.Or(req.GetNode(), a.cfg.Node),
	}
	rep, carried := a.handle(ctx, req, rec)
	if carried {
		return rep
	}
	outcome := outcomeOf(rep.GetError())
	if err := a.appendAudit(ctx, rec, outcome); err != nil {
		a.log.WarnContext(a.lctx(), "session audit record not written", slog.String("action", action),
			slog.String("outcome", outcome), slog.Any("error", err))
		if rep.GetError() == calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED {
			code := calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE
			if errors.Is(err, storage.ErrStorageUnavailable) {
				code = calendarv1.ErrorCode_ERROR_CODE_STORAGE_UNAVAILABLE
			}
			return errReply(code, "the audit record of this read could not be written: %v", err)
		}
	}
	return rep
}

// actionOf is the audit action of req's operation ("" for none).
func actionOf(req *calendarv1.SessionRequest) string {
	switch req.GetOp().(type) {
	case *calendarv1.SessionRequest_Get:
		return actionSessionRead
	case *calendarv1.SessionRequest_Move:
		return actionSessionMove
	case *calendarv1.SessionRequest_PutNotes:
		return actionNotesWrite
	case *calendarv1.SessionRequest_GetNotes:
		return actionNotesRead
	}
	return ""
}

// outcomeOf is the audit outcome of a reply's error code (the FSM's short names
// for the codes it shares with the store).
func outcomeOf(code calendarv1.ErrorCode) string {
	switch code {
	case calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED:
		return "ok"
	case calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND:
		return "not_found"
	case calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN:
		return "forbidden"
	case calendarv1.ErrorCode_ERROR_CODE_ERASED:
		return "erased"
	case calendarv1.ErrorCode_ERROR_CODE_INVALID:
		return "invalid"
	case calendarv1.ErrorCode_ERROR_CODE_INVALID_TRANSITION:
		return "invalid_transition"
	case calendarv1.ErrorCode_ERROR_CODE_STORAGE_UNAVAILABLE:
		return "storage_unavailable"
	default:
		return "unavailable"
	}
}

// appendAudit proposes an AppendAudit command carrying rec with outcome.
func (a *sessionActor) appendAudit(ctx context.Context, rec *bookingv1.AuditRecord, outcome string) error {
	r := proto.Clone(rec).(*bookingv1.AuditRecord)
	r.Outcome = outcome
	res, err := a.cfg.Store.Propose(ctx, &bookingv1.Command{
		ProposedAtMs: a.nowMs(),
		Audit:        []*bookingv1.AuditRecord{r},
		Op:           &bookingv1.Command_AppendAudit{AppendAudit: &bookingv1.AppendAudit{}},
	})
	if err != nil {
		return err
	}
	if res.GetCode() != bookingv1.ResultCode_RESULT_CODE_OK {
		return fmt.Errorf("append audit: %s", res.GetCode())
	}
	return nil
}

// handle serves req; carried reports whether a proposed command carried the
// audit record (the FSM appended it, or its fate is unknown).
func (a *sessionActor) handle(ctx context.Context, req *calendarv1.SessionRequest, rec *bookingv1.AuditRecord) (rep *calendarv1.SessionReply, carried bool) {
	if l, ok := a.cfg.Store.(linearizer); ok {
		// The local replica may trail the leader (this session's last write was
		// applied there first): read only once it caught up.
		if err := l.LinearizableRead(ctx); err != nil {
			a.log.WarnContext(a.lctx(), "session: the store cannot catch up with its leader", slog.Any("error", err))
			return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store: %v", err), false
		}
	}
	b, err := a.cfg.Store.Booking(ctx, req.GetBookingId())
	if err != nil && !isNotFound(err) {
		a.log.WarnContext(a.lctx(), "session: booking lookup failed", slog.Any("error", err))
		return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store: %v", err), false
	}
	if err != nil || b == nil || b.GetSessionStatus() == bookingv1.SessionStatus_SESSION_STATUS_UNSPECIFIED {
		return errReply(calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND, "no session %s", req.GetBookingId()), false
	}
	treating := req.GetRole() == roleProvider && req.GetSubject() != "" && req.GetSubject() == b.GetProviderId()
	switch op := req.GetOp().(type) {
	case *calendarv1.SessionRequest_Get:
		owner := req.GetRole() == roleClient && req.GetSubject() != "" && req.GetSubject() == b.GetClientId()
		if !treating && !owner && req.GetRole() != roleOperator {
			return forbidden("only the session's client, its provider or an operator may read it"), false
		}
		return &calendarv1.SessionReply{Booking: b}, false
	case *calendarv1.SessionRequest_Move:
		if !treating {
			return forbidden("only the treating provider may move the session"), false
		}
		return a.move(ctx, b, op.Move.GetStatus(), rec)
	case *calendarv1.SessionRequest_PutNotes:
		if !treating {
			return forbidden("only the treating provider may write the session's notes"), false
		}
		return a.putNotes(ctx, b, op.PutNotes.GetText(), rec)
	case *calendarv1.SessionRequest_GetNotes:
		if !treating {
			return forbidden("only the treating provider may read the session's notes"), false
		}
		return a.getNotes(ctx, b), false
	}
	return errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "unknown session operation"), false
}

func forbidden(detail string) *calendarv1.SessionReply {
	return &calendarv1.SessionReply{Error: calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN, Detail: detail}
}

// legalMove reports whether a session may move from → to (SetSessionStatus's
// rules, without cancelled: that is the booking's cancel).
func legalMove(from, to bookingv1.SessionStatus) bool {
	switch from {
	case bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED:
		return to == bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN || to == bookingv1.SessionStatus_SESSION_STATUS_NO_SHOW
	case bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN:
		return to == bookingv1.SessionStatus_SESSION_STATUS_COMPLETED
	}
	return false
}

// statusName is a session status as the API spells it ("checked_in").
func statusName(s bookingv1.SessionStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SESSION_STATUS_"))
}

func (a *sessionActor) move(ctx context.Context, b *bookingv1.Booking, to bookingv1.SessionStatus, rec *bookingv1.AuditRecord) (*calendarv1.SessionReply, bool) {
	switch to {
	case bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN, bookingv1.SessionStatus_SESSION_STATUS_COMPLETED,
		bookingv1.SessionStatus_SESSION_STATUS_NO_SHOW:
	default:
		return errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID,
			"a session moves only to checked_in, completed or no_show, not %s", statusName(to)), false
	}
	from := b.GetSessionStatus()
	if from == to {
		// Already there: a retried move has one effect.
		return &calendarv1.SessionReply{Booking: b}, false
	}
	if !legalMove(from, to) {
		return errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID_TRANSITION,
			"a %s session cannot move to %s", statusName(from), statusName(to)), false
	}
	res, err := a.cfg.Store.Propose(ctx, &bookingv1.Command{
		ProposedAtMs: a.nowMs(),
		Audit:        []*bookingv1.AuditRecord{proto.Clone(rec).(*bookingv1.AuditRecord)},
		Op: &bookingv1.Command_SetSessionStatus{SetSessionStatus: &bookingv1.SetSessionStatus{
			BookingId: b.GetId(), Status: to,
		}},
	})
	if code, detail := a.verdict(res, err, true); code != calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return errReply(code, "%s", detail), true
	}
	nb := res.GetBooking()
	if nb == nil {
		nb = proto.Clone(b).(*bookingv1.Booking)
		nb.SessionStatus = to
	}
	return &calendarv1.SessionReply{Booking: nb}, true
}

func (a *sessionActor) putNotes(ctx context.Context, b *bookingv1.Booking, text string, rec *bookingv1.AuditRecord) (*calendarv1.SessionReply, bool) {
	if a.cfg.KEK == nil {
		return noKEK(), false
	}
	if len(text) > MaxNoteBytes {
		return errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID,
			"notes are %d bytes, more than the %d allowed", len(text), MaxNoteBytes), false
	}
	if rep := a.erased(ctx, b, ""); rep != nil {
		return rep, false
	}
	// The write says which version it replaces (read after the request's
	// linearizable read): one held up in a stale activation — this node
	// paused while the session moved on — is refused instead of overwriting
	// notes written since.
	cur, err := a.cfg.Store.Note(ctx, b.GetId())
	if err != nil && !isNotFound(err) {
		a.log.WarnContext(a.lctx(), "session: notes lookup failed", slog.Any("error", err))
		return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store: the notes cannot be read now"), false
	}
	dk, rep := a.dataKey(ctx, b.GetClientId())
	if rep != nil {
		return rep, false
	}
	defer dk.Wipe()
	plain := []byte(text)
	sn, err := dk.SealNote(b.GetId(), b.GetClientId(), plain)
	clear(plain)
	if err != nil {
		a.log.ErrorContext(a.lctx(), "session: sealing notes failed", slog.Any("error", err))
		return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "the notes could not be sealed"), false
	}
	sn.ProviderId = b.GetProviderId()
	sn.UpdatedAtMs = a.nowMs()
	res, err := a.cfg.Store.Propose(ctx, &bookingv1.Command{
		ProposedAtMs: sn.GetUpdatedAtMs(),
		Audit:        []*bookingv1.AuditRecord{proto.Clone(rec).(*bookingv1.AuditRecord)},
		Op:           &bookingv1.Command_PutNote{PutNote: &bookingv1.PutNote{Note: sn, ExpectedVersion: cur.GetVersion()}},
	})
	if code, detail := a.verdict(res, err, false); code != calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		return errReply(code, "%s", detail), true
	}
	updated := sn.GetUpdatedAtMs()
	if n := res.GetNote(); n != nil && n.GetUpdatedAtMs() != 0 {
		updated = n.GetUpdatedAtMs()
	}
	return &calendarv1.SessionReply{Booking: b, Notes: text, NotesUpdatedAtMs: updated}, true
}

func (a *sessionActor) getNotes(ctx context.Context, b *bookingv1.Booking) *calendarv1.SessionReply {
	if a.cfg.KEK == nil {
		return noKEK()
	}
	if rep := a.erased(ctx, b, ""); rep != nil {
		return rep
	}
	n, err := a.cfg.Store.Note(ctx, b.GetId())
	if err != nil && !isNotFound(err) {
		a.log.WarnContext(a.lctx(), "session: notes lookup failed", slog.Any("error", err))
		return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store: the notes cannot be read now")
	}
	if err != nil || n == nil {
		return &calendarv1.SessionReply{Booking: b} // no notes yet
	}
	if n.GetClientId() != b.GetClientId() || n.GetBookingId() != b.GetId() {
		a.log.ErrorContext(a.lctx(), "session: stored notes name another client or session than their booking")
		return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "the stored notes do not belong to this session")
	}
	ck, err := a.cfg.Store.ClientKey(ctx, b.GetClientId())
	if err != nil && !isNotFound(err) {
		a.log.WarnContext(a.lctx(), "session: client key lookup failed")
		return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store: the data key cannot be read now")
	}
	if err != nil || ck == nil {
		// Notes without a key: an erasure is being applied, or the store is damaged.
		if rep := a.erased(ctx, b, n.GetKeyId()); rep != nil {
			return rep
		}
		a.log.ErrorContext(a.lctx(), "session: notes stored without their client's data key")
		return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "the notes' data key is missing")
	}
	if ck.GetKeyId() != n.GetKeyId() {
		a.log.ErrorContext(a.lctx(), "session: notes sealed under another key than their client's")
		return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "the notes were sealed under another data key")
	}
	dk, rep := a.unwrap(ck)
	if rep != nil {
		return rep
	}
	defer dk.Wipe()
	plain, err := dk.OpenNote(n)
	if err != nil {
		a.log.ErrorContext(a.lctx(), "session: notes cannot be opened", slog.Any("error", err))
		return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "the notes cannot be opened")
	}
	text := string(plain)
	clear(plain)
	return &calendarv1.SessionReply{Booking: b, Notes: text, NotesUpdatedAtMs: n.GetUpdatedAtMs()}
}

func noKEK() *calendarv1.SessionReply {
	return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "this node holds no key-encryption key: notes are unavailable here")
}

func erasedReply() *calendarv1.SessionReply {
	return errReply(calendarv1.ErrorCode_ERROR_CODE_ERASED, "the client's health data was erased")
}

// erased answers ERASED when the session's health data was erased: the booking
// says so (it existed when an erasure was applied), or, for keyID (a note's or
// data key's id; "" for none), the KEK's ledger lists (client, keyID) or the
// store's Erasure names keyID. An erasure covers the data that existed when it
// was applied: a session booked after it, under a new data key, is not erased.
// It is an error reply when the store cannot say, and nil otherwise.
func (a *sessionActor) erased(ctx context.Context, b *bookingv1.Booking, keyID string) *calendarv1.SessionReply {
	if b.GetErased() || (keyID != "" && a.cfg.KEK.Erased(b.GetClientId(), keyID)) {
		return erasedReply()
	}
	if keyID == "" {
		return nil
	}
	e, err := a.cfg.Store.Erasure(ctx, b.GetClientId())
	switch {
	case err == nil && e != nil && slices.Contains(e.GetKeyIds(), keyID):
		return erasedReply()
	case err == nil || isNotFound(err):
		return nil
	default:
		a.log.WarnContext(a.lctx(), "session: erasure lookup failed")
		return errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store: the erasure record cannot be read now")
	}
}

// dataKey returns the client's data key, creating and storing one if the client
// has none yet; the key the store answers with wins (two sessions of one client
// may create keys at once). The caller wipes it.
func (a *sessionActor) dataKey(ctx context.Context, clientID string) (*seal.DataKey, *calendarv1.SessionReply) {
	ck, err := a.cfg.Store.ClientKey(ctx, clientID)
	if err != nil && !isNotFound(err) {
		a.log.WarnContext(a.lctx(), "session: client key lookup failed")
		return nil, errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store: the data key cannot be read now")
	}
	if err == nil && ck != nil {
		return a.unwrap(ck)
	}
	dk, nk, err := a.cfg.KEK.NewDataKey(clientID)
	if err != nil {
		a.log.ErrorContext(a.lctx(), "session: creating a data key failed", slog.Any("error", err))
		return nil, errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "a data key could not be created")
	}
	nk.CreatedAtMs = a.nowMs()
	res, err := a.cfg.Store.Propose(ctx, &bookingv1.Command{
		ProposedAtMs: nk.GetCreatedAtMs(),
		Op:           &bookingv1.Command_PutClientKey{PutClientKey: &bookingv1.PutClientKey{Key: nk}},
	})
	if code, detail := a.verdict(res, err, false); code != calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		dk.Wipe()
		return nil, errReply(code, "%s", detail)
	}
	got := res.GetKey()
	if got == nil || got.GetKeyId() == nk.GetKeyId() {
		return dk, nil
	}
	dk.Wipe() // another key was stored first: use that one
	return a.unwrap(got)
}

// unwrap unwraps the client's data key with the KEK.
func (a *sessionActor) unwrap(ck *bookingv1.ClientKey) (*seal.DataKey, *calendarv1.SessionReply) {
	dk, err := a.cfg.KEK.Unwrap(ck)
	if errors.Is(err, seal.ErrErased) {
		return nil, erasedReply()
	}
	if err != nil {
		a.log.ErrorContext(a.lctx(), "session: a data key cannot be unwrapped", slog.Any("error", err))
		return nil, errReply(calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "the client's data key cannot be unwrapped on this node")
	}
	return dk, nil
}

// verdict reads Propose's answer: code UNSPECIFIED means OK. withDetail passes
// the FSM's detail on (commands about sessions); commands about keys and notes
// get the result code's name only, so no client id can leak into an answer.
func (a *sessionActor) verdict(res *bookingv1.CommandResult, err error, withDetail bool) (calendarv1.ErrorCode, string) {
	if res != nil && res.GetCode() != bookingv1.ResultCode_RESULT_CODE_UNSPECIFIED {
		var code calendarv1.ErrorCode
		switch res.GetCode() {
		case bookingv1.ResultCode_RESULT_CODE_OK:
			return calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, ""
		case bookingv1.ResultCode_RESULT_CODE_NOT_FOUND:
			code = calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND
		case bookingv1.ResultCode_RESULT_CODE_INVALID_TRANSITION:
			code = calendarv1.ErrorCode_ERROR_CODE_INVALID_TRANSITION
		case bookingv1.ResultCode_RESULT_CODE_ERASED:
			code = calendarv1.ErrorCode_ERROR_CODE_ERASED
		case bookingv1.ResultCode_RESULT_CODE_INVALID, bookingv1.ResultCode_RESULT_CODE_ALREADY_EXISTS,
			bookingv1.ResultCode_RESULT_CODE_IDEMPOTENCY_MISMATCH:
			code = calendarv1.ErrorCode_ERROR_CODE_INVALID
		default:
			code = calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE
		}
		detail := "store: " + strings.ToLower(strings.TrimPrefix(res.GetCode().String(), "RESULT_CODE_"))
		if withDetail && res.GetDetail() != "" {
			detail = res.GetDetail()
		}
		return code, detail
	}
	if err != nil {
		a.log.WarnContext(a.lctx(), "session: proposal failed", slog.Any("error", err))
		if errors.Is(err, storage.ErrStorageUnavailable) {
			return calendarv1.ErrorCode_ERROR_CODE_STORAGE_UNAVAILABLE, "store: " + err.Error()
		}
		return calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store: " + err.Error()
	}
	return calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, "store returned no result"
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
