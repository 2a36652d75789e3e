package session_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/actors/session"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage/seal"
	"google.golang.org/protobuf/proto"
)

const (
	bookingID = "bk_ba_1"
	plainID   = "bk_ba_plain"
	provider  = "prv_ba_1"
	other     = "prv_ba_2"
	client    = "cli-ana"
	nodeID    = "node-ba-1"
)

var now = time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC)

func newKEK(t *testing.T) *seal.KEK {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kek.json")
	if _, err := seal.InitKEK(path); err != nil {
		t.Fatal(err)
	}
	k, err := seal.LoadKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type env struct {
	store *fakeStore
	kek   *seal.KEK
	s     *session.Sessions
	logs  *bytes.Buffer
}

func newEnv(t *testing.T, withKEK bool) *env {
	t.Helper()
	e := &env{store: newFakeStore(), logs: &bytes.Buffer{}}
	if withKEK {
		e.kek = newKEK(t)
	}
	e.store.put(&bookingv1.Booking{
		Id: bookingID, ProviderId: provider, ClientId: client, Vertical: "psychology",
		StartMs: now.Add(time.Hour).UnixMilli(), EndMs: now.Add(2 * time.Hour).UnixMilli(),
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED, SessionStatus: bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED,
	})
	e.store.put(&bookingv1.Booking{
		Id: plainID, ProviderId: provider, ClientId: client, Vertical: "barber",
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED,
	})
	s, err := session.New(session.Config{
		Store: e.store, KEK: e.kek, Node: nodeID, Clock: func() time.Time { return now },
		Logger:         slog.New(slog.NewTextHandler(io.MultiWriter(e.logs), &slog.HandlerOptions{Level: slog.LevelDebug})),
		RequestTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	e.s = s
	return e
}

type caller struct{ role, sub string }

var (
	owner       = caller{"client", client}
	otherClient = caller{"client", "cli-bob"}
	treating    = caller{"provider", provider}
	otherProv   = caller{"provider", other}
	operator    = caller{"operator", "op-1"}
	// spoofed claims the provider's id with the client role.
	spoofed = caller{"client", provider}
)

func get() *calendarv1.SessionRequest {
	return &calendarv1.SessionRequest{Op: &calendarv1.SessionRequest_Get{Get: &calendarv1.GetSession{}}}
}
func move(s bookingv1.SessionStatus) *calendarv1.SessionRequest {
	return &calendarv1.SessionRequest{Op: &calendarv1.SessionRequest_Move{Move: &calendarv1.MoveSession{Status: s}}}
}
func putNotes(text string) *calendarv1.SessionRequest {
	return &calendarv1.SessionRequest{Op: &calendarv1.SessionRequest_PutNotes{PutNotes: &calendarv1.PutNotes{Text: text}}}
}
func getNotes() *calendarv1.SessionRequest {
	return &calendarv1.SessionRequest{Op: &calendarv1.SessionRequest_GetNotes{GetNotes: &calendarv1.GetNotes{}}}
}

// do sends req as c for booking id and checks that exactly one audit record was
// appended, with the request's subject, role, node, object and the given
// action and outcome.
func (e *env) do(t *testing.T, c caller, id string, req *calendarv1.SessionRequest, action, outcome string) (*calendarv1.SessionReply, error) {
	t.Helper()
	req.BookingId, req.Subject, req.Role, req.Node = id, c.sub, c.role, "node-entry"
	before := e.store.auditLen()
	rep, err := e.s.Do(context.Background(), req)
	recs := e.store.auditSince(before)
	if len(recs) != 1 {
		t.Fatalf("%s as %s: %d audit records, want exactly 1: %v", action, c.role, len(recs), recs)
	}
	r := recs[0]
	if r.GetSubject() != c.sub || r.GetRole() != c.role || r.GetObject() != id || r.GetNode() != "node-entry" ||
		r.GetAction() != action || r.GetOutcome() != outcome {
		t.Fatalf("%s as %s/%s: audit record %v, want action %s outcome %s", action, c.role, c.sub, r, action, outcome)
	}
	return rep, err
}

func wantCode(t *testing.T, rep *calendarv1.SessionReply, err error, code calendarv1.ErrorCode, sentinel error) {
	t.Helper()
	if rep == nil {
		t.Fatalf("no reply (err %v), want %s", err, code)
	}
	if rep.GetError() != code {
		t.Fatalf("reply %s (%s), want %s", rep.GetError(), rep.GetDetail(), code)
	}
	if sentinel == nil && err != nil {
		t.Fatalf("err %v, want nil", err)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Fatalf("err %v, want %v", err, sentinel)
	}
}

func TestKind(t *testing.T) {
	if got := session.Kind("ar"); got != "session-ar" {
		t.Fatalf("Kind(ar) = %q", got)
	}
}

func TestNewNeedsStore(t *testing.T) {
	if _, err := session.New(session.Config{}); err == nil {
		t.Fatal("New without a Store succeeded")
	}
}

func TestAccessMatrix(t *testing.T) {
	e := newEnv(t, true)
	F := calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN
	OK := calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED
	cases := []struct {
		name    string
		c       caller
		req     func() *calendarv1.SessionRequest
		action  string
		want    calendarv1.ErrorCode
		outcome string
	}{
		{"owner reads session", owner, get, "session.read", OK, "ok"},
		{"owner reads notes", owner, getNotes, "notes.read", F, "forbidden"},
		{"owner writes notes", owner, func() *calendarv1.SessionRequest { return putNotes("x") }, "notes.write", F, "forbidden"},
		{"owner checks in", owner, func() *calendarv1.SessionRequest { return move(bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN) }, "session.move", F, "forbidden"},
		{"other client reads session", otherClient, get, "session.read", F, "forbidden"},
		{"other provider reads session", otherProv, get, "session.read", F, "forbidden"},
		{"other provider reads notes", otherProv, getNotes, "notes.read", F, "forbidden"},
		{"other provider writes notes", otherProv, func() *calendarv1.SessionRequest { return putNotes("x") }, "notes.write", F, "forbidden"},
		{"other provider checks in", otherProv, func() *calendarv1.SessionRequest { return move(bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN) }, "session.move", F, "forbidden"},
		{"operator reads session", operator, get, "session.read", OK, "ok"},
		{"operator reads notes", operator, getNotes, "notes.read", F, "forbidden"},
		{"operator writes notes", operator, func() *calendarv1.SessionRequest { return putNotes("x") }, "notes.write", F, "forbidden"},
		{"operator checks in", operator, func() *calendarv1.SessionRequest { return move(bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN) }, "session.move", F, "forbidden"},
		{"client role with the provider's id reads notes", spoofed, getNotes, "notes.read", F, "forbidden"},
		{"treating provider reads session", treating, get, "session.read", OK, "ok"},
		{"treating provider reads empty notes", treating, getNotes, "notes.read", OK, "ok"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := e.do(t, tc.c, bookingID, tc.req(), tc.action, tc.outcome)
			var sentinel error
			if tc.want == F {
				sentinel = session.ErrForbidden
			}
			wantCode(t, rep, err, tc.want, sentinel)
			if tc.want == OK && rep.GetBooking().GetId() != bookingID {
				t.Fatalf("reply booking %v", rep.GetBooking())
			}
			if tc.want == F && rep.GetBooking() != nil {
				t.Fatalf("a refusal carried the booking")
			}
		})
	}
	// A refused note write proposed nothing but its audit record.
	for _, c := range e.store.commandsSince(0) {
		if _, ok := c.GetOp().(*bookingv1.Command_AppendAudit); !ok {
			t.Fatalf("a refused or read-only request proposed %T", c.GetOp())
		}
	}
}

func TestNotFound(t *testing.T) {
	e := newEnv(t, true)
	for _, id := range []string{"bk_ba_nobody", plainID} {
		rep, err := e.do(t, treating, id, get(), "session.read", "not_found")
		wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND, session.ErrNotFound)
		rep, err = e.do(t, treating, id, putNotes("x"), "notes.write", "not_found")
		wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND, session.ErrNotFound)
	}
}

