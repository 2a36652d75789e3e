package storage_test

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// FuzzFSM_Apply feeds arbitrary bytes to the FSM as a Raft log entry. The FSM
// must never panic; undecodable data must give exactly one INVALID result;
// every command gets a known result code; no two non-cancelled bookings
// of a provider may ever overlap; the time indexes Compact walks match
// the records (Compact included); and the audit chain always verifies. Seeds: testdata/fuzz/FuzzFSM_Apply and the
// f.Add calls below.
func FuzzFSM_Apply(f *testing.F) {
	seed := func(cmds ...*bookingv1.Command) {
		b, err := proto.Marshal(&bookingv1.CommandBatch{Commands: cmds})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(st.CreateBooking(st.Booking("b1", "p", 0, time.Hour, time.Hour)))
	seed(st.CreateBooking(st.Booking("b2", "p", 30*time.Minute, time.Hour, 2*time.Hour)),
		st.RescheduleBooking("b0", time.Hour, 2*time.Hour, 2*time.Hour),
		st.CancelBooking("b0"))
	seed(st.WithKey(st.CreateProvider(st.Provider("q")), "k", "h"))
	found := func(id string) *bookingv1.Command {
		return &bookingv1.Command{Op: &bookingv1.Command_FoundGroup{FoundGroup: &bookingv1.FoundGroup{ClusterId: id}}}
	}
	seed(found("c1"), found("c2"), found(""))
	// Compact after a keyed booking and a cancellation, with cutoffs past both.
	seed(st.WithKey(st.CreateBooking(st.Booking("b3", "p", 3*time.Hour, 4*time.Hour, 4*time.Hour)), "k3", "h"),
		st.CancelBooking("b3"),
		&bookingv1.Command{ProposedAtMs: st.At(48 * time.Hour), Op: &bookingv1.Command_Compact{Compact: &bookingv1.Compact{
			IdempotencyTtlMs: time.Hour.Milliseconds(), CancelledRetentionMs: time.Hour.Milliseconds(), MaxRemovals: 10}}})
	// The psychology commands, with audit records, on provider p and booking b0.
	aud := &bookingv1.AuditRecord{Subject: "s", Role: "client", Action: "booking.create", Object: "b4"}
	psy := st.Provider("q2")
	psy.License = &bookingv1.License{Number: "1", Issuer: "x"}
	seed(st.CreateProvider(psy),
		&bookingv1.Command{Op: &bookingv1.Command_VerifyProvider{VerifyProvider: &bookingv1.VerifyProvider{ProviderId: "q2", VerifiedBy: "op"}}},
		&bookingv1.Command{ProposedAtMs: st.At(-time.Hour), Op: &bookingv1.Command_GrantConsent{GrantConsent: &bookingv1.GrantConsent{Consent: &bookingv1.Consent{
			Id: "k", ClientId: "client1", Purpose: "psychology-care", Jurisdiction: "ar", TextVersion: "1", ExpiresAtMs: st.At(time.Hour)}}}},
		&bookingv1.Command{ProposedAtMs: st.At(-time.Hour), Audit: []*bookingv1.AuditRecord{aud}, Op: &bookingv1.Command_CreateBooking{CreateBooking: &bookingv1.CreateBooking{
			Booking: &bookingv1.Booking{Id: "b4", ProviderId: "q2", ClientId: "client1", StartMs: st.At(5 * time.Hour), EndMs: st.At(6 * time.Hour),
				BlockedUntilMs: st.At(6 * time.Hour), SessionStatus: bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED},
			ConsentPurpose: "psychology-care", RequireVerified: true}}},
		&bookingv1.Command{Op: &bookingv1.Command_SetSessionStatus{SetSessionStatus: &bookingv1.SetSessionStatus{BookingId: "b4", Status: bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN}}},
		&bookingv1.Command{Op: &bookingv1.Command_PutClientKey{PutClientKey: &bookingv1.PutClientKey{Key: &bookingv1.ClientKey{ClientId: "client1", KeyId: "ky", Wrapped: []byte{1}, KekId: "kek"}}}},
		&bookingv1.Command{Op: &bookingv1.Command_PutNote{PutNote: &bookingv1.PutNote{Note: &bookingv1.SealedNote{BookingId: "b4", ClientId: "client1", KeyId: "ky", Nonce: []byte{1}, Ciphertext: []byte{2}}}}},
		&bookingv1.Command{Op: &bookingv1.Command_WithdrawConsent{WithdrawConsent: &bookingv1.WithdrawConsent{ClientId: "client1", ConsentId: "k", Verticals: []string{"barber"}}}},
		&bookingv1.Command{Audit: []*bookingv1.AuditRecord{aud}, Op: &bookingv1.Command_EraseHealthData{EraseHealthData: &bookingv1.EraseHealthData{ClientId: "client1"}}},
		&bookingv1.Command{Audit: []*bookingv1.AuditRecord{aud, aud}, Op: &bookingv1.Command_AppendAudit{AppendAudit: &bookingv1.AppendAudit{}}})
	seed(&bookingv1.Command{Op: &bookingv1.Command_CreateSeries{CreateSeries: &bookingv1.CreateSeries{
		Series: &bookingv1.Series{Id: "srs", ProviderId: "p", ClientId: "client1", EveryDays: 7},
		Bookings: []*bookingv1.Booking{
			st.Booking("o1", "p", 0, time.Hour, time.Hour),
			st.Booking("o2", "p", 7*24*time.Hour, 7*24*time.Hour+time.Hour, 7*24*time.Hour+time.Hour)}}}},
		&bookingv1.Command{Op: &bookingv1.Command_CancelSeries{CancelSeries: &bookingv1.CancelSeries{SeriesId: "srs"}}})
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})

	fsm, err := storage.OpenTestFSM(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = fsm.Close() })
	index := uint64(1)
	setup, _ := proto.Marshal(&bookingv1.CommandBatch{Commands: []*bookingv1.Command{
		st.CreateProvider(st.Provider("p")),
		st.CreateBooking(st.Booking("b0", "p", 0, 30*time.Minute, 40*time.Minute)),
	}})
	fsm.Apply(index, setup)

	f.Fuzz(func(t *testing.T, data []byte) {
		index++
		res := fsm.Apply(index, data)
		var batch bookingv1.CommandBatch
		if err := proto.Unmarshal(data, &batch); err != nil {
			if len(res) != 1 || res[0].Code != bookingv1.ResultCode_RESULT_CODE_INVALID {
				t.Fatalf("undecodable data gave %v", res)
			}
			return
		}
		if len(res) != len(batch.Commands) {
			t.Fatalf("%d results for %d commands", len(res), len(batch.Commands))
		}
		for _, r := range res {
			if r == nil || r.Code == bookingv1.ResultCode_RESULT_CODE_UNSPECIFIED || r.Index != index {
				t.Fatalf("bad result %v", r)
			}
		}
		checkNoOverlap(t, fsm)
		checkTimeIndexes(t, fsm)
		if rep, err := fsm.VerifyAudit(); err != nil {
			t.Fatalf("audit chain broken after %d entries: %v", rep.Entries, err)
		}
	})
}

