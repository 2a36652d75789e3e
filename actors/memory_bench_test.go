package actors_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/actors/actorstest"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// memoryActorsEnv sets how many calendar actors BenchmarkCalendars_MemoryPerActor
// activates; default defaultMemoryActors.
const (
	memoryActorsEnv     = "BARBERPRO_BENCH_ACTORS"
	defaultMemoryActors = 10_000
	// heapProfileEnv, when set, is the path prefix of a heap profile written
	// while the actors are active (PATH.bookings0, PATH.bookings10):
	// go tool pprof -sample_index=inuse_space -top PATH.bookings0
	heapProfileEnv = "BARBERPRO_BENCH_HEAPPROFILE"
)

// BenchmarkCalendars_MemoryPerActor activates N calendar actors (one per
// provider, as a first availability read does) on one actor system and reports
// the heap they hold per active actor: the growth of HeapAlloc and HeapInuse
// (after a GC, providers and bookings already in the store before the first
// reading) divided by N, and of the goroutine stacks. Each provider is
// provider() (3 services, 7-day hours); "bookings=10" gives each ten upcoming
// bookings, which its actor loads. N is $BARBERPRO_BENCH_ACTORS, default
// 10,000; the figure is 100,000 on one node:
//
//	BARBERPRO_BENCH_ACTORS=100000 go test -run '^$' -bench MemoryPerActor -benchtime 1x ./actors/
func BenchmarkCalendars_MemoryPerActor(b *testing.B) {
	n := defaultMemoryActors
	if v := os.Getenv(memoryActorsEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("$%s=%q: want a positive count", memoryActorsEnv, v)
		}
	}
	for _, bookings := range []int{0, 10} {
		b.Run(fmt.Sprintf("actors=%d/bookings=%d", n, bookings), func(b *testing.B) {
			var heapAlloc, heapInuse, stack float64
			for range b.N {
				a, i, s := activateMany(b, n, bookings)
				heapAlloc, heapInuse, stack = heapAlloc+a, heapInuse+i, stack+s
			}
			b.ReportMetric(heapAlloc/float64(b.N), "heap-alloc-B/actor")
			b.ReportMetric(heapInuse/float64(b.N), "heap-inuse-B/actor")
			b.ReportMetric(stack/float64(b.N), "stack-B/actor")
		})
	}
}

// activateMany stores n providers with bookings each, activates their calendar
// actors, and returns the heap (alloc, in use) and stack growth per actor.
func activateMany(b *testing.B, n, bookings int) (alloc, inuse, stack float64) {
	b.StopTimer()
	s := &indexedStore{Store: actorstest.NewStore(), byProvider: map[string][]*bookingv1.Booking{}}
	for i := range n {
		id := fmt.Sprintf("p%d", i)
		s.PutProvider(provider(id))
		for k := range bookings { // Wednesday 2 December on, one a day at 10:00
			start := at(2+k, 10, 0)
			s.byProvider[id] = append(s.byProvider[id], &bookingv1.Booking{
				Id: fmt.Sprintf("b%d-%d", i, k), ProviderId: id, ServiceId: "cut", ClientId: fmt.Sprintf("c%d", k),
				StartMs: start, EndMs: start + 30*60_000, BlockedUntilMs: start + 40*60_000,
				Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED,
			})
		}
	}
	cfg := actorstest.Config(s.Store, clock)
	cfg.Store = s
	cfg.IdleTimeout = time.Hour // none retires while measured
	cfg.RequestTimeout = time.Minute
	cals, err := actors.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := cals.Start(); err != nil {
		b.Fatal(err)
	}
	defer cals.Stop()
	before := memNow()
	b.StartTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var (
		next   atomic.Int64
		failed atomic.Value
		wg     sync.WaitGroup
	)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if _, err := cals.Availability(ctx, &calendarv1.AvailabilityRequest{
					ProviderId: fmt.Sprintf("p%d", i), ServiceId: "cut", FromDate: "2026-12-02", Days: 1,
				}); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("activation: %v", err)
	}
	if got := cals.Active(); got != n {
		b.Fatalf("%d actors active, want %d", got, n)
	}
	after := memNow()
	if path := os.Getenv(heapProfileEnv); path != "" { // what the actors hold, by allocation site
		f, err := os.Create(fmt.Sprintf("%s.bookings%d", path, bookings))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	runtime.KeepAlive(s)
	per := func(a, z uint64) float64 { return (float64(z) - float64(a)) / float64(n) }
	return per(before.HeapAlloc, after.HeapAlloc), per(before.HeapInuse, after.HeapInuse), per(before.StackInuse, after.StackInuse)
}

// indexedStore is actorstest.Store with each provider's bookings in a slice
// of their own (actorstest scans every booking of every provider on each load:
// too slow for 100,000 providers with bookings). Only activations read them.
type indexedStore struct {
	*actorstest.Store
	byProvider map[string][]*bookingv1.Booking
}

// ProviderBookings returns copies of the provider's bookings meeting [from, to).
func (s *indexedStore) ProviderBookings(_ context.Context, providerID string, from, to time.Time) ([]*bookingv1.Booking, error) {
	var out []*bookingv1.Booking
	for _, b := range s.byProvider[providerID] {
		if b.GetBlockedUntilMs() > from.UnixMilli() && b.GetStartMs() < to.UnixMilli() {
			out = append(out, proto.Clone(b).(*bookingv1.Booking))
		}
	}
	return out, nil
}

// memNow is the memory statistics after two collections.
func memNow() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}
