package calendar_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/barberpro/edge/actors/calendar"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

func hm(h, m int) int32 { return int32(h*60 + m) }

func rng(sh, sm, eh, em int) *bookingv1.TimeRange {
	return &bookingv1.TimeRange{StartMinute: hm(sh, sm), EndMinute: hm(eh, em)}
}

// testProvider works Mon-Fri 09:00-12:00 and 14:00-18:00, Sat 10:00-13:00, closed
// on Sunday; closed on 2026-12-24 and 09:00-11:00 on 2026-12-31.
func testProvider(tz string) *bookingv1.Provider {
	week := make([]*bookingv1.DayHours, 7)
	for d := time.Sunday; d <= time.Saturday; d++ {
		switch d {
		case time.Sunday:
			week[d] = &bookingv1.DayHours{}
		case time.Saturday:
			week[d] = &bookingv1.DayHours{Ranges: []*bookingv1.TimeRange{rng(10, 0, 13, 0)}}
		default:
			week[d] = &bookingv1.DayHours{Ranges: []*bookingv1.TimeRange{rng(9, 0, 12, 0), rng(14, 0, 18, 0)}}
		}
	}
	return &bookingv1.Provider{
		Id:          "p1",
		Timezone:    tz,
		WeeklyHours: week,
		DateOverrides: []*bookingv1.DateOverride{
			{Date: "2026-12-24"},
			{Date: "2026-12-31", Ranges: []*bookingv1.TimeRange{rng(9, 0, 11, 0)}},
		},
		MinNoticeMinutes: 60,
		HorizonDays:      30,
		Services: []*bookingv1.Service{
			{Id: "cut", DurationMinutes: 30, BufferMinutes: 10},
			{Id: "color", DurationMinutes: 90},
			{Id: "beard", DurationMinutes: 20, BufferMinutes: 5},
		},
	}
}

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return l
}

func TestCheckStart_Rules(t *testing.T) {
	for _, tz := range []string{"America/Argentina/Buenos_Aires", "America/Argentina/Cordoba"} {
		loc := mustLoc(t, tz)
		p := testProvider(tz)
		at := func(mo time.Month, d, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, loc) }
		now := at(12, 1, 8, 0) // Tuesday 08:00
		cases := []struct {
			name  string
			svc   string
			start time.Time
			want  error
		}{
			{"first start after notice", "cut", at(12, 1, 9, 0), nil},
			{"within notice", "cut", at(12, 1, 8, 45), calendar.ErrTooSoon},
			{"in the past", "cut", at(12, 1, 7, 0), calendar.ErrTooSoon},
			{"misaligned", "cut", at(12, 2, 9, 10), calendar.ErrMisaligned},
			{"seconds misaligned", "cut", at(12, 2, 9, 0).Add(30 * time.Second), calendar.ErrMisaligned},
			{"last start of morning, buffer past closing", "cut", at(12, 2, 11, 30), nil},
			{"service runs past closing", "cut", at(12, 2, 11, 45), calendar.ErrOutsideHours},
			{"long service runs past closing", "color", at(12, 2, 11, 0), calendar.ErrOutsideHours},
			{"long service fits", "color", at(12, 2, 10, 30), nil},
			{"between ranges", "cut", at(12, 2, 12, 30), calendar.ErrOutsideHours},
			{"second range", "beard", at(12, 2, 17, 30), nil},
			{"second range end", "beard", at(12, 2, 17, 45), calendar.ErrOutsideHours},
			{"saturday", "cut", at(12, 5, 10, 0), nil},
			{"sunday closed", "cut", at(12, 6, 10, 0), calendar.ErrOutsideHours},
			{"override closed", "cut", at(12, 24, 10, 0), calendar.ErrOutsideHours},
			{"override special hours", "cut", at(12, 31, 10, 30), calendar.ErrBeyondHorizon},
			{"last day within horizon", "cut", at(12, 30, 17, 0), nil},
			{"horizon is exclusive", "cut", at(12, 31, 8, 0), calendar.ErrBeyondHorizon},
			{"unknown service", "nope", at(12, 2, 9, 0), calendar.ErrBadService},
		}
		for _, c := range cases {
			t.Run(tz+"/"+c.name, func(t *testing.T) {
				err := calendar.CheckStart(p, calendar.FindService(p, c.svc), c.start, now)
				if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
					t.Fatalf("CheckStart(%s) = %v, want %v", c.start, err, c.want)
				}
				if err != nil && err.Error() == c.want.Error() {
					t.Fatalf("error %q carries no detail", err)
				}
			})
		}
	}
}

