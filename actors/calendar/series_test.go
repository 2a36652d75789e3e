package calendar

import (
	"errors"
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

func TestSeriesStarts_SameWallTimeAcrossDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	p := &bookingv1.Provider{Id: "p", Timezone: "America/New_York"}
	// Fall back on 2026-11-01: weekly Sundays at 01:30 (the repeated hour) keep
	// 01:30, first occurrence; Mondays at 09:00 keep 09:00.
	for _, tc := range []struct {
		start time.Time
		every int
	}{
		{time.Date(2026, 10, 25, 1, 30, 0, 0, ny), 7},
		{time.Date(2026, 10, 26, 9, 0, 0, 0, ny), 7},
		{time.Date(2027, 3, 12, 9, 0, 0, 0, ny), 1},
	} {
		got, err := SeriesStarts(p, tc.start, tc.every, 4)
		if err != nil {
			t.Fatalf("%s: %v", tc.start, err)
		}
		for i, s := range got {
			l := s.In(ny)
			if l.Hour() != tc.start.Hour() || l.Minute() != tc.start.Minute() ||
				DateOf(l) != DateOf(tc.start).AddDays(i*tc.every) {
				t.Fatalf("%s: occurrence %d at %s", tc.start, i, l)
			}
			if i > 0 {
				if w, _ := wallInstant(DateOf(l), l.Hour()*60+l.Minute(), ny); !w.Equal(s) {
					t.Fatalf("occurrence %d is not the first instant of its wall time", i)
				}
			}
		}
	}
	// 02:30 does not exist on 2027-03-14.
	if _, err := SeriesStarts(p, time.Date(2027, 3, 7, 2, 30, 0, 0, ny), 7, 3); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("occurrence in a DST gap: %v", err)
	}
	for _, bad := range [][2]int{{0, 3}, {367, 3}, {7, 1}, {7, 53}} {
		if _, err := SeriesStarts(p, time.Date(2027, 1, 4, 9, 0, 0, 0, ny), bad[0], bad[1]); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("every %d count %d: %v", bad[0], bad[1], err)
		}
	}
	if _, err := SeriesStarts(p, time.Date(2027, 1, 4, 9, 0, 30, 0, ny), 7, 2); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("start off the minute: %v", err)
	}
}

func TestBusy_OverlappingAll(t *testing.T) {
	b := NewBusy()
	t0 := time.Date(2027, 1, 1, 10, 0, 0, 0, time.UTC)
	b.Add("a", Interval{t0, t0.Add(time.Hour)})
	b.Add("b", Interval{t0.Add(30 * time.Minute), t0.Add(90 * time.Minute)})
	b.Add("c", Interval{t0.Add(2 * time.Hour), t0.Add(3 * time.Hour)})
	got := b.OverlappingAll(Interval{t0.Add(45 * time.Minute), t0.Add(2 * time.Hour)}, "")
	if len(got) != 2 || got[0] == got[1] || (got[0] != "a" && got[0] != "b") || (got[1] != "a" && got[1] != "b") {
		t.Fatalf("OverlappingAll = %v, want a and b", got)
	}
	if got := b.OverlappingAll(Interval{t0.Add(45 * time.Minute), t0.Add(2 * time.Hour)}, "a"); len(got) != 1 || got[0] != "b" {
		t.Fatalf("OverlappingAll except a = %v", got)
	}
}
