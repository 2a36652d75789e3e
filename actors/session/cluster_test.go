package session_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/barberpro/edge/actors/session"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// TestThroughCluster: registered as a cluster kind (Props) and routed with
// UseCluster, Do reaches the session grain of the booking, which answers and
// audits as the local path does.
func TestThroughCluster(t *testing.T) {
	e := newEnv(t, true)
	kind := session.Kind("ar")
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	cfg := cluster.Configure("session-test", test.NewTestProvider(test.NewInMemAgent()), disthash.New(),
		remote.Configure("127.0.0.1", 0),
		cluster.WithKinds(cluster.NewKind(kind, e.s.Props())),
		cluster.WithRequestTimeout(2*time.Second))
	cl := cluster.New(sys, cfg)
	cl.StartMember()
	t.Cleanup(func() { cl.Shutdown(true) })
	e.s.UseCluster(cl, kind)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := putNotes(marker)
	req.BookingId, req.Subject, req.Role, req.Node = bookingID, provider, "provider", "node-entry"
	rep, err := e.s.Do(ctx, req)
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	before := e.store.auditLen()
	rep, err = e.do(t, treating, bookingID, getNotes(), "notes.read", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	if rep.GetNotes() != marker {
		t.Fatalf("notes %q through the cluster", rep.GetNotes())
	}
	rep, err = e.do(t, operator, bookingID, getNotes(), "notes.read", "forbidden")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN, session.ErrForbidden)
	if got := e.store.auditLen() - before; got != 2 {
		t.Fatalf("%d audit records for 2 requests", got)
	}
	if session.ActiveLocal(e.s) != 0 {
		t.Fatal("cluster mode activated local session actors")
	}
}