func TestInvalidRequests(t *testing.T) {
	e := newEnv(t, true)
	rep, err := e.s.Do(context.Background(), &calendarv1.SessionRequest{Subject: provider, Role: "provider", Op: get().Op})
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_INVALID, session.ErrInvalid)
	rep, err = e.s.Do(context.Background(), &calendarv1.SessionRequest{BookingId: bookingID, Subject: provider, Role: "provider"})
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_INVALID, session.ErrInvalid)
}

func TestMoves(t *testing.T) {
	S := bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED
	CI := bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN
	C := bookingv1.SessionStatus_SESSION_STATUS_COMPLETED
	NS := bookingv1.SessionStatus_SESSION_STATUS_NO_SHOW
	X := bookingv1.SessionStatus_SESSION_STATUS_CANCELLED
	OK := calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED
	IT := calendarv1.ErrorCode_ERROR_CODE_INVALID_TRANSITION
	IV := calendarv1.ErrorCode_ERROR_CODE_INVALID
	cases := []struct {
		from, to bookingv1.SessionStatus
		want     calendarv1.ErrorCode
		proposes bool
	}{
		{S, CI, OK, true},
		{S, NS, OK, true},
		{CI, C, OK, true},
		{S, C, IT, false},
		{CI, NS, IT, false},
		{C, CI, IT, false},
		{NS, CI, IT, false},
		{X, CI, IT, false},
		{C, NS, IT, false},
		{CI, CI, OK, false}, // already there: a retried move has one effect
		{S, S, IV, false},   // not a target of a move
		{S, X, IV, false},   // cancelling is the booking's cancel
	}
	for _, tc := range cases {
		t.Run(tc.from.String()+"→"+tc.to.String(), func(t *testing.T) {
			e := newEnv(t, true)
			b, _ := e.store.Booking(context.Background(), bookingID)
			b.SessionStatus = tc.from
			e.store.put(b)
			outcome := map[calendarv1.ErrorCode]string{OK: "ok", IT: "invalid_transition", IV: "invalid"}[tc.want]
			cmds := e.store.cmdLen()
			rep, err := e.do(t, treating, bookingID, move(tc.to), "session.move", outcome)
			var sentinel error
			switch tc.want {
			case IT:
				sentinel = session.ErrInvalidTransition
			case IV:
				sentinel = session.ErrInvalid
			}
			wantCode(t, rep, err, tc.want, sentinel)
			stored, _ := e.store.Booking(context.Background(), bookingID)
			if tc.want == OK {
				if rep.GetBooking().GetSessionStatus() != tc.to || stored.GetSessionStatus() != tc.to {
					t.Fatalf("session is %s (reply %s), want %s", stored.GetSessionStatus(), rep.GetBooking().GetSessionStatus(), tc.to)
				}
			} else if stored.GetSessionStatus() != tc.from {
				t.Fatalf("a refused move changed the session to %s", stored.GetSessionStatus())
			}
			var set []*bookingv1.Command
			for _, c := range e.store.commandsSince(cmds) {
				if c.GetSetSessionStatus() != nil {
					set = append(set, c)
				}
			}
			if tc.proposes != (len(set) == 1) || len(set) > 1 {
				t.Fatalf("%d SetSessionStatus commands proposed, want proposes=%v", len(set), tc.proposes)
			}
			if len(set) == 1 {
				a := set[0].GetAudit()
				if len(a) != 1 || a[0].GetOutcome() != "" || a[0].GetAction() != "session.move" {
					t.Fatalf("the move carried audit %v, want one session.move record with outcome \"\"", a)
				}
				if set[0].GetProposedAtMs() != now.UnixMilli() {
					t.Fatalf("proposed_at_ms %d", set[0].GetProposedAtMs())
				}
			}
		})
	}
}