// checkTimeIndexes fails unless idempotency_time has exactly one entry per
// idempotency record (at its created_at_ms: the record itself, or empty for
// a record of an older build in idempotency) and cancelled_time one per
// cancelled booking (at its updated_at_ms).
func checkTimeIndexes(t *testing.T, fsm *storage.TestFSM) {
	t.Helper()
	dump, err := fsm.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if len(dump["bookings"]) > 500 {
		return
	}
	atKey := func(ms int64, s string) string {
		return string(append(binary.BigEndian.AppendUint64(nil, uint64(max(ms, 0))), s...))
	}
	// A record of an older build is in idempotency with an empty entry; one
	// written since is its entry's value (idemlocator.go); a key has one.
	want := map[string]bool{}
	for k, v := range dump["idempotency"] {
		r := new(bookingv1.IdempotencyRecord)
		if err := proto.Unmarshal([]byte(v), r); err != nil {
			t.Fatal(err)
		}
		want[atKey(r.CreatedAtMs, k)] = true
	}
	keys := map[string]bool{}
	for k, v := range dump["idempotency_time"] {
		if keys[k[8:]] {
			t.Fatalf("idempotency key %q has two records", k[8:])
		}
		keys[k[8:]] = true
		if v == "" {
			continue // checked against idempotency below
		}
		r := new(bookingv1.IdempotencyRecord)
		if err := proto.Unmarshal([]byte(v), r); err != nil {
			t.Fatal(err)
		}
		if atKey(r.CreatedAtMs, r.Key) != k || dump["idempotency"][r.Key] != "" {
			t.Fatalf("idempotency_time entry %q holds the record of %q at %d", k, r.Key, r.CreatedAtMs)
		}
		want[k] = true
	}
	if !sameKeys(want, dump["idempotency_time"]) {
		t.Fatalf("idempotency_time %q does not match the records %v", dump["idempotency_time"], want)
	}
	want = map[string]bool{}
	for k, v := range dump["bookings"] {
		b := new(bookingv1.Booking)
		if err := proto.Unmarshal([]byte(v), b); err != nil {
			t.Fatal(err)
		}
		if b.Status == bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
			want[atKey(b.UpdatedAtMs, k)] = true
		}
	}
	if !sameKeys(want, dump["cancelled_time"]) {
		t.Fatalf("cancelled_time %q does not match the cancelled bookings %v", dump["cancelled_time"], want)
	}
}

