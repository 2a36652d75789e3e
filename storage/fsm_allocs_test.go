//go:build !race

package storage_test

import (
	"testing"

	"github.com/hashicorp/raft"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// maxAllocsPerBooking bounds the heap allocations of the FSM's apply of one
// audited, keyed booking in a batch of 64 over 32 providers, bbolt's own
// (cursors, nodes, the commit) included. The apply of main 9baa523 made
// about 150 here (a provider decoded per booking, the audit chain's last
// entry decoded per command, a string per time-index key scanned...); about
// 70 are left, most of them bbolt's and the command's own decoding.
const maxAllocsPerBooking = 100

// TestFSM_ApplyBookingAllocs applies batches of BenchmarkApplyBookings
// (32 providers, 64 bookings per log) and fails when a booking costs more
// than maxAllocsPerBooking allocations. Not under -race, which allocates
// on its own.
func TestFSM_ApplyBookingAllocs(t *testing.T) {
	const providers, cmds, runs = 32, 64, 10
	f := openLoadFSM(t, providers)
	var logs [][]*raft.Log
	for i := range runs + 1 { // AllocsPerRun runs once more to warm up
		logs = append(logs, []*raft.Log{{Index: uint64(providers + 1 + i), Term: 1, Type: raft.LogCommand,
			Data: applyBookingsBatch(t, i*cmds, cmds, providers, orderedBookingID)}})
	}
	next := 0
	var failed any
	perBatch := testing.AllocsPerRun(runs, func() {
		out := f.ApplyLogs(logs[next])
		next++
		if res, _ := out[0].([]*bookingv1.CommandResult); len(res) != cmds || res[cmds-1].Code != bookingv1.ResultCode_RESULT_CODE_OK {
			failed = out[0]
		}
	})
	if failed != nil {
		t.Fatalf("a booking was refused: %v", failed)
	}
	if per := perBatch / cmds; per > maxAllocsPerBooking {
		t.Errorf("applying a booking allocates %.0f times, want at most %d", per, maxAllocsPerBooking)
	} else {
		t.Logf("%.0f allocations per booking", per)
	}
}
