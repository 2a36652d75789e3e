package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// A forwarded batch longer than the leader's MaxBatch (a peer's message, not
// a follower's own batcher, which never packs more) is refused whole: no
// command of it proposed, each told ErrBatchTooLarge; one of MaxBatch passes.
func TestProposeBatchLocal_RefusesOversizedBatch(t *testing.T) {
	cfg := st.Config(t)
	cfg.MaxBatch = 8
	s := st.MustOpen(t, cfg)
	ctx := context.Background()
	mustPropose(t, s, st.CreateProvider(st.Provider("p")))
	batch := func(from, n int) []*bookingv1.Command {
		cmds := make([]*bookingv1.Command, n)
		for i := range cmds {
			off := time.Duration(from+i) * hour
			cmds[i] = st.CreateBooking(st.Booking(fmt.Sprint("b", from+i), "p", off, off+min30, off+min30))
		}
		return cmds
	}
	for i, o := range s.ProposeBatchLocal(ctx, batch(0, cfg.MaxBatch+1)) {
		if o.Result != nil || !errors.Is(o.Err, storage.ErrBatchTooLarge) {
			t.Fatalf("command %d of an oversized batch: %v, %v; want ErrBatchTooLarge", i, o.Result, o.Err)
		}
	}
	for i := range cfg.MaxBatch + 1 {
		if _, err := s.Booking(ctx, fmt.Sprint("b", i)); err == nil {
			t.Fatalf("booking b%d of the refused batch was stored", i)
		}
	}
	for i, o := range s.ProposeBatchLocal(ctx, batch(100, cfg.MaxBatch)) {
		if o.Err != nil || o.Result == nil {
			t.Fatalf("command %d of a batch of MaxBatch: %v, %v", i, o.Result, o.Err)
		}
	}
}
