package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster/clustertest"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
)

// Test_Review9_FSMReschedulesPsychologyBookingWithoutConsent: the FSM, "the
// judge", checks consent on CreateBooking/CreateSeries only. A psychology
// booking that survived its client's consent withdrawal (it had started: the
// withdrawal cancels future ones only) is rescheduled into the next week by a
// plain RescheduleBooking: a future psychology booking with no active consent.
func Test_Review9_FSMReschedulesPsychologyBookingWithoutConsent(t *testing.T) {
	n := clustertest.MustStartNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	now := time.Now().UnixMilli()
	propose := func(at int64, cmd *bookingv1.Command) *bookingv1.CommandResult {
		t.Helper()
		cmd.ProposedAtMs = at
		res, err := n.Store().Propose(ctx, cmd)
		if err != nil {
			t.Fatalf("propose %T: %v", cmd.GetOp(), err)
		}
		return res
	}
	const pid, client = "prv_buenos-aires_r9", "c-r9"
	propose(now, &bookingv1.Command{Op: &bookingv1.Command_CreateProvider{CreateProvider: &bookingv1.CreateProvider{
		Provider: &bookingv1.Provider{Id: pid, Name: "Lic. R9", Vertical: "psychology", City: "buenos-aires",
			Jurisdiction: "ar", Timezone: "America/Argentina/Buenos_Aires"}}}})
	propose(now, &bookingv1.Command{Op: &bookingv1.Command_GrantConsent{GrantConsent: &bookingv1.GrantConsent{Consent: &bookingv1.Consent{
		Id: "cns_buenos-aires_r9", ClientId: client, Purpose: "psychology-care", Jurisdiction: "ar", TextVersion: "1",
		GrantedAtMs: now, ExpiresAtMs: now + int64(730*24*time.Hour/time.Millisecond)}}}})
	start := time.Now().Add(24 * time.Hour).Truncate(time.Hour)
	b := &bookingv1.Booking{Id: "bkg_buenos-aires_r9", ProviderId: pid, ServiceId: "s", ClientId: client,
		StartMs: start.UnixMilli(), EndMs: start.Add(50 * time.Minute).UnixMilli(), BlockedUntilMs: start.Add(time.Hour).UnixMilli(),
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED, Vertical: "psychology",
		SessionStatus: bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED}
	if res := propose(now, &bookingv1.Command{Op: &bookingv1.Command_CreateBooking{CreateBooking: &bookingv1.CreateBooking{
		Booking: b, ConsentPurpose: "psychology-care"}}}); res.GetCode() != bookingv1.ResultCode_RESULT_CODE_OK {
		t.Fatalf("create booking: %v", res)
	}
	// Twenty minutes into the session the client withdraws: it survives.
	withdrawAt := start.Add(20 * time.Minute).UnixMilli()
	res := propose(withdrawAt, &bookingv1.Command{Op: &bookingv1.Command_WithdrawConsent{WithdrawConsent: &bookingv1.WithdrawConsent{
		ClientId: client, ConsentId: "cns_buenos-aires_r9", Verticals: []string{"psychology"}}}})
	if res.GetCode() != bookingv1.ResultCode_RESULT_CODE_OK || len(res.GetBookings()) != 0 {
		t.Fatalf("withdraw: %v", res)
	}
	next := start.Add(7 * 24 * time.Hour)
	// Propose answers a refusal with the result and an error wrapping its
	// sentinel (storage.ErrConsentRequired), so it is called directly here.
	res, err := n.Store().Propose(ctx, &bookingv1.Command{ProposedAtMs: withdrawAt + 1, Op: &bookingv1.Command_RescheduleBooking{RescheduleBooking: &bookingv1.RescheduleBooking{
		BookingId: b.Id, StartMs: next.UnixMilli(), EndMs: next.Add(50 * time.Minute).UnixMilli(), BlockedUntilMs: next.Add(time.Hour).UnixMilli()}}})
	if res.GetCode() != bookingv1.ResultCode_RESULT_CODE_CONSENT_REQUIRED || !errors.Is(err, storage.ErrConsentRequired) {
		t.Errorf("the FSM rescheduled a psychology booking into the future after its client withdrew consent: %v (%v), want CONSENT_REQUIRED", res.GetCode(), err)
	}
}
