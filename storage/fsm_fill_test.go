package storage_test

import (
	"testing"

	"github.com/hashicorp/raft"
)

// TestFSM_AppendOrderedBucketsFillTheirPages: bookings named in creation-time
// order (ids.New) go at the end of the buckets keyed by them, and bbolt
// fills those pages before it splits them (appendFillPercent) instead of
// leaving them half empty (its default): fewer pages to write per commit and
// a smaller file. Fails with bbolt's default fill (about 0.5 here).
func TestFSM_AppendOrderedBucketsFillTheirPages(t *testing.T) {
	const providers, cmds, batches = 50, 40, 100
	f := openLoadFSM(t, providers)
	for i := range batches {
		logs := []*raft.Log{{Index: uint64(providers + 1 + i), Term: 1, Type: raft.LogCommand,
			Data: applyBookingsBatch(t, i*cmds, cmds, providers, orderedBookingID)}}
		f.ApplyLogs(logs)
	}
	for _, bucket := range []string{"bookings", "audit", "audit_object", "idempotency_time"} {
		fill, err := f.LeafFill(bucket)
		if err != nil {
			t.Fatal(err)
		}
		if fill < 0.8 {
			t.Errorf("%s: leaf pages %.0f%% full, want at least 80%%", bucket, 100*fill)
		}
	}
}
