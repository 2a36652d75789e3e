//go:build !race

package storage_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestForwardBatch_FollowerGroupCommits: proposals made on a follower while
// earlier ones are in flight reach the leader together (one ProposeBatch
// carries several), and every caller gets its own command's verdict: for
// each slot booked twice, one booking and one SLOT_TAKEN; a keyed command
// sent again has one effect.
func TestForwardBatch_FollowerGroupCommits(t *testing.T) {
	stores := st.MustOpenCluster(t, 3)
	r := st.NewRouter(stores...)
	r.Latency = 20 * time.Millisecond // nothing forwarded yet: no request reads it
	leader, follower := stores[0], stores[1]
	ctx := context.Background()
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))

	const slots = 20
	cmd := func(i int) *bookingv1.Command {
		id := fmt.Sprint("b", i)
		off := time.Duration(i%slots) * hour
		return st.WithKey(st.CreateBooking(st.Booking(id, "p", off, off+min30, off+min30)), "k"+id, "h"+id)
	}
	type answer struct {
		res *bookingv1.CommandResult
		err error
	}
	answers := make([]answer, 2*slots)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			res, err := follower.Propose(ctx, cmd(i))
			answers[i] = answer{res, err}
		})
	}
	wg.Wait()
	if r.LargestBatch() < 2 {
		t.Fatalf("largest forwarded batch: %d commands; want several", r.LargestBatch())
	}
	booked := map[int]string{}
	for i, a := range answers {
		id := fmt.Sprint("b", i)
		switch {
		case a.err == nil:
			if a.res.GetBooking().GetId() != id {
				t.Fatalf("%s: got the result of %q", id, a.res.GetBooking().GetId())
			}
			if other, ok := booked[i%slots]; ok {
				t.Fatalf("slot %d booked twice: %s and %s", i%slots, other, id)
			}
			booked[i%slots] = id
		case errors.Is(a.err, storage.ErrSlotTaken):
			if a.res.GetCode() != bookingv1.ResultCode_RESULT_CODE_SLOT_TAKEN {
				t.Fatalf("%s: SLOT_TAKEN error with result %v", id, a.res)
			}
			if _, err := leader.Booking(ctx, id); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("%s refused as SLOT_TAKEN but stored: %v", id, err)
			}
		default:
			t.Fatalf("%s: %v", id, a.err)
		}
	}
	if len(booked) != slots {
		t.Fatalf("%d slots booked, want %d", len(booked), slots)
	}
	// Sent again (batched with each other), keyed commands take no second effect.
	wg = sync.WaitGroup{}
	for i := range slots {
		wg.Go(func() {
			id := booked[i]
			var n int
			fmt.Sscanf(id, "b%d", &n)
			if res, err := follower.Propose(ctx, cmd(n)); err != nil || res.GetBooking().GetId() != id {
				t.Errorf("%s again: %v, %v", id, res, err)
			}
		})
	}
	wg.Wait()
	for _, id := range booked {
		if b, err := leader.Booking(ctx, id); err != nil || b.GetVersion() != 1 {
			t.Fatalf("%s after a retry: version %d, %v", id, b.GetVersion(), err)
		}
	}
}