// TestMoveRefusedByStore: a move memory judged legal that the FSM refuses
// answers the FSM's verdict, and its audit record (on the command) says so.
func TestMoveRefusedByStore(t *testing.T) {
	e := newEnv(t, true)
	e.store.beforePropose = func(cmd *bookingv1.Command) error {
		if cmd.GetSetSessionStatus() != nil { // another activation moved it first
			b, _ := e.store.Booking(context.Background(), bookingID)
			b.SessionStatus = bookingv1.SessionStatus_SESSION_STATUS_NO_SHOW
			e.store.put(b)
		}
		return nil
	}
	rep, err := e.do(t, treating, bookingID, move(bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN), "session.move", "invalid_transition")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_INVALID_TRANSITION, session.ErrInvalidTransition)
}

const marker = "MARKER-7f3a-the-client-said-something-private"

func TestNotesRoundTrip(t *testing.T) {
	e := newEnv(t, true)
	text := "Sesión 1: " + marker + " — ñandú"
	rep, err := e.do(t, treating, bookingID, putNotes(text), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	if rep.GetNotes() != text || rep.GetNotesUpdatedAtMs() != now.UnixMilli() {
		t.Fatalf("put reply notes %q at %d", rep.GetNotes(), rep.GetNotesUpdatedAtMs())
	}
	rep, err = e.do(t, treating, bookingID, getNotes(), "notes.read", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	if rep.GetNotes() != text || rep.GetNotesUpdatedAtMs() != now.UnixMilli() {
		t.Fatalf("get reply notes %q at %d", rep.GetNotes(), rep.GetNotesUpdatedAtMs())
	}
	// Replace them: the same data key is used (one PutClientKey in all).
	text2 := "Sesión 1, corregida: " + marker
	rep, err = e.do(t, treating, bookingID, putNotes(text2), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	rep, err = e.do(t, treating, bookingID, getNotes(), "notes.read", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	if rep.GetNotes() != text2 {
		t.Fatalf("notes %q after replacing, want %q", rep.GetNotes(), text2)
	}
	var keys, notes int
	for _, c := range e.store.commandsSince(0) {
		switch op := c.GetOp().(type) {
		case *bookingv1.Command_PutClientKey:
			keys++
			if op.PutClientKey.GetKey().GetCreatedAtMs() != now.UnixMilli() || op.PutClientKey.GetKey().GetKekId() != e.kek.ID() {
				t.Fatalf("client key %v", op.PutClientKey.GetKey())
			}
			if len(c.GetAudit()) != 0 {
				t.Fatalf("PutClientKey carried audit records: the note's write carries the one record")
			}
		case *bookingv1.Command_PutNote:
			notes++
			n := op.PutNote.GetNote()
			if n.GetBookingId() != bookingID || n.GetClientId() != client || n.GetProviderId() != provider ||
				n.GetUpdatedAtMs() != now.UnixMilli() || len(n.GetNonce()) == 0 || len(n.GetCiphertext()) == 0 {
				t.Fatalf("sealed note %v", n)
			}
			if a := c.GetAudit(); len(a) != 1 || a[0].GetOutcome() != "" || a[0].GetAction() != "notes.write" {
				t.Fatalf("PutNote carried audit %v", a)
			}
		}
	}
	if keys != 1 || notes != 2 {
		t.Fatalf("%d PutClientKey and %d PutNote proposed, want 1 and 2", keys, notes)
	}
	// No proposed command holds the text, plain or base64, nor the plain data key.
	for i, raw := range e.store.proposed {
		for _, needle := range [][]byte{[]byte(marker), []byte(base64.StdEncoding.EncodeToString([]byte(marker)))} {
			if bytes.Contains(raw, needle) {
				t.Fatalf("proposed command %d holds the note text", i)
			}
		}
	}
	if strings.Contains(e.logs.String(), marker) || strings.Contains(e.logs.String(), client) {
		t.Fatalf("logs hold note text or a client id:\n%s", e.logs.String())
	}
}

// TestNotesFirstKeyWins: another session of the client stored a data key
// between the lookup and the proposal; the note is sealed under that key.
func TestNotesFirstKeyWins(t *testing.T) {
	e := newEnv(t, true)
	var first *bookingv1.ClientKey
	e.store.beforePropose = func(cmd *bookingv1.Command) error {
		if cmd.GetPutClientKey() != nil && first == nil {
			dk, ck, err := e.kek.NewDataKey(client)
			if err != nil {
				return err
			}
			dk.Wipe()
			first = ck
			e.store.mu.Lock()
			e.store.keys[client] = ck
			e.store.mu.Unlock()
		}
		return nil
	}
	rep, err := e.do(t, treating, bookingID, putNotes(marker), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	n, _ := e.store.Note(context.Background(), bookingID)
	if n.GetKeyId() != first.GetKeyId() {
		t.Fatalf("note sealed under %s, want the first key %s", n.GetKeyId(), first.GetKeyId())
	}
	rep, err = e.do(t, treating, bookingID, getNotes(), "notes.read", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	if rep.GetNotes() != marker {
		t.Fatalf("notes %q", rep.GetNotes())
	}
}

func TestNotesLimit(t *testing.T) {
	e := newEnv(t, true)
	rep, err := e.do(t, treating, bookingID, putNotes(strings.Repeat("a", session.MaxNoteBytes+1)), "notes.write", "invalid")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_INVALID, session.ErrInvalid)
	rep, err = e.do(t, treating, bookingID, putNotes(strings.Repeat("a", session.MaxNoteBytes)), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
}

func TestErased(t *testing.T) {
	e := newEnv(t, true)
	rep, err := e.do(t, treating, bookingID, putNotes(marker), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	e.store.erase(client)
	rep, err = e.do(t, treating, bookingID, getNotes(), "notes.read", "erased")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_ERASED, session.ErrErased)
	if rep.GetNotes() != "" {
		t.Fatal("an erased answer carried notes")
	}
	rep, err = e.do(t, treating, bookingID, putNotes("again"), "notes.write", "erased")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_ERASED, session.ErrErased)
	// The session itself stays readable: dates and provider, marked erased.
	rep, err = e.do(t, owner, bookingID, get(), "session.read", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	if !rep.GetBooking().GetErased() {
		t.Fatal("the erased session's booking does not say erased")
	}
	// Others still get FORBIDDEN, not ERASED.
	rep, err = e.do(t, operator, bookingID, getNotes(), "notes.read", "forbidden")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN, session.ErrForbidden)
}

// TestErasedByLedger: the KEK's erasure ledger refuses the client's key even
// when the store still holds it (a backup restored from before the erasure).
func TestErasedByLedger(t *testing.T) {
	e := newEnv(t, true)
	rep, err := e.do(t, treating, bookingID, putNotes(marker), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	ck, _ := e.store.ClientKey(context.Background(), client)
	if err := e.kek.RecordErasure(client, ck.GetKeyId()); err != nil {
		t.Fatal(err)
	}
	rep, err = e.do(t, treating, bookingID, getNotes(), "notes.read", "erased")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_ERASED, session.ErrErased)
	// The ledger names the erased key, not the client: the export of the
	// notes sealed under it is refused.
	n, _ := e.store.Note(context.Background(), bookingID)
	if _, err := e.s.ClientNotes(context.Background(), client, []*bookingv1.SealedNote{n}); !errors.Is(err, session.ErrErased) {
		t.Fatalf("ClientNotes of an erased client: %v", err)
	}
}

func TestNoKEK(t *testing.T) {
	e := newEnv(t, false)
	rep, err := e.do(t, treating, bookingID, putNotes(marker), "notes.write", "unavailable")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, session.ErrUnavailable)
	rep, err = e.do(t, treating, bookingID, getNotes(), "notes.read", "unavailable")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, session.ErrUnavailable)
	rep, err = e.do(t, treating, bookingID, get(), "session.read", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	rep, err = e.do(t, operator, bookingID, getNotes(), "notes.read", "forbidden")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN, session.ErrForbidden)
}

// TestReadNeedsItsAuditRecord: a read whose audit record cannot be written is
// not answered with data; a refusal is still a refusal.
func TestReadNeedsItsAuditRecord(t *testing.T) {
	e := newEnv(t, true)
	rep, err := e.do(t, treating, bookingID, putNotes(marker), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	down := errors.New("no leader")
	e.store.beforePropose = func(cmd *bookingv1.Command) error {
		if cmd.GetAppendAudit() != nil {
			return down
		}
		return nil
	}
	for _, req := range []*calendarv1.SessionRequest{get(), getNotes()} {
		req.BookingId, req.Subject, req.Role = bookingID, provider, "provider"
		rep, err := e.s.Do(context.Background(), req)
		wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, session.ErrUnavailable)
		if rep.GetBooking() != nil || rep.GetNotes() != "" {
			t.Fatalf("a read without its audit record answered data: %v", rep)
		}
	}
	req := getNotes()
	req.BookingId, req.Subject, req.Role = bookingID, "op-1", "operator"
	rep, err = e.s.Do(context.Background(), req)
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN, session.ErrForbidden)
}

// TestAuditNodeDefault: a request that names no node is recorded with the
// node's own id.
func TestAuditNodeDefault(t *testing.T) {
	e := newEnv(t, true)
	_, err := e.s.Do(context.Background(), &calendarv1.SessionRequest{BookingId: bookingID, Subject: "op-1", Role: "operator", Op: get().Op})
	if err != nil {
		t.Fatal(err)
	}
	recs := e.store.auditSince(0)
	if len(recs) != 1 || recs[0].GetNode() != nodeID {
		t.Fatalf("audit %v, want one record of node %s", recs, nodeID)
	}
}

func TestClientNotes(t *testing.T) {
	e := newEnv(t, true)
	second := "bk_ba_2"
	b, _ := e.store.Booking(context.Background(), bookingID)
	b.Id = second
	e.store.put(b)
	for id, text := range map[string]string{bookingID: "one " + marker, second: "two " + marker} {
		req := putNotes(text)
		req.BookingId, req.Subject, req.Role = id, provider, "provider"
		if _, err := e.s.Do(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	n1, _ := e.store.Note(context.Background(), bookingID)
	n2, _ := e.store.Note(context.Background(), second)
	got, err := e.s.ClientNotes(context.Background(), client, []*bookingv1.SealedNote{n1, n2})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].BookingID != bookingID || got[0].Text != "one "+marker ||
		got[1].BookingID != second || got[1].Text != "two "+marker || got[0].ProviderID != provider ||
		got[0].UpdatedAtMs != now.UnixMilli() {
		t.Fatalf("export %+v", got)
	}
	if _, err := e.s.ClientNotes(context.Background(), "cli-bob", []*bookingv1.SealedNote{n1}); !errors.Is(err, session.ErrInvalid) {
		t.Fatalf("another client's notes: %v", err)
	}
	if got, err := e.s.ClientNotes(context.Background(), "cli-bob", nil); err != nil || len(got) != 0 {
		t.Fatalf("a client without notes: %v %v", got, err)
	}
	tampered := n1
	tampered.Ciphertext[0] ^= 1
	if _, err := e.s.ClientNotes(context.Background(), client, []*bookingv1.SealedNote{tampered}); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("a tampered note: %v", err)
	}
	e.store.erase(client)
	if _, err := e.s.ClientNotes(context.Background(), client, []*bookingv1.SealedNote{n2}); !errors.Is(err, session.ErrErased) {
		t.Fatalf("erased client: %v", err)
	}
	nokek := newEnv(t, false)
	if _, err := nokek.s.ClientNotes(context.Background(), client, nil); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("no KEK: %v", err)
	}
}

// TestConcurrentRequests: many requests of one session at once each get their
// answer and their one audit record.
func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t, true)
	const n = 40
	errs := make(chan error, n)
	for i := range n {
		go func() {
			req := get()
			if i%2 == 1 {
				req = putNotes(marker)
			}
			req.BookingId, req.Subject, req.Role = bookingID, provider, "provider"
			_, err := e.s.Do(context.Background(), req)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := e.store.auditLen(); got != n {
		t.Fatalf("%d audit records for %d requests", got, n)
	}
}

func TestStopped(t *testing.T) {
	e := newEnv(t, true)
	req := get()
	req.BookingId, req.Subject, req.Role = bookingID, provider, "provider"
	if _, err := e.s.Do(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	e.s.Stop()
	if rep, err := e.s.Do(context.Background(), req); rep != nil || !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("after Stop: %v %v", rep, err)
	}
}

// TestErasedThenReturningClient: an erasure covers the health data that
// existed (R1 finding 8, the integrator's decision): the client comes back,
// gets a new data key and notes for a session booked since; the erased
// session stays erased; erasing again erases the new notes and key too.
func TestErasedThenReturningClient(t *testing.T) {
	e := newEnv(t, true)
	rep, err := e.do(t, treating, bookingID, putNotes(marker), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	old, _ := e.store.ClientKey(context.Background(), client)
	e.store.erase(client)
	if err := e.kek.RecordErasure(client, old.GetKeyId()); err != nil {
		t.Fatal(err)
	}
	const later = "bkg_buenos-aires_returning"
	e.store.put(&bookingv1.Booking{
		Id: later, ProviderId: provider, ClientId: client, Vertical: "psychology",
		StartMs: now.Add(48 * time.Hour).UnixMilli(), EndMs: now.Add(49 * time.Hour).UnixMilli(),
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED, SessionStatus: bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED,
	})
	rep, err = e.do(t, treating, later, putNotes("new therapy"), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	rep, err = e.do(t, treating, later, getNotes(), "notes.read", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	if rep.GetNotes() != "new therapy" {
		t.Fatalf("the returning client's notes: %q", rep.GetNotes())
	}
	fresh, _ := e.store.ClientKey(context.Background(), client)
	if fresh.GetKeyId() == "" || fresh.GetKeyId() == old.GetKeyId() {
		t.Fatalf("the returning client's key %q, the erased one %q", fresh.GetKeyId(), old.GetKeyId())
	}
	rep, err = e.do(t, treating, bookingID, getNotes(), "notes.read", "erased")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_ERASED, session.ErrErased)
	rep, err = e.do(t, treating, bookingID, putNotes("into the erased session"), "notes.write", "erased")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_ERASED, session.ErrErased)
	n, _ := e.store.Note(context.Background(), later)
	if got, err := e.s.ClientNotes(context.Background(), client, []*bookingv1.SealedNote{n}); err != nil || len(got) != 1 || got[0].Text != "new therapy" {
		t.Fatalf("export of the returning client's notes: %+v, %v", got, err)
	}
	// Erased again: the new key goes to the ledger too.
	e.store.erase(client)
	if er, _ := e.store.Erasure(context.Background(), client); !slices.Equal(er.GetKeyIds(), []string{old.GetKeyId(), fresh.GetKeyId()}) {
		t.Fatalf("erasure record key ids %v", er.GetKeyIds())
	}
	if err := e.kek.RecordErasure(client, old.GetKeyId(), fresh.GetKeyId()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kek.Unwrap(fresh); !errors.Is(err, seal.ErrErased) {
		t.Fatalf("the second erasure's key unwraps: %v", err)
	}
	rep, err = e.do(t, treating, later, getNotes(), "notes.read", "erased")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_ERASED, session.ErrErased)
	if _, err := e.s.ClientNotes(context.Background(), client, []*bookingv1.SealedNote{n}); !errors.Is(err, session.ErrErased) {
		t.Fatalf("export after the second erasure: %v", err)
	}
}

// TestNotes_StaleWriteIsRefused: a notes write that reaches the store after
// another write of the same session (an activation on a node that was paused
// while the session moved on — the simulations' pause-leader found it: the
// provider read back older notes than it had written) is refused, and the
// newer notes stay.
func TestNotes_StaleWriteIsRefused(t *testing.T) {
	e := newEnv(t, true)
	rep, err := e.do(t, treating, bookingID, putNotes("first"), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	var newer *bookingv1.SealedNote
	e.store.beforePropose = func(cmd *bookingv1.Command) error {
		if cmd.GetPutNote() == nil {
			return nil
		}
		// Another activation wrote while this one held its request.
		e.store.mu.Lock()
		defer e.store.mu.Unlock()
		n := proto.Clone(e.store.notes[bookingID]).(*bookingv1.SealedNote)
		n.Version++
		e.store.notes[bookingID], newer = n, n
		return nil
	}
	req := putNotes("stale text")
	req.BookingId, req.Subject, req.Role, req.Node = bookingID, treating.sub, treating.role, "node-entry"
	rep, _ = e.s.Do(t.Context(), req)
	if rep.GetError() != calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE {
		t.Fatalf("a write over notes changed since it read them: %s (%s), want unavailable (retry)", rep.GetError(), rep.GetDetail())
	}
	e.store.mu.Lock()
	got := e.store.notes[bookingID]
	e.store.mu.Unlock()
	if !proto.Equal(got, newer) {
		t.Fatal("the stale write replaced the newer notes")
	}
}