func TestCheckStart_OverrideSpecialHours(t *testing.T) {
	loc := mustLoc(t, "America/Argentina/Buenos_Aires")
	p := testProvider(loc.String())
	p.HorizonDays = 60
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, loc)
	cut := calendar.FindService(p, "cut")
	for _, c := range []struct {
		h, m int
		want error
	}{{9, 0, nil}, {10, 30, nil}, {10, 45, calendar.ErrOutsideHours}, {14, 0, calendar.ErrOutsideHours}} {
		t.Run(fmt.Sprintf("%02d:%02d", c.h, c.m), func(t *testing.T) {
			err := calendar.CheckStart(p, cut, time.Date(2026, 12, 31, c.h, c.m, 0, 0, loc), now)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func wall(ss []calendar.Slot, loc *time.Location) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Start.In(loc).Format("01-02 15:04")
	}
	return out
}

func TestSlots_Table(t *testing.T) {
	loc := mustLoc(t, "America/Argentina/Buenos_Aires")
	at := func(mo time.Month, d, h, m int) time.Time { return time.Date(2026, mo, d, h, m, 0, 0, loc) }
	now := at(12, 1, 8, 0)
	day := func(s string) calendar.Date {
		d, err := calendar.ParseDate(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := []struct {
		name      string
		svc       string
		from      string
		days      int
		now       time.Time
		busy      []calendar.Interval
		wantN     int
		wantFirst string
		wantLast  string
		absent    []string
		present   []string
		wantErr   error
	}{
		{name: "two ranges", svc: "cut", from: "2026-12-02", days: 1, now: now, wantN: 11 + 15,
			wantFirst: "12-02 09:00", wantLast: "12-02 17:30", absent: []string{"12-02 11:45", "12-02 12:00"}},
		{name: "buffers on both sides", svc: "cut", from: "2026-12-02", days: 1, now: now,
			busy:  []calendar.Interval{{Start: at(12, 2, 10, 0), End: at(12, 2, 10, 40)}},
			wantN: 26 - 5, absent: []string{"12-02 09:30", "12-02 09:45", "12-02 10:00", "12-02 10:15", "12-02 10:30"},
			present: []string{"12-02 09:15", "12-02 10:45"}},
		{name: "touching is free", svc: "cut", from: "2026-12-02", days: 1, now: now,
			busy:    []calendar.Interval{{Start: at(12, 2, 9, 40), End: at(12, 2, 10, 0)}},
			present: []string{"12-02 09:00", "12-02 10:00"}, absent: []string{"12-02 09:15", "12-02 09:45"}, wantN: 26 - 3},
		{name: "notice", svc: "cut", from: "2026-12-02", days: 1, now: at(12, 2, 9, 50),
			wantFirst: "12-02 11:00", wantN: 3 + 15},
		{name: "today before notice", svc: "cut", from: "2026-12-01", days: 1, now: now,
			wantFirst: "12-01 09:00", wantN: 26},
		{name: "sunday closed", svc: "cut", from: "2026-12-06", days: 1, now: now, wantN: 0},
		{name: "override closed", svc: "cut", from: "2026-12-24", days: 1, now: now, wantN: 0},
		{name: "horizon cuts the last days", svc: "cut", from: "2026-12-29", days: 5, now: now,
			wantFirst: "12-29 09:00", wantLast: "12-30 17:30", wantN: 52},
		{name: "saturday range", svc: "color", from: "2026-12-05", days: 1, now: now,
			wantFirst: "12-05 10:00", wantLast: "12-05 11:30", wantN: 7},
		{name: "days zero", svc: "cut", from: "2026-12-02", days: 0, now: now, wantErr: calendar.ErrBadRequest},
		{name: "unknown service", svc: "nope", from: "2026-12-02", days: 1, now: now, wantErr: calendar.ErrBadService},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testProvider(loc.String())
			got, err := calendar.Slots(p, calendar.FindService(p, c.svc), day(c.from), c.days, c.now, c.busy)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := wall(got, loc)
			if len(got) != c.wantN {
				t.Fatalf("got %d slots %v, want %d", len(got), w, c.wantN)
			}
			if c.wantFirst != "" && w[0] != c.wantFirst {
				t.Errorf("first = %s, want %s", w[0], c.wantFirst)
			}
			if c.wantLast != "" && w[len(w)-1] != c.wantLast {
				t.Errorf("last = %s, want %s", w[len(w)-1], c.wantLast)
			}
			set := map[string]bool{}
			for _, s := range w {
				set[s] = true
			}
			for _, a := range c.absent {
				if set[a] {
					t.Errorf("%s offered, want absent", a)
				}
			}
			for _, a := range c.present {
				if !set[a] {
					t.Errorf("%s not offered", a)
				}
			}
			svc := calendar.FindService(p, c.svc)
			for i, s := range got {
				if i > 0 && !got[i-1].Start.Before(s.Start) {
					t.Errorf("not strictly sorted at %d", i)
				}
				if s.End.Sub(s.Start) != time.Duration(svc.DurationMinutes)*time.Minute {
					t.Errorf("slot %s has wrong end", w[i])
				}
				if err := calendar.CheckStart(p, svc, s.Start, c.now); err != nil {
					t.Errorf("offered %s fails CheckStart: %v", w[i], err)
				}
			}
		})
	}
}

// transition finds the first zone offset change of loc in year after month from
// whose offset change has the given sign (+1 spring forward, -1 fall back).
func transition(t *testing.T, loc *time.Location, year int, sign int) (at time.Time, delta time.Duration) {
	t.Helper()
	start := time.Date(year, 1, 1, 0, 0, 0, 0, loc)
	_, prev := start.Zone()
	for h := 0; h < 366*24; h++ {
		x := start.Add(time.Duration(h) * time.Hour)
		if _, off := x.Zone(); off != prev {
			if (off-prev)*sign > 0 {
				// Narrow to the minute.
				lo := x.Add(-time.Hour)
				for m := 0; m <= 60; m++ {
					y := lo.Add(time.Duration(m) * time.Minute)
					if _, o := y.Zone(); o == off {
						d := time.Duration(off-prev) * time.Second
						if d < 0 {
							d = -d
						}
						return y, d
					}
				}
			}
			prev = off
		}
	}
	t.Fatalf("no transition of sign %d in %s %d", sign, loc, year)
	return time.Time{}, 0
}

func TestSlots_SantiagoSpringForward(t *testing.T) {
	loc := mustLoc(t, "America/Santiago")
	T, delta := transition(t, loc, 2026, +1)
	local := T.In(loc)
	d := calendar.DateOf(local)
	wallT := local.Hour()*60 + local.Minute()
	gapStart := wallT - int(delta/time.Minute) // wall minutes [gapStart, wallT) do not exist on d
	t.Logf("spring forward at %s (%s), gap [%d, %d) on %s", T.UTC(), local, gapStart, wallT, d)

	p := testProvider(loc.String())
	p.HorizonDays = 400
	p.DateOverrides = []*bookingv1.DateOverride{{Date: d.String(), Ranges: []*bookingv1.TimeRange{{StartMinute: 0, EndMinute: 180}}}}
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, loc)
	cut := calendar.FindService(p, "cut")
	got, err := calendar.Slots(p, cut, d, 1, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for m := 0; m+30 <= 180; m += 15 {
		if m < gapStart || m >= wallT {
			want++
		}
	}
	if len(got) != want || want == 0 {
		t.Fatalf("got %d slots %v, want %d", len(got), wall(got, loc), want)
	}
	for i, s := range got {
		l := s.Start.In(loc)
		m := l.Hour()*60 + l.Minute()
		if calendar.DateOf(l) != d || m%15 != 0 || (m >= gapStart && m < wallT) {
			t.Errorf("slot %d at %s is not an existing wall time on %s", i, l, d)
		}
		if i > 0 && !got[i-1].Start.Before(s.Start) {
			t.Errorf("not sorted at %d", i)
		}
		if s.End.Sub(s.Start) != 30*time.Minute {
			t.Errorf("slot %s lasts %s", l, s.End.Sub(s.Start))
		}
	}
	// The first start after the gap is the transition instant itself.
	if wallT%15 == 0 && !got[0].Start.Equal(T) {
		t.Errorf("first slot %s, want the transition %s", got[0].Start.In(loc), local)
	}
}

func TestSlots_SantiagoFallBack(t *testing.T) {
	loc := mustLoc(t, "America/Santiago")
	T, delta := transition(t, loc, 2026, -1)
	local := T.In(loc)
	d := calendar.DateOf(local)
	repStart := local.Hour()*60 + local.Minute() // wall minutes [repStart, repEnd) occur twice on d
	repEnd := repStart + int(delta/time.Minute)
	t.Logf("fall back at %s (%s), repeated [%d, %d) on %s", T.UTC(), local, repStart, repEnd, d)
	if repEnd > 24*60 {
		t.Skip("repeated hour crosses midnight; adapt the test")
	}
	p := testProvider(loc.String())
	p.HorizonDays = 400
	p.DateOverrides = []*bookingv1.DateOverride{{Date: d.String(),
		Ranges: []*bookingv1.TimeRange{{StartMinute: int32(repStart - 60), EndMinute: int32(repEnd)}}}}
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, loc)
	cut := calendar.FindService(p, "cut")
	got, err := calendar.Slots(p, cut, d, 1, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for m := repStart - 60; m+30 <= repEnd; m += 15 {
		want++
	}
	if len(got) != want {
		t.Fatalf("got %d slots %v, want %d (each wall time once)", len(got), wall(got, loc), want)
	}
	seen := map[int64]bool{}
	for i, s := range got {
		if seen[s.Start.UnixMilli()] {
			t.Errorf("duplicate instant %s", s.Start)
		}
		seen[s.Start.UnixMilli()] = true
		if i > 0 && !got[i-1].Start.Before(s.Start) {
			t.Errorf("not sorted at %d", i)
		}
	}
	first := T.Add(-delta) // first occurrence of the repeated wall time repStart
	if !seen[first.UnixMilli()] {
		t.Errorf("first occurrence %s of %s not offered", first.UTC(), local.Format("15:04"))
	}
	if seen[T.UnixMilli()] {
		t.Errorf("second occurrence %s offered", T.UTC())
	}
	if err := calendar.CheckStart(p, cut, first, now); err != nil {
		t.Errorf("CheckStart(first occurrence) = %v", err)
	}
	if err := calendar.CheckStart(p, cut, T, now); !errors.Is(err, calendar.ErrMisaligned) {
		t.Errorf("CheckStart(second occurrence) = %v, want ErrMisaligned", err)
	}
}

func TestOverlaps_HalfOpen(t *testing.T) {
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	iv := func(a, b int) calendar.Interval {
		return calendar.Interval{Start: base.Add(time.Duration(a) * time.Minute), End: base.Add(time.Duration(b) * time.Minute)}
	}
	busy := []calendar.Interval{iv(0, 40), iv(60, 90)}
	for _, c := range []struct {
		a, b int
		want bool
	}{{-30, 0, false}, {-30, 1, true}, {40, 60, false}, {39, 60, true}, {40, 61, true}, {90, 120, false}, {10, 20, true}, {-10, 100, true}} {
		if got := calendar.Overlaps(busy, iv(c.a, c.b)); got != c.want {
			t.Errorf("Overlaps([%d,%d)) = %v, want %v", c.a, c.b, got, c.want)
		}
		b := calendar.NewBusy()
		b.Add("x", busy[0])
		b.Add("y", busy[1])
		if got := b.Overlaps(iv(c.a, c.b), ""); got != c.want {
			t.Errorf("Busy.Overlaps([%d,%d)) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestBusy_AddRemoveExcept(t *testing.T) {
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	iv := func(a, b int) calendar.Interval {
		return calendar.Interval{Start: base.Add(time.Duration(a) * time.Minute), End: base.Add(time.Duration(b) * time.Minute)}
	}
	b := calendar.NewBusy()
	b.Add("long", iv(0, 300)) // a long interval hidden behind later short ones
	b.Add("a", iv(10, 20))
	b.Add("b", iv(30, 40))
	b.Add("c", iv(50, 60))
	if id, ok := b.Overlapping(iv(200, 210), ""); !ok || id != "long" {
		t.Fatalf("Overlapping = %q %v, want long", id, ok)
	}
	if b.Overlaps(iv(200, 210), "long") {
		t.Fatal("except ignored")
	}
	b.Remove("long")
	if b.Overlaps(iv(200, 210), "") {
		t.Fatal("removed interval still busy")
	}
	if !b.Overlaps(iv(35, 36), "") || b.Overlaps(iv(40, 50), "") {
		t.Fatal("wrong overlap after remove")
	}
	b.Add("b", iv(100, 110)) // replace moves it
	if b.Overlaps(iv(30, 40), "") || !b.Overlaps(iv(105, 106), "") || b.Len() != 3 {
		t.Fatal("replace did not move the interval")
	}
	if b.Remove("nope") {
		t.Fatal("removed a missing id")
	}
}

func TestParseDate_Invalid(t *testing.T) {
	for _, s := range []string{"", "2026-02-30", "2026-13-01", "01-12-2026", "2026-12-1"} {
		if _, err := calendar.ParseDate(s); !errors.Is(err, calendar.ErrBadRequest) {
			t.Errorf("ParseDate(%q) = %v, want ErrBadRequest", s, err)
		}
	}
	d, err := calendar.ParseDate("2026-12-31")
	if err != nil || d.AddDays(1).String() != "2027-01-01" || d.Weekday() != time.Thursday {
		t.Fatalf("got %v %v", d, err)
	}
}