func sameKeys(want map[string]bool, got map[string]string) bool {
	if len(want) != len(got) {
		return false
	}
	for k := range got {
		if !want[k] {
			return false
		}
	}
	return true
}

// checkNoOverlap fails if two non-cancelled bookings of a provider overlap,
// or if the time index disagrees with the bookings.
func checkNoOverlap(t *testing.T, fsm *storage.TestFSM) {
	t.Helper()
	dump, err := fsm.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if len(dump["bookings"]) > 500 {
		return // keep long fuzz runs fast; the state is checked while small
	}
	live := map[string][]*bookingv1.Booking{}
	for _, v := range dump["bookings"] {
		b := new(bookingv1.Booking)
		if err := proto.Unmarshal([]byte(v), b); err != nil {
			t.Fatal(err)
		}
		if b.Status != bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED {
			live[b.ProviderId] = append(live[b.ProviderId], b)
		}
	}
	n := 0
	for _, bs := range live {
		n += len(bs)
		for i, a := range bs {
			for _, b := range bs[i+1:] {
				if a.StartMs < b.BlockedUntilMs && b.StartMs < a.BlockedUntilMs {
					t.Fatalf("double booking: %v and %v", a, b)
				}
			}
		}
	}
	if len(dump["provider_time"]) != n {
		t.Fatalf("time index has %d entries for %d live bookings", len(dump["provider_time"]), n)
	}
	// Each index entry's value is its booking's blocked_until_ms: the overlap
	// check reads the index alone, so a stale value would let a double booking in.
	for _, bs := range live {
		for _, b := range bs {
			k := append(append([]byte(b.ProviderId), 0), binary.BigEndian.AppendUint64(nil, uint64(b.StartMs))...)
			v, ok := dump["provider_time"][string(append(k, b.Id...))]
			if !ok || len(v) != 8 || int64(binary.BigEndian.Uint64([]byte(v))) != b.BlockedUntilMs {
				t.Fatalf("time index entry of %s: %q (present %v), want blocked_until %d", b.Id, v, ok, b.BlockedUntilMs)
			}
		}
	}
}