// TestProposeBatchLocal_LeaderChanges: the Forwarder contract holds for every
// command of a batch. On a follower every command is refused with
// ErrNotLeader alone (not proposed). While leadership moves in the middle of
// batches, a command answered with a result was applied, one answered
// ErrNotLeader alone was certainly not, and nothing else than these and
// ErrNotLeader with ErrOutcomeUnknown is answered.
func TestProposeBatchLocal_LeaderChanges(t *testing.T) {
	stores := st.MustOpenCluster(t, 3)
	st.NewRouter(stores...)
	old, follower := stores[0], stores[1]
	ctx := context.Background()
	mustPropose(t, old, st.CreateProvider(st.Provider("p")))
	next := 0
	batch := func(n int) []*bookingv1.Command {
		cmds := make([]*bookingv1.Command, n)
		for i := range cmds {
			off := time.Duration(next) * hour
			cmds[i] = st.CreateBooking(st.Booking(fmt.Sprint("b", next), "p", off, off+min30, off+min30))
			next++
		}
		return cmds
	}
	for i, o := range follower.ProposeBatchLocal(ctx, batch(5)) {
		if o.Result != nil || !errors.Is(o.Err, storage.ErrNotLeader) || errors.Is(o.Err, storage.ErrOutcomeUnknown) {
			t.Fatalf("command %d on a follower: %v, %v; want ErrNotLeader alone", i, o.Result, o.Err)
		}
	}

	var cmds []*bookingv1.Command
	var outs []storage.Outcome
	transferred := make(chan error, 1)
	go func() {
		time.Sleep(5 * time.Millisecond)
		transferred <- old.TransferLeadership(ctx)
	}()
	for done := false; !done; {
		select {
		case err := <-transferred:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		default:
		}
		c := batch(50)
		cmds = append(cmds, c...)
		outs = append(outs, old.ProposeBatchLocal(ctx, c)...)
	}
	id, _ := old.Leader()
	var leader *storage.Store
	for _, s := range stores {
		if s.ID() == id {
			leader = s
		}
	}
	if leader == nil || leader == old {
		t.Fatalf("leader after the transfer: %q", id)
	}
	if err := leader.LinearizableRead(ctx); err != nil {
		t.Fatal(err)
	}
	var applied, refused int
	for i, o := range outs {
		bid := cmds[i].GetCreateBooking().GetBooking().GetId()
		_, err := leader.Booking(ctx, bid)
		switch {
		case o.Result != nil:
			if o.Result.GetCode() != bookingv1.ResultCode_RESULT_CODE_OK || err != nil {
				t.Fatalf("%s answered %v but stored: %v", bid, o.Result, err)
			}
			applied++
		case errors.Is(o.Err, storage.ErrNotLeader) && !errors.Is(o.Err, storage.ErrOutcomeUnknown):
			if !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("%s answered %v (not applied) but stored: %v", bid, o.Err, err)
			}
			refused++
		case errors.Is(o.Err, storage.ErrNotLeader) && errors.Is(o.Err, storage.ErrOutcomeUnknown):
		default:
			t.Fatalf("%s: %v", bid, o.Err)
		}
	}
	if applied == 0 || refused == 0 {
		t.Fatalf("%d applied, %d refused of %d: want both", applied, refused, len(outs))
	}
}

// TestForwardBatch_ExchangeFails: when a batch's exchange fails as a whole,
// every command of it is answered as Forwarder.Propose's error would be: a
// refusal (ErrNotLeader alone) is retried, a transport failure or a reply
// that does not match the batch is an unknown outcome (a command without a
// key is not retried).
func TestForwardBatch_ExchangeFails(t *testing.T) {
	cfg := storage.LocalConfig()
	cfg.LeaderWaitTimeout = 300 * time.Millisecond
	stores, _ := st.MustOpenInmemClusterWith(t, 3, cfg)
	follower := stores[1]
	ctx := context.Background()
	var calls atomic.Int32
	for _, tc := range []struct {
		name     string
		f        batchForwarder
		unknown  bool
		minCalls int32
	}{
		{"refused", batchForwarder{calls: &calls, err: fmt.Errorf("%w: far side", storage.ErrNotLeader)}, false, 3},
		{"transport", batchForwarder{calls: &calls, err: errors.New("connection reset by peer")}, true, 1},
		{"short reply", batchForwarder{calls: &calls}, true, 1},
	} {
		calls.Store(0)
		follower.SetForwarder(tc.f)
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				_, err := follower.Propose(ctx, st.CreateProvider(st.Provider(fmt.Sprint("p", i))))
				if !errors.Is(err, storage.ErrNotLeader) || errors.Is(err, storage.ErrOutcomeUnknown) != tc.unknown {
					t.Errorf("%s: %v; want ErrNotLeader, outcome unknown %v", tc.name, err, tc.unknown)
				}
			})
		}
		wg.Wait()
		if n := calls.Load(); n < tc.minCalls || tc.unknown && n > 5 {
			t.Errorf("%s: %d batches sent", tc.name, n)
		}
	}
}

// batchForwarder fails every batch with err, or (err nil) answers with no
// outcome at all.
type batchForwarder struct {
	calls *atomic.Int32
	err   error
}

func (f batchForwarder) Propose(context.Context, raft.ServerID, raft.ServerAddress, *bookingv1.Command) (*bookingv1.CommandResult, error) {
	panic("a BatchForwarder's proposals go through ProposeBatch")
}

func (f batchForwarder) ProposeBatch(context.Context, raft.ServerID, raft.ServerAddress, []*bookingv1.Command) ([]storage.Outcome, error) {
	f.calls.Add(1)
	return nil, f.err
}

func (f batchForwarder) ReadIndex(context.Context, raft.ServerID, raft.ServerAddress) (uint64, error) {
	return 0, errors.New("connection reset by peer")
}
