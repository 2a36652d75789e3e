package storage_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/barberpro/edge/edge/ids"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// loadProvider is a provider as `barberpro bench` creates them
// (simulations/load.LoadProvider): open around the clock every day, one
// 15-minute service, a year of horizon.
func loadProvider(id string) *bookingv1.Provider {
	p := st.Provider(id)
	p.Services[0].DurationMinutes, p.Services[0].BufferMinutes = 15, 0
	p.WeeklyHours = make([]*bookingv1.DayHours, 7)
	for d := range p.WeeklyHours {
		p.WeeklyHours[d] = &bookingv1.DayHours{Ranges: []*bookingv1.TimeRange{{StartMinute: 0, EndMinute: 24 * 60}}}
	}
	p.HorizonDays = 365
	return p
}

// bookingIDs is how a benchmark names its bookings: as the edge does
// (ids.New: in creation-time order) or as it did before session 18 (100
// random bits, randomBookingID).
type bookingIDs func() string

// orderedBookingID is a booking id as the edge makes it.
func orderedBookingID() string { return ids.New(ids.Prefix(ids.Booking, "buenos-aires")) }

// randomBookingID is a booking id as the edge made it before session 18:
// 20 base32 characters of 100 random bits, in no order.
func randomBookingID() string {
	var b [13]byte
	_, _ = rand.Read(b[:])
	return ids.Prefix(ids.Booking, "buenos-aires") + "_" + base32.StdEncoding.EncodeToString(b[:])[:20]
}

// applyBookingsBatch is the log of a batch of n bookings named by newID, booking k of it
// (k counted over every batch) on provider k mod providers, each at the
// next free 15-minute slot of its provider, with an idempotency key and
// request hash (the bench's client sends a key) and the audit record the edge
// puts on a write of an audited vertical (barber: writes).
func applyBookingsBatch(tb testing.TB, first, n, providers int, newID bookingIDs) []byte {
	cmds := make([]*bookingv1.Command, n)
	for j := range cmds {
		k := first + j
		off := time.Duration(k/providers) * 15 * time.Minute
		b := st.Booking(newID(), fmt.Sprint("p", k%providers), off, off+15*time.Minute, off+15*time.Minute)
		b.ClientId = fmt.Sprint("cli-", k%providers)
		cmds[j] = st.WithKey(st.CreateBooking(b), fmt.Sprintf("kJ8vQm2xZr5tWn0pLs3uYd7hBf1cGe4aNi6oTq9wXk:POST /v1/bookings:load-%d", k),
			string(sha256.New().Sum([]byte(b.Id))[:32]))
		cmds[j].Audit = []*bookingv1.AuditRecord{{Subject: b.ClientId, Role: "client", Action: "booking.create", Object: b.Id, Node: "ba-1"}}
	}
	return mustMarshal(tb, cmds...)
}

