package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/edge"
	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// Test_Privacy_SlotTakenNamesNoOne books a slot as one client and asks for an
// overlapping one as another, on a real node: the 409 slot_unavailable says the
// slot is taken and holds neither the booking's id nor its client's id. Both the
// calendar actor's refusal (it knows the booking) and the FSM's (a fresh
// activation that does not) are asked.
func Test_Privacy_SlotTakenNamesNoOne(t *testing.T) {
	n := clustertest.MustStartNode(t, nil)
	ops := clustertest.Operator(t, n)
	p := newProvider(t, ops, svc("Corte", 60, 0))
	ana := clustertest.Client(t, n, auth.RoleClient, "cli-ana-4711")
	first, err := ana.Book(context.Background(), client.BookingRequest{
		ProviderID: p.ID, ServiceID: p.Services[0].ID, ClientID: "cli-ana-4711", Start: tomorrowAt(10, 0)}, "")
	if err != nil {
		t.Fatal(err)
	}
	bob := "Bearer " + clustertest.Token(t, n, auth.RoleClient, "cli-bob")
	for _, start := range []string{tomorrowAt(10, 0), tomorrowAt(10, 30), tomorrowAt(9, 30)} {
		body := fmt.Sprintf(`{"provider_id":%q,"service_id":%q,"client_id":"cli-bob","start":%q}`, p.ID, p.Services[0].ID, start)
		a := send(t, n, "POST", "/v1/bookings", body, bob)
		if a.status != http.StatusConflict || a.problemCode() != edge.CodeSlotUnavailable {
			t.Fatalf("overlapping %s: %d %s, want 409 slot_unavailable", start, a.status, a.body)
		}
		for _, secret := range []string{first.ID, "cli-ana-4711", "bkg_"} {
			if bytes.Contains(a.body, []byte(secret)) {
				t.Errorf("409 for %s names %q: %s", start, secret, a.body)
			}
		}
	}
	// The FSM's refusal: a booking the active calendar actor does not hold in
	// memory (written to the store behind its back) takes 14:00; the actor
	// proposes bob's 14:00 and the FSM refuses it.
	ctx := context.Background()
	if _, err := ana.Availability(ctx, p.ID, p.Services[0].ID, tomorrowAt(0, 0)[:10], 1); err != nil {
		t.Fatal(err) // activates the calendar actor
	}
	start, err := time.Parse(time.RFC3339, tomorrowAt(14, 0))
	if err != nil {
		t.Fatal(err)
	}
	planted := &bookingv1.Booking{Id: "bkg_buenos-aires_plantedbyfsmtest0001", ProviderId: p.ID, ServiceId: p.Services[0].ID,
		ClientId: "cli-ana-4711", StartMs: start.UnixMilli(), EndMs: start.Add(time.Hour).UnixMilli(),
		BlockedUntilMs: start.Add(time.Hour).UnixMilli(), Price: &bookingv1.Money{Cents: 150000, Currency: "ARS"}}
	if _, err := n.Store().Propose(ctx, &bookingv1.Command{ProposedAtMs: time.Now().UnixMilli(),
		Op: &bookingv1.Command_CreateBooking{CreateBooking: &bookingv1.CreateBooking{Booking: planted}}}); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"provider_id":%q,"service_id":%q,"client_id":"cli-bob","start":%q}`, p.ID, p.Services[0].ID, tomorrowAt(14, 0))
	a := send(t, n, "POST", "/v1/bookings", body, bob)
	if a.status != http.StatusConflict || a.problemCode() != edge.CodeSlotUnavailable {
		t.Fatalf("slot taken behind the actor's back: %d %s, want 409 slot_unavailable", a.status, a.body)
	}
	for _, secret := range []string{planted.Id, "cli-ana-4711", "bkg_"} {
		if bytes.Contains(a.body, []byte(secret)) {
			t.Errorf("the FSM's 409 names %q: %s", secret, a.body)
		}
	}

	// Someone else's booking, asked by id: 404, as a missing one, and nothing of it.
	a = send(t, n, "GET", "/v1/bookings/"+first.ID, "", bob)
	if a.status != http.StatusNotFound || bytes.Contains(a.body, []byte("cli-ana-4711")) {
		t.Errorf("GET of another client's booking: %d %s", a.status, a.body)
	}
	missing := send(t, n, "GET", "/v1/bookings/"+first.ID[:len(first.ID)-1]+"x", "", bob)
	if missing.status != http.StatusNotFound || missing.problemCode() != a.problemCode() {
		t.Errorf("another's booking (%d %s) is told apart from a missing one (%d %s)", a.status, a.body, missing.status, missing.body)
	}
}

// Test_Privacy_IdempotencyKeyScopedBySubject has a second client reuse a first
// client's Idempotency-Key on a real node: it gets its own result (its own
// booking, or its own 409), never a replay of the first's booking.
func Test_Privacy_IdempotencyKeyScopedBySubject(t *testing.T) {
	n := clustertest.MustStartNode(t, nil)
	p := newProvider(t, clustertest.Operator(t, n), svc("Corte", 30, 0))
	const key = "shared-key-1"
	book := func(sub, start string) answer {
		body := fmt.Sprintf(`{"provider_id":%q,"service_id":%q,"client_id":%q,"start":%q}`, p.ID, p.Services[0].ID, sub, start)
		return send(t, n, "POST", "/v1/bookings", body, "Bearer "+clustertest.Token(t, n, auth.RoleClient, sub), edge.IdempotencyHeader, key)
	}
	first := book("cli-ana", tomorrowAt(10, 0))
	if first.status != http.StatusCreated {
		t.Fatalf("first booking: %d %s", first.status, first.body)
	}
	var anaBooking client.Booking
	mustJSON(t, first.body, &anaBooking)
	// The same subject replays its own.
	if again := book("cli-ana", tomorrowAt(10, 0)); again.status != http.StatusCreated || again.header.Get(edge.ReplayedHeader) != "true" {
		t.Fatalf("own replay: %d %s replayed=%q", again.status, again.body, again.header.Get(edge.ReplayedHeader))
	}
	// Another subject, same key, another slot: its own new booking.
	second := book("cli-bob", tomorrowAt(11, 0))
	if second.status != http.StatusCreated || second.header.Get(edge.ReplayedHeader) != "" {
		t.Fatalf("second subject, same key: %d %s replayed=%q", second.status, second.body, second.header.Get(edge.ReplayedHeader))
	}
	var bobBooking client.Booking
	mustJSON(t, second.body, &bobBooking)
	if bobBooking.ID == anaBooking.ID || bobBooking.ClientID != "cli-bob" {
		t.Fatalf("second subject got %+v; first's was %+v", bobBooking, anaBooking)
	}
	// Another subject, same key, the first's slot: its own 409, nothing of the first's.
	third := book("cli-carla", tomorrowAt(10, 0))
	if third.status != http.StatusConflict || bytes.Contains(third.body, []byte(anaBooking.ID)) || bytes.Contains(third.body, []byte("cli-ana")) {
		t.Fatalf("third subject, same key and slot: %d %s", third.status, third.body)
	}
}

// Test_RateLimit_BurstGets429OthersUnaffected sends one subject's burst over its
// limit to a real node: the request past the burst is 429 rate_limited with
// Retry-After, while another subject, and the node's operators, are served.
// Anonymous calls are limited per client IP the same way.
func Test_RateLimit_BurstGets429OthersUnaffected(t *testing.T) {
	// The IP's burst covers WaitReady's polls and the first use of each token
	// (charged to the IP before its signature is checked).
	const burst, ipBurst = 5, 20
	n := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.Limits = edge.Limits{PerSubject: 0.2, SubjectBurst: burst, PerIP: 0.2, IPBurst: ipBurst}
	})
	ana := "Bearer " + clustertest.Token(t, n, auth.RoleClient, "cli-ana")
	bob := "Bearer " + clustertest.Token(t, n, auth.RoleClient, "cli-bob")
	for i := range burst {
		if a := send(t, n, "GET", "/v1/clients/cli-ana/bookings", "", ana); a.status != http.StatusOK {
			t.Fatalf("request %d of the burst: %d %s", i+1, a.status, a.body)
		}
	}
	a := send(t, n, "GET", "/v1/clients/cli-ana/bookings", "", ana)
	if a.status != http.StatusTooManyRequests || a.problemCode() != edge.CodeRateLimited {
		t.Fatalf("past the burst: %d %s, want 429 rate_limited", a.status, a.body)
	}
	if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q", a.header.Get("Retry-After"))
	}
	if b := send(t, n, "GET", "/v1/clients/cli-bob/bookings", "", bob); b.status != http.StatusOK {
		t.Fatalf("another subject: %d %s", b.status, b.body)
	}
	// Anonymous: this client IP's bucket (WaitReady used some of it already).
	limited := false
	for range ipBurst + 1 {
		if a := send(t, n, "GET", "/v1/providers", "", ""); a.status == http.StatusTooManyRequests {
			limited = a.header.Get("Retry-After") != ""
			break
		}
	}
	if !limited {
		t.Fatalf("%d anonymous requests from one IP were never limited", ipBurst+1)
	}
	// A token verified before is charged to its subject alone.
	if b := send(t, n, "GET", "/v1/providers", "", bob); b.status != http.StatusOK {
		t.Fatalf("a token holder on the limited IP: %d %s", b.status, b.body)
	}
}

// Test_Privacy_MetricsNameNoOne: /metrics is public, so no label of it may
// carry a person's data. After a booking, a collision, reads of a client's
// bookings allowed and refused, another's booking asked by id and a path that
// matches no route, all carrying a client id or a booking id, the node's
// /metrics holds none of them: labels are route patterns, statuses, cities,
// verticals, jurisdictions and node ids.
func Test_Privacy_MetricsNameNoOne(t *testing.T) {
	n := clustertest.MustStartNode(t, nil)
	p := newProvider(t, clustertest.Operator(t, n), svc("Corte", 60, 0))
	const ana, bob = "cli-ana-metrics-5821", "cli-bob-metrics-9034"
	anaAuth := "Bearer " + clustertest.Token(t, n, auth.RoleClient, ana)
	bobAuth := "Bearer " + clustertest.Token(t, n, auth.RoleClient, bob)
	body := func(sub string) string {
		return fmt.Sprintf(`{"provider_id":%q,"service_id":%q,"client_id":%q,"start":%q}`, p.ID, p.Services[0].ID, sub, tomorrowAt(10, 0))
	}
	first := send(t, n, "POST", "/v1/bookings", body(ana), anaAuth, edge.IdempotencyHeader, "idem-metrics-7719")
	if first.status != http.StatusCreated {
		t.Fatalf("booking: %d %s", first.status, first.body)
	}
	var b client.Booking
	mustJSON(t, first.body, &b)
	for _, c := range []struct {
		method, path, body, authz string
		want                      int
	}{
		{"POST", "/v1/bookings", body(bob), bobAuth, http.StatusConflict},
		{"GET", "/v1/bookings/" + b.ID, "", bobAuth, http.StatusNotFound},
		{"GET", "/v1/clients/" + ana + "/bookings", "", anaAuth, http.StatusOK},
		{"GET", "/v1/clients/" + ana + "/bookings", "", bobAuth, http.StatusForbidden},
		{"GET", "/v1/clients/" + ana + "/no-such-route", "", anaAuth, http.StatusNotFound},
	} {
		if a := send(t, n, c.method, c.path, c.body, c.authz); a.status != c.want {
			t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, a.status, a.body, c.want)
		}
	}
	m := send(t, n, "GET", "/metrics", "", "")
	if m.status != http.StatusOK || !bytes.Contains(m.body, []byte(`route="POST /v1/bookings"`)) {
		t.Fatalf("/metrics: %d, or without the booking route's series:\n%s", m.status, m.body)
	}
	for _, secret := range []string{ana, bob, b.ID, "idem-metrics-7719", "no-such-route"} {
		if bytes.Contains(m.body, []byte(secret)) {
			t.Errorf("/metrics names %q", secret)
		}
	}
}
