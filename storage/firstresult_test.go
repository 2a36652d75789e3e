package storage_test

import (
	"bytes"
	"context"
	"testing"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	st "github.com/barberpro/edge/storage/storagetest"
	"google.golang.org/protobuf/proto"
)

// TestStore_IdempotencyRecordKeepsFirstAnswer: the record of a keyed command
// keeps the result it first answered (the booking as created, though it was
// cancelled since), for the edge to replay byte for byte; two replicas applying
// the same commands keep the same bytes.
func TestStore_IdempotencyRecordKeepsFirstAnswer(t *testing.T) {
	ctx := context.Background()
	var kept [][]byte
	for range 2 {
		s := st.MustOpen(t, st.Config(t))
		mustPropose(t, s, st.CreateProvider(st.Provider("p")))
		first := mustPropose(t, s, st.WithKey(st.CreateBooking(st.Booking("b1", "p", 0, min30, min30)), "key-1", "hash-1"))
		mustPropose(t, s, st.CancelBooking("b1"))
		rec, err := s.Idempotency(ctx, "key-1")
		if err != nil {
			t.Fatal(err)
		}
		got := new(bookingv1.CommandResult)
		if err := proto.Unmarshal(rec.FirstResult, got); err != nil || len(rec.FirstResult) == 0 {
			t.Fatalf("first_result %x: %v", rec.FirstResult, err)
		}
		if !proto.Equal(got.Booking, first.Booking) || got.Booking.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED {
			t.Fatalf("first_result booking %v, want %v", got.Booking, first.Booking)
		}
		if got.Note != nil || got.Key != nil || got.Index != 0 {
			t.Fatalf("first_result keeps more than the answer: %v", got)
		}
		kept = append(kept, rec.FirstResult)
	}
	if !bytes.Equal(kept[0], kept[1]) {
		t.Fatalf("two replicas keep different first results:\n%x\n%x", kept[0], kept[1])
	}
}
