package session_test

import (
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// TestReview9_ReturningClientAfterErasureHasNotesAgain: a client erases
// their health data, later consents again and books a new session. Its
// treating provider cannot write notes for the NEW session: 410 erased, forever
// (the store's Erasure record and the KEK ledger name the client, not the data
// that existed at erasure time, and erased() is checked before a new data key
// is made). psychology.md erases the data that existed; edge.localErase even
// expects "a key since" the erasure. Clinical notes of later therapy are lost.
func TestReview9_ReturningClientAfterErasureHasNotesAgain(t *testing.T) {
	e := newEnv(t, true)
	rep, err := e.do(t, treating, bookingID, putNotes(marker), "notes.write", "ok")
	wantCode(t, rep, err, calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED, nil)
	e.store.erase(client)
	er, _ := e.store.Erasure(t.Context(), client)
	if err := e.kek.RecordErasure(client, er.GetKeyIds()...); err != nil {
		t.Fatal(err)
	}
	const later = "bkg_buenos-aires_after-erasure"
	e.store.put(&bookingv1.Booking{
		Id: later, ProviderId: provider, ClientId: client, Vertical: "psychology",
		StartMs: now.Add(30 * 24 * time.Hour).UnixMilli(), EndMs: now.Add(30*24*time.Hour + time.Hour).UnixMilli(),
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED, SessionStatus: bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED,
	})
	req := putNotes("notes of the new therapy")
	req.BookingId, req.Subject, req.Role, req.Node = later, treating.sub, treating.role, "node-entry"
	rep, _ = e.s.Do(t.Context(), req)
	if rep.GetError() != calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED {
		t.Errorf("notes of a session booked after the client's erasure: %s (%s), want ok", rep.GetError(), rep.GetDetail())
	}
}
