package storage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

const (
	min30 = 30 * time.Minute
	hour  = time.Hour
)

// TestStore_FSMRules drives every FSM rule through Propose on one leader.
// Each case gets its own provider ("p-<case>") and booking ids prefixed by it.
func TestStore_FSMRules(t *testing.T) {
	s := st.MustOpen(t, st.Config(t))
	ctx := context.Background()

	type step struct {
		cmd     func(p string) *bookingv1.Command
		wantErr error // nil = OK
	}
	bk := func(id string, start, end, blocked time.Duration) func(p string) *bookingv1.Command {
		return func(p string) *bookingv1.Command { return st.CreateBooking(st.Booking(p+id, p, start, end, blocked)) }
	}
	cancel := func(id string) func(p string) *bookingv1.Command {
		return func(p string) *bookingv1.Command { return st.CancelBooking(p + id) }
	}
	resched := func(id string, start, end, blocked time.Duration) func(p string) *bookingv1.Command {
		return func(p string) *bookingv1.Command { return st.RescheduleBooking(p+id, start, end, blocked) }
	}
	keyed := func(key, hash string, f func(p string) *bookingv1.Command) func(p string) *bookingv1.Command {
		return func(p string) *bookingv1.Command { return st.WithKey(f(p), p+key, hash) }
	}
	tests := []struct {
		name  string
		steps []step
		// want lists, in start order, the ids (without prefix) of the
		// provider's non-cancelled bookings at the end, with their start.
		want []string
	}{
		{"touching intervals allowed", []step{
			{bk("a", 0, min30, min30), nil},
			{bk("b", min30, hour, hour), nil},
		}, []string{"a", "b"}},
		{"same slot taken", []step{
			{bk("a", 0, min30, min30), nil},
			{bk("b", 0, min30, min30), storage.ErrSlotTaken},
		}, []string{"a"}},
		{"buffer of earlier booking blocks", []step{
			{bk("a", 0, min30, min30+10*time.Minute), nil},
			{bk("b", min30, hour, hour), storage.ErrSlotTaken},
			{bk("c", min30+10*time.Minute, hour, hour), nil},
		}, []string{"a", "c"}},
		{"buffer of new booking blocks", []step{
			{bk("a", hour, 2*hour, 2*hour), nil},
			{bk("b", min30, 50*time.Minute, hour+time.Minute), storage.ErrSlotTaken},
			{bk("c", min30, 50*time.Minute, hour), nil},
		}, []string{"c", "a"}},
		{"long booking far before still overlaps", []step{
			{bk("a", 0, 8*hour, 10*hour), nil},
			{bk("b", 9*hour, 9*hour+min30, 9*hour+min30), storage.ErrSlotTaken},
			{bk("c", 10*hour, 11*hour, 11*hour), nil},
		}, []string{"a", "c"}},
		{"contained booking overlaps", []step{
			{bk("a", 0, 2*hour, 2*hour), nil},
			{bk("b", min30, hour, hour), storage.ErrSlotTaken},
		}, []string{"a"}},
		{"cancel frees the slot", []step{
			{bk("a", 0, min30, min30), nil},
			{cancel("a"), nil},
			{bk("b", 0, min30, min30), nil},
		}, []string{"b"}},
		{"cancel twice is a no-op", []step{
			{bk("a", 0, min30, min30), nil},
			{cancel("a"), nil},
			{cancel("a"), nil},
		}, nil},
		{"cancel unknown", []step{
			{cancel("zz"), storage.ErrNotFound},
		}, nil},
		{"reschedule into free slot", []step{
			{bk("a", 0, min30, min30), nil},
			{resched("a", hour, hour+min30, hour+min30), nil},
			{bk("b", 0, min30, min30), nil},
		}, []string{"b", "a"}},
		{"reschedule overlapping itself", []step{
			{bk("a", 0, min30, min30), nil},
			{resched("a", 15*time.Minute, 45*time.Minute, 45*time.Minute), nil},
		}, []string{"a"}},
		{"reschedule into taken slot changes nothing", []step{
			{bk("a", 0, min30, min30), nil},
			{bk("b", hour, hour+min30, hour+min30), nil},
			{resched("a", hour, hour+min30, hour+min30), storage.ErrSlotTaken},
			{bk("c", 0, min30, min30), storage.ErrSlotTaken},
		}, []string{"a", "b"}},
		{"reschedule a cancelled booking", []step{
			{bk("a", 0, min30, min30), nil},
			{cancel("a"), nil},
			{resched("a", hour, hour+min30, hour+min30), storage.ErrInvalidTransition},
		}, nil},
		{"reschedule unknown", []step{
			{resched("zz", hour, hour+min30, hour+min30), storage.ErrNotFound},
		}, nil},
		{"unknown provider", []step{
			{func(p string) *bookingv1.Command {
				return st.CreateBooking(st.Booking(p+"a", p+"-missing", 0, min30, min30))
			}, storage.ErrNotFound},
		}, nil},
		{"invalid times", []step{
			{bk("a", min30, 0, min30), storage.ErrInvalid},
			{bk("b", 0, min30, 0), storage.ErrInvalid},
			{bk("c", 0, 0, 0), storage.ErrInvalid},
			{bk("d", 0, 9*hour, 10*hour+time.Minute), storage.ErrInvalid},
		}, nil},
		{"duplicate booking id", []step{
			{bk("a", 0, min30, min30), nil},
			{bk("a", hour, hour+min30, hour+min30), storage.ErrAlreadyExists},
		}, []string{"a"}},
		{"duplicate provider id", []step{
			{func(p string) *bookingv1.Command { return st.CreateProvider(st.Provider(p)) }, storage.ErrAlreadyExists},
		}, nil},
		{"idempotency same hash has one effect", []step{
			{keyed("k", "h1", bk("a", 0, min30, min30)), nil},
			{keyed("k", "h1", bk("a", 0, min30, min30)), nil},
		}, []string{"a"}},
		{"idempotency different hash", []step{
			{keyed("k", "h1", bk("a", 0, min30, min30)), nil},
			{keyed("k", "h2", bk("b", hour, hour+min30, hour+min30)), storage.ErrIdempotencyKeyReused},
		}, []string{"a"}},
		{"failed keyed command records nothing", []step{
			{bk("a", 0, min30, min30), nil},
			{keyed("k", "h1", bk("b", 0, min30, min30)), storage.ErrSlotTaken},
			{keyed("k", "h2", bk("c", hour, hour+min30, hour+min30)), nil},
		}, []string{"a", "c"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := fmt.Sprintf("p%02d-", i)
			if _, err := s.Propose(ctx, st.CreateProvider(st.Provider(p))); err != nil {
				t.Fatalf("create provider: %v", err)
			}
			for j, stp := range tc.steps {
				res, err := s.Propose(ctx, stp.cmd(p))
				if tc.steps[j].wantErr == nil {
					if err != nil {
						t.Fatalf("step %d: unexpected error %v", j, err)
					}
					if res.Code != bookingv1.ResultCode_RESULT_CODE_OK || res.Index == 0 {
						t.Fatalf("step %d: result %v", j, res)
					}
					continue
				}
				if !errors.Is(err, stp.wantErr) {
					t.Fatalf("step %d: error %v, want %v", j, err, stp.wantErr)
				}
				if res == nil || res.Code == bookingv1.ResultCode_RESULT_CODE_OK {
					t.Fatalf("step %d: result %v with error %v", j, res, err)
				}
				// A collision says the slot is taken, never by which booking
				// (its id, prefixed p, would reach the client's 409).
				if errors.Is(err, storage.ErrSlotTaken) && strings.Contains(err.Error()+res.GetDetail(), p) {
					t.Fatalf("step %d: slot taken names a record: %v / %q", j, err, res.GetDetail())
				}
			}
			got, err := s.ProviderBookings(ctx, p, st.T0.Add(-24*time.Hour), st.T0.Add(48*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, b := range got {
				ids = append(ids, b.Id[len(p):])
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
				t.Fatalf("bookings %v, want %v", ids, tc.want)
			}
		})
	}
}

// TestStore_IdempotentReplayReturnsCurrentState checks a same-hash retry
// answers with the booking as it is now, not as it was created.
func TestStore_IdempotentReplayReturnsCurrentState(t *testing.T) {
	s := st.MustOpen(t, st.Config(t))
	ctx := context.Background()
	mustPropose(t, s, st.CreateProvider(st.Provider("p")))
	create := func() *bookingv1.Command {
		return st.WithKey(st.CreateBooking(st.Booking("b1", "p", 0, min30, min30)), "key-1", "hash-1")
	}
	first := mustPropose(t, s, create())
	mustPropose(t, s, st.CancelBooking("b1"))
	again := mustPropose(t, s, create())
	if again.Booking.GetStatus() != bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED || again.Booking.Version != 2 {
		t.Fatalf("replay returned %v, want the cancelled booking", again.Booking)
	}
	if again.Index <= first.Index {
		t.Fatalf("replay index %d not after first %d", again.Index, first.Index)
	}
	rec, err := s.Idempotency(ctx, "key-1")
	if err != nil || rec.ResourceId != "b1" || string(rec.RequestHash) != "hash-1" {
		t.Fatalf("Idempotency = %v, %v", rec, err)
	}
	if _, err := s.Idempotency(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
}

// TestStore_UpdateProvider checks which fields an update replaces.
func TestStore_UpdateProvider(t *testing.T) {
	s := st.MustOpen(t, st.Config(t))
	ctx := context.Background()
	created := mustPropose(t, s, st.CreateProvider(st.Provider("p"))).Provider
	upd := st.Provider("p")
	upd.Name, upd.City, upd.Vertical, upd.SlotStepMinutes = "New", "cordoba", "psychology", 30
	cmd := &bookingv1.Command{ProposedAtMs: st.At(0), Op: &bookingv1.Command_UpdateProvider{UpdateProvider: &bookingv1.UpdateProvider{Provider: upd}}}
	res := mustPropose(t, s, cmd)
	got, err := s.Provider(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "New" || got.SlotStepMinutes != 30 || got.City != "buenos-aires" || got.Vertical != "barber" ||
		got.Version != 2 || got.UpdatedAtMs != st.At(0) || got.CreatedAtMs != created.CreatedAtMs || res.Provider.Version != 2 {
		t.Fatalf("updated provider %v", got)
	}
	missing := &bookingv1.Command{Op: &bookingv1.Command_UpdateProvider{UpdateProvider: &bookingv1.UpdateProvider{Provider: st.Provider("zz")}}}
	if _, err := s.Propose(ctx, missing); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("update unknown: %v", err)
	}
	bad := st.Provider("q")
	bad.Timezone = ""
	if _, err := s.Propose(ctx, st.CreateProvider(bad)); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("create without timezone: %v", err)
	}
	if _, err := s.Propose(ctx, &bookingv1.Command{}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("empty command: %v", err)
	}
}

// TestStore_Listings checks ListProviders and ClientBookings paging.
func TestStore_Listings(t *testing.T) {
	s := st.MustOpen(t, st.Config(t))
	ctx := context.Background()
	for i := range 5 {
		p := st.Provider(fmt.Sprintf("p%d", i))
		if i%2 == 1 {
			p.City = "rosario"
		}
		mustPropose(t, s, st.CreateProvider(p))
	}
	var ids []string
	after := ""
	for {
		items, next, err := s.ListProviders(ctx, storage.ProviderFilter{City: "buenos-aires", After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range items {
			ids = append(ids, p.Id)
		}
		if next == "" {
			break
		}
		after = next
	}
	if fmt.Sprint(ids) != "[p0 p2 p4]" {
		t.Fatalf("ListProviders = %v", ids)
	}
	for i := range 5 {
		cmd := st.CreateBooking(st.Booking(fmt.Sprintf("b%d", i), "p0", time.Duration(i)*hour, time.Duration(i)*hour+min30, time.Duration(i)*hour+min30))
		cmd.ProposedAtMs = st.At(time.Duration(i) * time.Minute)
		mustPropose(t, s, cmd)
	}
	ids = nil
	var page storage.Page
	page.Limit = 2
	for {
		items, next, err := s.ClientBookings(ctx, "client1", page)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range items {
			ids = append(ids, b.Id)
		}
		if next == "" {
			break
		}
		page.After = next
	}
	if fmt.Sprint(ids) != "[b4 b3 b2 b1 b0]" {
		t.Fatalf("ClientBookings = %v", ids)
	}
	if items, _, err := s.ClientBookings(ctx, "client", storage.Page{}); err != nil || len(items) != 0 {
		t.Fatalf("prefix client leaked: %v %v", items, err)
	}
	got, err := s.ProviderBookings(ctx, "p0", st.T0.Add(hour+min30), st.T0.Add(3*hour))
	if err != nil || len(got) != 1 || got[0].Id != "b2" {
		t.Fatalf("ProviderBookings window = %v, %v", got, err)
	}
}

func mustPropose(t testing.TB, s *storage.Store, cmd *bookingv1.Command) *bookingv1.CommandResult {
	t.Helper()
	res, err := s.Propose(context.Background(), cmd)
	if err != nil {
		t.Fatalf("Propose: %v", err)
	}
	return res
}
