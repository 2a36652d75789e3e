package calendar_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/barberpro/edge/actors/calendar"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// fullWeekProvider works every day 07:00-13:00 and 14:00-22:00 in Buenos Aires.
func fullWeekProvider() *bookingv1.Provider {
	week := make([]*bookingv1.DayHours, 7)
	for i := range week {
		week[i] = &bookingv1.DayHours{Ranges: []*bookingv1.TimeRange{rng(7, 0, 13, 0), rng(14, 0, 22, 0)}}
	}
	return &bookingv1.Provider{
		Id: "p500", Timezone: "America/Argentina/Buenos_Aires", WeeklyHours: week,
		MinNoticeMinutes: 60, HorizonDays: 60,
		Services: []*bookingv1.Service{{Id: "cut", DurationMinutes: 30, BufferMinutes: 10}},
	}
}

// bookings500 places 500 non-overlapping bookings over the 31 days from `from`:
// each day has 19 positions 45 minutes apart (8 in the morning, 11 in the
// afternoon); 500 of the 589 are picked in a scattered order.
func bookings500(p *bookingv1.Provider, from calendar.Date) []calendar.Interval {
	loc, _ := calendar.Location(p)
	svc := p.Services[0]
	const perDay, total = 19, 19 * 31
	out := make([]calendar.Interval, 0, 500)
	for i := 0; i < 500; i++ {
		k := i * 7919 % total
		d := from.AddDays(k / perDay)
		pos := k % perDay
		minute := 7*60 + pos*45
		if pos >= 8 {
			minute = 14*60 + (pos-8)*45
		}
		s := time.Date(d.Year, d.Month, d.Day, minute/60, minute%60, 0, 0, loc)
		_, bu := calendar.Span(svc, s)
		out = append(out, calendar.Interval{Start: s, End: bu})
	}
	return out
}

func setup500(tb testing.TB) (*bookingv1.Provider, calendar.Date, time.Time, []calendar.Interval) {
	p := fullWeekProvider()
	loc, err := calendar.Location(p)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 20, 0, 0, 0, loc)
	from := calendar.DateOf(now).AddDays(1)
	busy := bookings500(p, from)
	for i, iv := range busy {
		if err := calendar.CheckStart(p, p.Services[0], iv.Start, now); err != nil {
			tb.Fatalf("booking %d: %v", i, err)
		}
		if calendar.Overlaps(busy[:i], iv) {
			tb.Fatalf("booking %d overlaps", i)
		}
	}
	return p, from, now, busy
}

func TestSlots_MatchesBruteForceWith500Bookings(t *testing.T) {
	p, from, now, busy := setup500(t)
	svc := p.Services[0]
	got, err := calendar.Slots(p, svc, from, 31, now, busy)
	if err != nil {
		t.Fatal(err)
	}
	// Brute force: every minute of the 31 days that CheckStart accepts and whose
	// span overlaps no booking.
	loc, _ := calendar.Location(p)
	var want []time.Time
	start := time.Date(from.Year, from.Month, from.Day, 0, 0, 0, 0, loc)
	end := time.Date(from.Year, from.Month, from.Day+31, 0, 0, 0, 0, loc)
	for s := start; s.Before(end); s = s.Add(time.Minute) {
		if calendar.CheckStart(p, svc, s, now) != nil {
			continue
		}
		_, bu := calendar.Span(svc, s)
		if calendar.Overlaps(busy, calendar.Interval{Start: s, End: bu}) {
			continue
		}
		want = append(want, s)
	}
	if len(got) != len(want) {
		t.Fatalf("Slots gave %d starts, brute force %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].Start.Equal(want[i]) {
			t.Fatalf("slot %d = %s, want %s", i, got[i].Start, want[i])
		}
	}
	if len(busy) != 500 || len(got) == 0 {
		t.Fatalf("setup: %d bookings, %d slots", len(busy), len(got))
	}
	t.Logf("%d free slots around %d bookings", len(got), len(busy))
}

// BenchmarkSlots500 is availability for 31 days of a provider with 500 upcoming
// bookings, from the calendar actor's in-memory Busy set.
func BenchmarkSlots500(b *testing.B) {
	p, from, now, busy := setup500(b)
	set := calendar.NewBusy()
	for i, iv := range busy {
		set.Add(fmt.Sprint(i), iv)
	}
	svc := p.Services[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := calendar.SlotsBusy(p, svc, from, 31, now, set); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSlots500FromSlice is the same from an unsorted []Interval.
func BenchmarkSlots500FromSlice(b *testing.B) {
	p, from, now, busy := setup500(b)
	svc := p.Services[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := calendar.Slots(p, svc, from, 31, now, busy); err != nil {
			b.Fatal(err)
		}
	}
}
