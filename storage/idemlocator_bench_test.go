package storage

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// BenchmarkIdemLocator_Memory reports the heap the locator holds per key
// (bytes/key) for keys as the edge makes them: the subject's scope, the
// route and a client's UUID (~67 bytes). The locator holds one per keyed
// write within the idempotency TTL.
//
//	go test ./storage -run '^$' -bench IdemLocator_Memory -benchtime 1x
func BenchmarkIdemLocator_Memory(b *testing.B) {
	const n = 200_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("s:AbCdEfGhIjKlMnOp POST /v1/bookings %08x-1234-4abc-8def-%012x", i, i*7919)
	}
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var l idemLocator
		for i, k := range keys {
			l.set(strings.Clone(k), int64(i)) // the FSM's key is the decoded command's own
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/key")
		runtime.KeepAlive(&l)
	}
}
