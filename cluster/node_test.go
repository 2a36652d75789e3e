package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/load"
)

// newProvider creates a provider open around the clock with the given services.
func newProvider(t *testing.T, c *client.Client, services ...client.Service) *client.Provider {
	t.Helper()
	p := load.LoadProvider("buenos-aires", 0)
	p.Services = services
	got, err := c.CreateProvider(context.Background(), p, "")
	if err != nil {
		t.Fatalf("create provider: %v", err)
	}
	return got
}

func svc(name string, minutes, buffer int) client.Service {
	return client.Service{Name: name, DurationMinutes: minutes, BufferMinutes: buffer, Price: client.Money{Amount: "1500.00", Currency: "ARS"}}
}

// tomorrowAt is a local wall time two days ahead in Buenos Aires, as RFC 3339.
func tomorrowAt(hour, minute int) string {
	loc, _ := time.LoadLocation("America/Argentina/Buenos_Aires")
	now := time.Now().In(loc)
	return time.Date(now.Year(), now.Month(), now.Day()+2, hour, minute, 0, 0, loc).Format(time.RFC3339)
}

// Test_SingleNode_ConcurrentBookings sends 200 concurrent requests over HTTP for
// overlapping slots of one provider and checks that exactly one wins: the others get
// 409 slot_unavailable, and the store holds one booking.
func Test_SingleNode_ConcurrentBookings(t *testing.T) {
	// 200 requests at once under -race on two cores: give each the time to be
	// answered, so the test judges answers, not the machine's speed. The first
	// request of each of 200 tokens is charged to the one client IP before its
	// token is verified: no per-IP limit here.
	n := clustertest.MustStartNode(t, func(c *cluster.Config) {
		c.ActorRequestTimeout = 10 * time.Second
		c.Limits.PerIP = rate.Inf
	})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}, Timeout: 30 * time.Second}
	c := client.New(n.URL(), hc).WithToken(clustertest.Token(t, n, auth.RoleOperator, "ops"))

	cases := []struct {
		name     string
		services []client.Service
		// starts[i] is the start requested with service i%len(services)
		starts []string
	}{
		{"same slot", []client.Service{svc("Corte", 30, 0)}, []string{tomorrowAt(10, 0)}},
		{"overlapping durations", []client.Service{svc("Corte", 30, 0), svc("Color", 120, 0), svc("Barba", 15, 0)},
			[]string{tomorrowAt(10, 0), tomorrowAt(9, 0), tomorrowAt(10, 15)}},
		{"buffers", []client.Service{svc("Corte", 30, 30), svc("Barba", 15, 0)},
			[]string{tomorrowAt(10, 0), tomorrowAt(10, 45)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t, c, tc.services...)
			const N = 200
			// 200 clients, each booking for itself with its own token (one
			// subject sending 200 at once would be rate-limited).
			clients := make([]*client.Client, N)
			for i := range N {
				clients[i] = c.WithToken(clustertest.Token(t, n, auth.RoleClient, fmt.Sprintf("cli-%d", i)))
			}
			var wg sync.WaitGroup
			results := make([]error, N)
			for i := range N {
				wg.Add(1)
				go func() {
					defer wg.Done()
					k := i % len(tc.starts)
					_, results[i] = clients[i].Book(context.Background(), client.BookingRequest{
						ProviderID: p.ID, ServiceID: p.Services[k%len(p.Services)].ID,
						ClientID: fmt.Sprintf("cli-%d", i), Start: tc.starts[k],
					}, "")
				}()
			}
			wg.Wait()
			won := 0
			for i, err := range results {
				switch {
				case err == nil:
					won++
				case client.Code(err) != "slot_unavailable":
					t.Errorf("request %d: %v, want 201 or 409 slot_unavailable", i, err)
				}
			}
			if won != 1 {
				t.Fatalf("%d requests won the slot, want exactly 1", won)
			}
			got, err := n.Store().ProviderBookings(context.Background(), p.ID, time.Now(), time.Now().AddDate(0, 0, 5))
			if err != nil || len(got) != 1 {
				t.Fatalf("store holds %d bookings (err %v), want 1", len(got), err)
			}
		})
	}
}