// openLoadFSM opens a test FSM that commits without fsync (as a node's:
// fsmsync.go), closed when tb ends, holding load providers p0..p(n-1) at
// indexes 1..n.
func openLoadFSM(tb testing.TB, n int) *storage.TestFSM {
	f, err := storage.OpenTestFSM(filepath.Join(tb.TempDir(), "fsm.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = f.Close() })
	f.StartSyncing(time.Hour)
	for p := range n {
		if r := f.Apply(uint64(p+1), mustMarshal(tb, st.CreateProvider(loadProvider(fmt.Sprint("p", p))))); r[0].Code != bookingv1.ResultCode_RESULT_CODE_OK {
			tb.Fatal(r[0])
		}
	}
	return f
}

// BenchmarkApplyBookings is the FSM's apply of the bookings `barberpro bench
// --mode spread` proposes: one ApplyBatch of one log holding cmds
// CreateBookings (each audited), over 32 providers (spread) or one (hot), no
// Raft, commits without fsync (as a node's FSM: fsmsync.go). The batches
// are encoded with the timer stopped, so allocs/op is the FSM's own (per
// batch: divide by cmds for a booking's).
//
//	go test ./storage -run '^$' -bench BenchmarkApplyBookings -benchmem -count 6 | benchstat -
func BenchmarkApplyBookings(b *testing.B) {
	for _, providers := range []int{32, 1} {
		for _, cmds := range []int{1, 64} {
			b.Run(fmt.Sprintf("providers=%d/cmds=%d", providers, cmds), func(b *testing.B) {
				benchApplyBookings(b, providers, cmds, 0, orderedBookingID)
			})
		}
	}
}

// BenchmarkApplyDeferredCommit is BenchmarkApplyBookings with small batches
// over 100 providers (the shape of `barberpro bench` at 100 clients), the
// open transaction committed after every batch (commit=each, as before
// deferred commits) or when due (commit=deferred: FSMSyncInterval, 100 ms),
// the bookings named as the edge names them (ids=ordered) or as it did before
// session 18 (ids=random: each booking's keys land on a page of their own).
//
//	go test ./storage -run '^$' -bench BenchmarkApplyDeferredCommit -benchmem -count 6 | benchstat -
func BenchmarkApplyDeferredCommit(b *testing.B) {
	for _, cmds := range []int{1, 8, 32} {
		for _, mode := range []struct {
			name  string
			every time.Duration
		}{{"each", -1}, {"deferred", storage.DefaultFSMSyncInterval}} {
			for _, names := range []struct {
				name  string
				newID bookingIDs
			}{{"random", randomBookingID}, {"ordered", orderedBookingID}} {
				b.Run(fmt.Sprintf("cmds=%d/commit=%s/ids=%s", cmds, mode.name, names.name), func(b *testing.B) {
					benchApplyBookings(b, 100, cmds, mode.every, names.newID)
				})
			}
		}
	}
}

// benchApplyBookings applies b.N batches of cmds bookings over providers;
// commitEvery, if not 0, replaces the FSM's commit interval (-1: every batch).
func benchApplyBookings(b *testing.B, providers, cmds int, commitEvery time.Duration, newID bookingIDs) {
	f := openLoadFSM(b, providers)
	if commitEvery != 0 {
		f.SetCommitEvery(max(commitEvery, 0))
	}
	index := uint64(providers)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		index++
		logs := []*raft.Log{{Index: index, Term: 1, Type: raft.LogCommand, Data: applyBookingsBatch(b, i*cmds, cmds, providers, newID)}}
		b.StartTimer()
		out := f.ApplyLogs(logs)
		if res, _ := out[0].([]*bookingv1.CommandResult); len(res) != cmds || res[cmds-1].Code != bookingv1.ResultCode_RESULT_CODE_OK {
			b.Fatalf("batch %d: %v", i, out[0])
		}
	}
	b.ReportMetric(float64(b.N*cmds)/b.Elapsed().Seconds(), "bookings/s")
}

// BenchmarkApplyCommitEvery is the FSM's apply and commit of the bench's
// bookings (100 providers and clients, batches of 32) on a file already
// holding 20,480 of them, committed every `bookings` bookings: 512 is about
// what a node commits per 100 ms (FSMSyncInterval) at the spread row's
// ~5,000 bookings/s, 1,536 three times as many. pages/commit is what bbolt
// writes per commit, one pwrite a page (docs/PERFORMANCE.md, session 26).
//
//	go test ./storage -run '^$' -bench BenchmarkApplyCommitEvery -benchtime 960x -count 3
func BenchmarkApplyCommitEvery(b *testing.B) {
	const providers, cmds, warm = 100, 32, 640
	for _, perCommit := range []int{512, 1536} {
		b.Run(fmt.Sprintf("bookings=%d", perCommit), func(b *testing.B) {
			f := openLoadFSM(b, providers)
			f.SetCommitEvery(time.Hour) // committed below, every perCommit bookings
			batches := make([][]byte, warm+b.N)
			for i := range batches {
				batches[i] = applyBookingsBatch(b, i*cmds, cmds, providers, orderedBookingID)
			}
			index := uint64(providers)
			apply := func(i int) {
				index++
				f.ApplyLogs([]*raft.Log{{Index: index, Term: 1, Type: raft.LogCommand, Data: batches[i]}})
				if (i+1)%(perCommit/cmds) == 0 {
					if err := f.Flush(); err != nil {
						b.Fatal(err)
					}
				}
			}
			for i := range warm {
				apply(i)
			}
			pages0, commits0 := f.PageWrites(), f.Commits()
			b.ResetTimer()
			for i := range b.N {
				apply(warm + i)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*cmds)/b.Elapsed().Seconds(), "bookings/s")
			if c := f.Commits() - commits0; c > 0 {
				b.ReportMetric(float64(f.PageWrites()-pages0)/float64(c), "pages/commit")
			}
		})
	}
}
