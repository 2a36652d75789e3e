package cluster

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/edge"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// refusingCalendars refuses every booking as slot taken and accepts cancels.
type refusingCalendars struct{ edge.Calendars }

func (refusingCalendars) Book(context.Context, *calendarv1.BookRequest) (*bookingv1.Booking, error) {
	return nil, fmt.Errorf("calendar: %w", actors.ErrSlotTaken)
}

func (refusingCalendars) Cancel(_ context.Context, r *calendarv1.CancelRequest) (*bookingv1.Booking, error) {
	return &bookingv1.Booking{Id: r.GetBookingId(), Vertical: "beauty"}, nil
}

// TestCalendarMetrics_Labels checks the labels of the calendar metrics: the
// provider's city from its id, its vertical from an answer, else from the
// lookup (read once), else "unknown"; the outcome from the actors sentinel.
func TestCalendarMetrics_Labels(t *testing.T) {
	reg := prometheus.NewRegistry()
	lookups := 0
	lookup := func(id string) string {
		lookups++
		if id == "prv_cordoba_psi" {
			return "psychology"
		}
		return ""
	}
	c := instrumentCalendars(refusingCalendars{}, reg, lookup)
	ctx := context.Background()
	for range 2 {
		c.Book(ctx, &calendarv1.BookRequest{ProviderId: "prv_cordoba_psi"})
	}
	c.Book(ctx, &calendarv1.BookRequest{ProviderId: "legacy-provider"})
	c.Cancel(ctx, &calendarv1.CancelRequest{BookingId: "bkg_rosario_1"})

	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "barberpro_calendar_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var l []string
			for _, lp := range m.GetLabel() {
				l = append(l, lp.GetName()+"="+lp.GetValue())
			}
			got[strings.Join(l, ",")] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"city=cordoba,op=book,outcome=slot_taken,vertical=psychology": 2,
		"city=rosario,op=cancel,outcome=ok,vertical=beauty":           1,
		"city=unknown,op=book,outcome=slot_taken,vertical=unknown":    1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("barberpro_calendar_requests_total = %v, want %v", got, want)
	}
	if lookups != 2 { // prv_cordoba_psi once (then remembered), legacy-provider once
		t.Errorf("lookups = %d, want 2", lookups)
	}
}

// TestCalendarMetrics_KnownVerticalAllocatesNothing checks that a request whose
// answer names a vertical already remembered for its provider costs no
// allocation in the metrics (the map is written only when the vertical is new).
func TestCalendarMetrics_KnownVerticalAllocatesNothing(t *testing.T) {
	m := instrumentCalendars(refusingCalendars{}, prometheus.NewRegistry(), nil).(*calendarMetrics)
	start := time.Now()
	m.observe("cancel", "prv_rosario_1", "bkg_rosario_1", "beauty", start, nil)
	if n := testing.AllocsPerRun(100, func() {
		m.observe("cancel", "prv_rosario_1", "bkg_rosario_1", "beauty", start, nil)
	}); n != 0 {
		t.Fatalf("observe with a known vertical: %v allocations, want 0", n)
	}
	if v, _ := m.verticals.Load("prv_rosario_1"); v != "beauty" {
		t.Fatalf("vertical remembered: %v, want beauty", v)
	}
}