// BenchmarkNode_Book measures booking commits through HTTP on one node: throughput
// and p50/p99 at 1, 16 and 256 concurrent clients, each on its own provider (spread)
// and all on one provider (hot).
//
//	go test -run '^$' -bench Node_Book -benchtime 20000x ./cluster/
func BenchmarkNode_Book(b *testing.B) {
	// Load clients send far above a person's rate, up to 256 new tokens at once
	// from one IP: no per-subject or per-IP limit.
	n := clustertest.MustStartNode(b, func(c *cluster.Config) { c.Limits.PerSubject, c.Limits.PerIP = rate.Inf, rate.Inf })
	signer, err := auth.LoadSigner(clustertest.TokenDir(b))
	if err != nil {
		b.Fatal(err)
	}
	tokens := auth.NewTokenCache(signer, time.Hour)
	for _, mode := range []load.Mode{load.Spread, load.Hot} {
		for _, clients := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/clients=%d", mode, clients), func(b *testing.B) {
				r, err := load.Run(context.Background(), load.Config{
					Targets: []string{n.URL()}, Clients: clients, Requests: b.N,
					Duration: 10 * time.Minute, Mode: mode, Tokens: tokens,
				})
				if err != nil {
					b.Fatal(err)
				}
				if r.Errors > 0 {
					b.Fatalf("%d errors: %v", r.Errors, r.Codes)
				}
				b.ReportMetric(r.Throughput, "bookings/s")
				b.ReportMetric(float64(r.P50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(r.P99.Microseconds())/1000, "p99-ms")
			})
		}
	}
}

// Test_SingleNode_IdempotencyKeyThroughRealStore replays a booking with the same
// Idempotency-Key through a real node (real FSM, whose key rules the edge's fakes do
// not share): the same booking comes back; another body with the key is 422.
func Test_SingleNode_IdempotencyKeyThroughRealStore(t *testing.T) {
	n := clustertest.MustStartNode(t, nil)
	c := clustertest.Operator(t, n)
	ctx := context.Background()
	p := newProvider(t, c, svc("Corte", 30, 0))
	pp, err := c.CreateProvider(ctx, load.LoadProvider("buenos-aires", 1), "prov-key-1")
	if err != nil {
		t.Fatalf("create provider with a key: %v", err)
	}
	if again, err := c.CreateProvider(ctx, load.LoadProvider("buenos-aires", 1), "prov-key-1"); err != nil || again.ID != pp.ID {
		t.Fatalf("replayed provider creation: %+v %v, want %s", again, err, pp.ID)
	}
	req := client.BookingRequest{ProviderID: p.ID, ServiceID: p.Services[0].ID, ClientID: "cli-ana", Start: tomorrowAt(10, 0)}
	first, err := c.Book(ctx, req, "book-key-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Book(ctx, req, "book-key-1")
	if err != nil || again.ID != first.ID {
		t.Fatalf("replay: %+v %v, want booking %s", again, err, first.ID)
	}
	req.Start = tomorrowAt(11, 0)
	if _, err := c.Book(ctx, req, "book-key-1"); client.Code(err) != "idempotency_key_reused" {
		t.Fatalf("same key, other body: %v, want 422 idempotency_key_reused", err)
	}
	got, err := n.Store().ProviderBookings(ctx, p.ID, time.Now(), time.Now().AddDate(0, 0, 5))
	if err != nil || len(got) != 1 {
		t.Fatalf("store holds %d bookings (%v), want 1", len(got), err)
	}
}

// Test_SingleNode_ConcurrentPatchesLoseNothing sends concurrent PATCHes that each
// add a service: every acknowledged addition is in the provider afterwards (an
// update computed from an older version must not overwrite a newer one).
func Test_SingleNode_ConcurrentPatchesLoseNothing(t *testing.T) {
	n := clustertest.MustStartNode(t, nil)
	c := clustertest.Operator(t, n)
	p := newProvider(t, c, svc("Corte", 30, 0))
	const N = 8
	var wg sync.WaitGroup
	codes := make([]int, N)
	for i := range N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"add_services":[{"name":"Extra %d","duration_minutes":15,"price":{"amount":"100.00","currency":"ARS"}}]}`, i)
			req, _ := http.NewRequest(http.MethodPatch, n.URL()+"/v1/providers/"+p.ID, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+c.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	got, err := c.Provider(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for _, code := range codes {
		if code == http.StatusOK {
			ok++
		}
	}
	if ok != N || len(got.Services) != 1+N {
		t.Fatalf("%d of %d PATCHes acknowledged (%v); provider has %d services, want %d", ok, N, codes, len(got.Services), 1+N)
	}
}
