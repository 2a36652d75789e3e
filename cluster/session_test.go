package cluster_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/barberpro/edge/actors/session"
	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage/seal"
)

// psychSession stores, through n's store, a psychology provider and a
// scheduled session of client c-psy with it, and returns the booking.
func psychSession(t *testing.T, n *cluster.Node, providerID, bookingID string) *bookingv1.Booking {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	at := time.Now().UnixMilli()
	if _, err := n.Store().Propose(ctx, &bookingv1.Command{ProposedAtMs: at, Op: &bookingv1.Command_CreateProvider{CreateProvider: &bookingv1.CreateProvider{
		Provider: &bookingv1.Provider{Id: providerID, Name: "Lic. Test", Vertical: "psychology", City: "buenos-aires",
			Jurisdiction: "ar", Timezone: "America/Argentina/Buenos_Aires"}}}}); err != nil {
		t.Fatalf("create provider: %v", err)
	}
	start := time.Now().Add(48 * time.Hour).Truncate(time.Hour)
	b := &bookingv1.Booking{Id: bookingID, ProviderId: providerID, ServiceId: "s", ClientId: "c-psy",
		StartMs: start.UnixMilli(), EndMs: start.Add(50 * time.Minute).UnixMilli(), BlockedUntilMs: start.Add(time.Hour).UnixMilli(),
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED, Vertical: "psychology",
		SessionStatus: bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED}
	res, err := n.Store().Propose(ctx, &bookingv1.Command{ProposedAtMs: at, Op: &bookingv1.Command_CreateBooking{CreateBooking: &bookingv1.CreateBooking{Booking: b}}})
	if err != nil {
		t.Fatalf("create booking: %v", err)
	}
	return res.GetBooking()
}

// Test_SingleNode_SessionsSealWithTheKEKFileAndErasureReachesItsLedger: a node
// started with --kek-file serves session notes through its session kind
// (sealed under a client key the KEK wraps), and an erasure the FSM applies
// lands in the KEK's ledger, so the key file itself refuses the client from
// then on.
func Test_SingleNode_SessionsSealWithTheKEKFileAndErasureReachesItsLedger(t *testing.T) {
	kekFile := newKEKFile(t)
	n := clustertest.MustStartNode(t, func(c *cluster.Config) { c.KEKFile = kekFile })
	b := psychSession(t, n, "prv_buenos-aires_psy1", "bkg_buenos-aires_psy1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	treating := func(op any) *calendarv1.SessionRequest {
		r := &calendarv1.SessionRequest{BookingId: b.GetId(), Subject: b.GetProviderId(), Role: "provider", Node: n.ID()}
		switch o := op.(type) {
		case *calendarv1.PutNotes:
			r.Op = &calendarv1.SessionRequest_PutNotes{PutNotes: o}
		case *calendarv1.GetNotes:
			r.Op = &calendarv1.SessionRequest_GetNotes{GetNotes: o}
		case *calendarv1.GetSession:
			r.Op = &calendarv1.SessionRequest_Get{Get: o}
		}
		return r
	}
	rep, err := n.Sessions().Do(ctx, treating(&calendarv1.GetSession{}))
	if err != nil || rep.GetBooking().GetSessionStatus() != bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED {
		t.Fatalf("get session: %v %v", rep, err)
	}
	if _, err := n.Sessions().Do(ctx, treating(&calendarv1.PutNotes{Text: "marker-3f9a"})); err != nil {
		t.Fatalf("put notes with a KEK: %v", err)
	}
	rep, err = n.Sessions().Do(ctx, treating(&calendarv1.GetNotes{}))
	if err != nil || rep.GetNotes() != "marker-3f9a" {
		t.Fatalf("get notes: %q %v", rep.GetNotes(), err)
	}
	ck, err := n.Store().ClientKey(ctx, "c-psy")
	if err != nil {
		t.Fatalf("client key: %v", err)
	}
	if _, err := n.Store().Propose(ctx, &bookingv1.Command{ProposedAtMs: time.Now().UnixMilli(),
		Op: &bookingv1.Command_EraseHealthData{EraseHealthData: &bookingv1.EraseHealthData{ClientId: "c-psy"}}}); err != nil {
		t.Fatalf("erase: %v", err)
	}
	reloaded, err := seal.LoadKEK(kekFile)
	if err != nil {
		t.Fatal(err)
	}
	if !reloaded.Erased("c-psy", ck.GetKeyId()) {
		t.Fatal("the erasure the FSM applied is not in the KEK's ledger (storage OnErase not wired)")
	}
	if _, err := n.Sessions().Do(ctx, treating(&calendarv1.GetNotes{})); !errors.Is(err, session.ErrErased) {
		t.Fatalf("notes after the erasure: %v, want ErrErased", err)
	}
}

// Test_SingleNode_NoKEKNotesUnavailable: without --kek-file sessions work and
// notes answer unavailable.
func Test_SingleNode_NoKEKNotesUnavailable(t *testing.T) {
	n := clustertest.MustStartNode(t, nil)
	b := psychSession(t, n, "prv_buenos-aires_psy2", "bkg_buenos-aires_psy2")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := &calendarv1.SessionRequest{BookingId: b.GetId(), Subject: b.GetProviderId(), Role: "provider",
		Op: &calendarv1.SessionRequest_Get{Get: &calendarv1.GetSession{}}}
	if _, err := n.Sessions().Do(ctx, req); err != nil {
		t.Fatalf("get session without a KEK: %v", err)
	}
	req.Op = &calendarv1.SessionRequest_PutNotes{PutNotes: &calendarv1.PutNotes{Text: "x"}}
	if _, err := n.Sessions().Do(ctx, req); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("put notes without a KEK: %v, want ErrUnavailable", err)
	}
}

// Test_Config_BadKEKFileIsABadConfig: a KEK file that cannot be loaded stops
// the node at start with ErrBadConfig.
func Test_Config_BadKEKFileIsABadConfig(t *testing.T) {
	cfg := cluster.LocalConfig()
	cfg.ID, cfg.City, cfg.BootstrapExpect, cfg.FoundingWait = "ba-1", "buenos-aires", 1, 0
	cfg.DataDir, cfg.Logger = t.TempDir(), clustertest.Logger()
	cfg.TokenKeys, cfg.GossipKey = clustertest.KeySet(t), clustertest.GossipKey(t)
	cfg.TLSDir = clustertest.MustTLSDir(t, cfg.ID, cfg.City, cfg.Bind)
	cfg.KEKFile = filepath.Join(t.TempDir(), "missing.json")
	n, err := cluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	if err := n.Start(); !errors.Is(err, cluster.ErrBadConfig) {
		t.Fatalf("start with a missing KEK file: %v, want ErrBadConfig", err)
	}
}
