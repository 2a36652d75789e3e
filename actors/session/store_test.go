package session_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	"google.golang.org/protobuf/proto"
)

// fakeStore is an in-memory session.Store that applies the session commands with
// the rules the FSM enforces (proto comments) and appends every command's audit
// records, filling an empty outcome from the command's result.
type fakeStore struct {
	mu       sync.Mutex
	bookings map[string]*bookingv1.Booking
	notes    map[string]*bookingv1.SealedNote
	keys     map[string]*bookingv1.ClientKey
	erasures map[string]*bookingv1.Erasure
	audit    []*bookingv1.AuditRecord
	// proposed holds every command Propose received, marshalled.
	proposed [][]byte
	cmds     []*bookingv1.Command

	// beforePropose, if set, runs before a command applies; an error is
	// returned by Propose without applying it.
	beforePropose func(cmd *bookingv1.Command) error
	// readIndexErr, if set, is what LinearizableRead returns; reads counts its calls.
	readIndexErr error
	reads        int
}

// LinearizableRead is the optional catch-up a *storage.Store offers.
func (f *fakeStore) LinearizableRead(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.readIndexErr
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		bookings: map[string]*bookingv1.Booking{},
		notes:    map[string]*bookingv1.SealedNote{},
		keys:     map[string]*bookingv1.ClientKey{},
		erasures: map[string]*bookingv1.Erasure{},
	}
}

func notFound(what string) error { return fmt.Errorf("%s: %w", what, storage.ErrNotFound) }

func (f *fakeStore) put(b *bookingv1.Booking) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bookings[b.GetId()] = proto.Clone(b).(*bookingv1.Booking)
}

func (f *fakeStore) Booking(_ context.Context, id string) (*bookingv1.Booking, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.bookings[id]; b != nil {
		return proto.Clone(b).(*bookingv1.Booking), nil
	}
	return nil, notFound("booking")
}

func (f *fakeStore) Note(_ context.Context, bookingID string) (*bookingv1.SealedNote, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.notes[bookingID]; n != nil {
		return proto.Clone(n).(*bookingv1.SealedNote), nil
	}
	return nil, notFound("note")
}

func (f *fakeStore) ClientKey(_ context.Context, clientID string) (*bookingv1.ClientKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := f.keys[clientID]; k != nil {
		return proto.Clone(k).(*bookingv1.ClientKey), nil
	}
	return nil, notFound("client key")
}

func (f *fakeStore) Erasure(_ context.Context, clientID string) (*bookingv1.Erasure, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.erasures[clientID]; e != nil {
		return proto.Clone(e).(*bookingv1.Erasure), nil
	}
	return nil, notFound("erasure")
}

// erase applies EraseHealthData: keys and notes go, bookings say erased.
func (f *fakeStore) erase(clientID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.erasures[clientID]
	if e == nil {
		e = &bookingv1.Erasure{ClientId: clientID, ErasedAtMs: 1}
	}
	if k := f.keys[clientID]; k != nil {
		e.KeyIds = append(e.KeyIds, k.GetKeyId())
	}
	delete(f.keys, clientID)
	for id, n := range f.notes {
		if n.GetClientId() == clientID {
			delete(f.notes, id)
		}
	}
	for _, b := range f.bookings {
		if b.GetClientId() == clientID {
			b.Erased = true
		}
	}
	f.erasures[clientID] = e
}

func (f *fakeStore) Propose(_ context.Context, cmd *bookingv1.Command) (*bookingv1.CommandResult, error) {
	if f.beforePropose != nil {
		if err := f.beforePropose(cmd); err != nil {
			return nil, err
		}
	}
	raw, err := proto.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.proposed = append(f.proposed, raw)
	f.cmds = append(f.cmds, proto.Clone(cmd).(*bookingv1.Command))
	res := f.apply(cmd)
	for _, r := range cmd.GetAudit() {
		r = proto.Clone(r).(*bookingv1.AuditRecord)
		if r.Outcome == "" {
			r.Outcome = "ok"
			if res.GetCode() != bookingv1.ResultCode_RESULT_CODE_OK {
				r.Outcome = strings.ToLower(strings.TrimPrefix(res.GetCode().String(), "RESULT_CODE_"))
			}
		}
		f.audit = append(f.audit, r)
	}
	return res, nil
}

