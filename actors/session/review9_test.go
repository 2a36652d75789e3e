package session_test

import (
	"testing"
	"time"

	"github.com/barberpro/edge/actors/session"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"google.golang.org/protobuf/proto"
)

// TestGetNotes_Review9_NoteMovedToAnotherBookingDoesNotOpen: the sealed note
// of one session, copied under another session of the same client (what
// someone who can write fsm.db — a tampered backup restored, a raw bbolt
// edit — does), must not open for that other session's provider. The AAD
// binds the note to its booking, but OpenNote takes the booking id from the
// stored record itself, and GetNotes never compares it with the session asked
// for, so the other provider reads the first provider's notes.
func TestGetNotes_Review9_NoteMovedToAnotherBookingDoesNotOpen(t *testing.T) {
	e := newEnv(t, true)
	text := "review9 " + marker
	rep, err := e.do(t, treating, bookingID, putNotes(text), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)

	const moved = "bk-review9-other"
	e.store.put(&bookingv1.Booking{
		Id: moved, ProviderId: other, ClientId: client, Vertical: "psychology",
		StartMs: now.Add(3 * time.Hour).UnixMilli(), EndMs: now.Add(4 * time.Hour).UnixMilli(),
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED, SessionStatus: bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED,
	})
	e.store.mu.Lock()
	e.store.notes[moved] = proto.Clone(e.store.notes[bookingID]).(*bookingv1.SealedNote)
	e.store.mu.Unlock()

	rep, err = e.do(t, otherProv, moved, getNotes(), "notes.read", "unavailable")
	if rep.GetNotes() == text {
		t.Fatalf("the provider of session %s read the notes of session %s (moved record opened)", moved, bookingID)
	}
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNAVAILABLE, session.ErrUnavailable)
}
