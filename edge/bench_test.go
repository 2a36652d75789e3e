package edge

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/edgetest"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/topology"
)

// instantCalendars books anything at once: it measures the edge, not a calendar.
type instantCalendars struct{ *edgetest.Calendars }

func (instantCalendars) Book(_ context.Context, r *calendarv1.BookRequest) (*bookingv1.Booking, error) {
	return &bookingv1.Booking{
		Id: r.BookingId, ProviderId: r.ProviderId, ServiceId: r.ServiceId, ClientId: r.ClientId,
		StartMs: r.StartMs, EndMs: r.StartMs + 30*60_000, BlockedUntilMs: r.StartMs + 40*60_000,
		Price:  &bookingv1.Money{Cents: 150000, Currency: "ARS"},
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED,
	}, nil
}

// BenchmarkEdge_CreateBooking is POST /v1/bookings through the handler with
// in-memory doubles: the HTTP, JSON, validation and idempotency overhead of the
// edge (the calendar answers at once), on a node alone and on a node of a
// cluster (a Router: the body is located, for this node's jurisdiction).
func BenchmarkEdge_CreateBooking(b *testing.B) {
	b.Run("router=none", func(b *testing.B) { benchCreateBooking(b, nil) })
	b.Run("router=ar", func(b *testing.B) {
		benchCreateBooking(b, &fakeRouter{self: "ar", peers: &fakePeers{urls: map[string]string{}}})
	})
}

func benchCreateBooking(b *testing.B, router Router) {
	st := edgetest.NewStore()
	st.PutProvider(&bookingv1.Provider{
		Id: "prv_buenos-aires_1", Timezone: "America/Argentina/Buenos_Aires", City: "buenos-aires", Vertical: "barber", Jurisdiction: "ar",
		Services: []*bookingv1.Service{{Id: "svc_1", DurationMinutes: 30, Price: &bookingv1.Money{Cents: 150000, Currency: "ARS"}}},
	})
	cfg := DefaultConfig()
	cfg.NodeID, cfg.City, cfg.Topology, cfg.Store = "n", "buenos-aires", topology.Default(), st
	cfg.Calendars = instantCalendars{}
	cfg.Placement = func(context.Context, string) (Placement, error) { return Placement{}, nil }
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Clock = func() time.Time { return testNow }
	tokens := edgetest.NewTokens(b)
	cfg.Auth = tokens.Verifier
	cfg.Limits = Limits{PerSubject: rate.Inf, PerIP: rate.Inf}
	cfg.Router = router
	bearer := tokens.Bearer(b, auth.RoleClient, "cli_1")
	srv, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	handler := srv.Handler()
	body := bookingBody("prv_buenos-aires_1", "svc_1", "cli_1", "2026-12-01T09:00:00-03:00")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/bookings", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(IdempotencyHeader, "bench")
		req.Header.Set("Authorization", bearer)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