func code(c bookingv1.ResultCode) *bookingv1.CommandResult { return &bookingv1.CommandResult{Code: c} }

func (f *fakeStore) apply(cmd *bookingv1.Command) *bookingv1.CommandResult {
	switch op := cmd.GetOp().(type) {
	case *bookingv1.Command_AppendAudit:
		return code(bookingv1.ResultCode_RESULT_CODE_OK)
	case *bookingv1.Command_SetSessionStatus:
		b := f.bookings[op.SetSessionStatus.GetBookingId()]
		if b == nil || b.GetSessionStatus() == bookingv1.SessionStatus_SESSION_STATUS_UNSPECIFIED {
			return code(bookingv1.ResultCode_RESULT_CODE_NOT_FOUND)
		}
		from, to := b.GetSessionStatus(), op.SetSessionStatus.GetStatus()
		ok := (from == bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED &&
			(to == bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN || to == bookingv1.SessionStatus_SESSION_STATUS_NO_SHOW ||
				to == bookingv1.SessionStatus_SESSION_STATUS_CANCELLED)) ||
			(from == bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN && to == bookingv1.SessionStatus_SESSION_STATUS_COMPLETED)
		if !ok {
			return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_INVALID_TRANSITION, Detail: "illegal move"}
		}
		b.SessionStatus = to
		b.Version++
		return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Booking: proto.Clone(b).(*bookingv1.Booking)}
	case *bookingv1.Command_PutClientKey:
		k := op.PutClientKey.GetKey()
		if e := f.erasures[k.GetClientId()]; e != nil && slices.Contains(e.GetKeyIds(), k.GetKeyId()) {
			return code(bookingv1.ResultCode_RESULT_CODE_ERASED)
		}
		if cur := f.keys[k.GetClientId()]; cur != nil {
			return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Key: proto.Clone(cur).(*bookingv1.ClientKey)}
		}
		f.keys[k.GetClientId()] = proto.Clone(k).(*bookingv1.ClientKey)
		return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Key: proto.Clone(k).(*bookingv1.ClientKey)}
	case *bookingv1.Command_PutNote:
		n := op.PutNote.GetNote()
		if e := f.erasures[n.GetClientId()]; e != nil && slices.Contains(e.GetKeyIds(), n.GetKeyId()) {
			return code(bookingv1.ResultCode_RESULT_CODE_ERASED)
		}
		if k := f.keys[n.GetClientId()]; k == nil || k.GetKeyId() != n.GetKeyId() {
			return code(bookingv1.ResultCode_RESULT_CODE_INVALID)
		}
		if f.notes[n.GetBookingId()].GetVersion() != op.PutNote.GetExpectedVersion() {
			return code(bookingv1.ResultCode_RESULT_CODE_STALE)
		}
		nn := proto.Clone(n).(*bookingv1.SealedNote)
		nn.Version = f.notes[n.GetBookingId()].GetVersion() + 1
		f.notes[n.GetBookingId()] = nn
		return &bookingv1.CommandResult{Code: bookingv1.ResultCode_RESULT_CODE_OK, Note: proto.Clone(nn).(*bookingv1.SealedNote)}
	}
	return code(bookingv1.ResultCode_RESULT_CODE_INVALID)
}

func (f *fakeStore) auditLen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.audit)
}

func (f *fakeStore) auditSince(n int) []*bookingv1.AuditRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*bookingv1.AuditRecord(nil), f.audit[n:]...)
}

func (f *fakeStore) commandsSince(n int) []*bookingv1.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*bookingv1.Command(nil), f.cmds[n:]...)
}

func (f *fakeStore) cmdLen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.cmds)
}
