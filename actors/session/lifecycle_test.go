package session_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/barberpro/edge/actors/session"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// TestPassivation: an idle session actor stops, and the next request activates
// a fresh one that answers.
func TestPassivation(t *testing.T) {
	e := newEnv(t, true)
	session.SetIdle(e.s, 50*time.Millisecond)
	rep, err := e.do(t, treating, bookingID, putNotes(marker), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	if n := session.ActiveLocal(e.s); n != 1 {
		t.Fatalf("%d session actors active, want 1", n)
	}
	deadline := time.Now().Add(3 * time.Second)
	for session.ActiveLocal(e.s) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle session actor did not stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rep, err = e.do(t, treating, bookingID, getNotes(), "notes.read", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	if rep.GetNotes() != marker {
		t.Fatalf("notes %q after reactivation", rep.GetNotes())
	}
}

// TestGrainIdentity: as a cluster grain (Props), the actor learns its booking
// from ClusterInit and refuses a request for another session.
func TestGrainIdentity(t *testing.T) {
	e := newEnv(t, true)
	sys := actor.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	pid := sys.Root.Spawn(e.s.Props())
	sys.Root.Send(pid, &cluster.ClusterInit{Identity: cluster.NewClusterIdentity(bookingID, session.Kind("ar"))})
	ask := func(id string) *calendarv1.SessionReply {
		t.Helper()
		req := get()
		req.BookingId, req.Subject, req.Role = id, provider, "provider"
		v, err := sys.Root.RequestFuture(pid, req, 2*time.Second).Result()
		if err != nil {
			t.Fatal(err)
		}
		rep, ok := v.(*calendarv1.SessionReply)
		if !ok {
			t.Fatalf("answer %T", v)
		}
		return rep
	}
	if rep := ask(bookingID); rep.GetError() != calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED || rep.GetBooking().GetId() != bookingID {
		t.Fatalf("own session: %v", rep)
	}
	before := e.store.auditLen()
	if rep := ask("bk_ba_other"); rep.GetError() != calendarv1.ErrorCode_ERROR_CODE_INVALID {
		t.Fatalf("another session's request: %v", rep)
	}
	if e.store.auditLen() != before {
		t.Fatal("a misrouted request was audited as a session request")
	}
}

// TestCatchesUpBeforeReading: every request waits for the replica to catch up
// with its leader; when it cannot, the answer is UNAVAILABLE, not stale data.
func TestCatchesUpBeforeReading(t *testing.T) {
	e := newEnv(t, true)
	rep, err := e.do(t, operator, bookingID, get(), "session.read", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	e.store.mu.Lock()
	reads := e.store.reads
	e.store.readIndexErr = errors.New("no leader")
	e.store.mu.Unlock()
	if reads == 0 {
		t.Fatal("the request read without catching up")
	}
	req := get()
	req.BookingId, req.Subject, req.Role = bookingID, "op-1", "operator"
	rep, err = e.s.Do(context.Background(), req)
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, session.ErrUnavailable)
	if rep.GetBooking() != nil {
		t.Fatal("an unavailable answer carried the booking")
	}
}
