//go:build !race

package storage

import (
	"fmt"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// bigProvider is the largest provider the edge accepts (edge/wire.go):
// 50 services with 200-rune names, 24 ranges on each weekday, 400 date
// overrides of 24 ranges each.
func bigProvider(id string) *bookingv1.Provider {
	ranges := func() []*bookingv1.TimeRange {
		out := make([]*bookingv1.TimeRange, 24)
		for i := range out {
			out[i] = &bookingv1.TimeRange{StartMinute: int32(i * 60), EndMinute: int32(i*60 + 30)}
		}
		return out
	}
	p := &bookingv1.Provider{Id: id, Name: id, Vertical: "barber", City: "buenos-aires", Jurisdiction: "ar",
		Timezone: "America/Argentina/Buenos_Aires", HorizonDays: 730}
	for i := range 50 {
		name := fmt.Sprintf("%0200d", i)
		p.Services = append(p.Services, &bookingv1.Service{Id: fmt.Sprint("s", i), Name: name, DurationMinutes: 30})
	}
	for range 7 {
		p.WeeklyHours = append(p.WeeklyHours, &bookingv1.DayHours{Ranges: ranges()})
	}
	for d := range 400 {
		p.DateOverrides = append(p.DateOverrides, &bookingv1.DateOverride{Date: fmt.Sprintf("2027-%02d-%02d", 1+d%12, 1+d%28), Ranges: ranges()})
	}
	return p
}

// maxProviderCacheHeap is what the FSM's providerCache may keep on the heap
// at most, whatever the providers it is given: a bound on entries alone
// lets providerCacheMax of the largest providers the edge accepts hold
// gigabytes.
const maxProviderCacheHeap = 64 << 20

// TestProviderCache_BoundsMemory fills a providerCache with the largest
// providers the edge accepts, with as many of them as it takes to exceed
// maxProviderCacheHeap if each were kept, and fails when the cache keeps
// more than maxProviderCacheHeap on the heap.
func TestProviderCache_BoundsMemory(t *testing.T) {
	raw, err := marshalOpts.Marshal(bigProvider("p"))
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var c providerCache
	one := heap()
	if c.decode("p0", raw) == nil {
		t.Fatal("the provider does not decode")
	}
	perEntry := heap() - one
	n := int(maxProviderCacheHeap/perEntry) + 20
	t.Logf("a cached provider of %d bytes holds %d bytes of heap; caching %d of them", len(raw), perEntry, n)
	before := heap()
	for i := range n {
		// Every id's record is its own copy, as bbolt hands them out.
		p := c.decode(fmt.Sprint("p", i), append([]byte(nil), raw...))
		if p == nil || !proto.Equal(p, bigProvider("p")) {
			t.Fatalf("provider %d decoded wrong", i)
		}
	}
	held := int64(heap()) - int64(before) + int64(perEntry)
	runtime.KeepAlive(&c)
	if held > maxProviderCacheHeap {
		t.Errorf("the provider cache holds %d MiB after %d large providers, want at most %d MiB",
			held>>20, n, maxProviderCacheHeap>>20)
	}
	// The bound must not stop the cache from caching: an ordinary provider
	// is decoded once, then served as cached while its record is unchanged.
	small, err := marshalOpts.Marshal(&bookingv1.Provider{Id: "small", Timezone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.decode("small", small); p == nil || c.decode("small", append([]byte(nil), small...)) != p {
		t.Error("an ordinary provider is decoded again although its record did not change")
	}
}
