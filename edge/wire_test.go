package edge

import (
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// TestMoney_RoundTrip checks amounts in, cents stored, amounts out.
func TestMoney_RoundTrip(t *testing.T) {
	for _, c := range []struct {
		in    string
		cents int64
		out   string // "" when rejected
	}{
		{"1500.00", 150000, "1500.00"},
		{"0.50", 50, "0.50"},
		{"0.5", 50, "0.50"},
		{"1500", 150000, "1500.00"},
		{"1500.5", 150050, "1500.50"},
		{"0.01", 1, "0.01"},
		{"9999999999999.99", 999999999999999, "9999999999999.99"},
		{"15.005", 0, ""},
		{"-1.00", 0, ""},
		{"+1.00", 0, ""},
		{"0", 0, ""},
		{"0.00", 0, ""},
		{"", 0, ""},
		{".50", 0, ""},
		{"1.", 0, ""},
		{"01.00", 0, ""},
		{"1e3", 0, ""},
		{" 1.00", 0, ""},
		{"1,00", 0, ""},
		{"１.00", 0, ""}, // a full-width digit
		{"99999999999999.00", 0, ""},
		{"NaN", 0, ""},
	} {
		cents, err := parseAmount(c.in)
		if c.out == "" {
			if err == nil {
				t.Errorf("parseAmount(%q) = %d, want an error", c.in, cents)
			}
			continue
		}
		if err != nil || cents != c.cents {
			t.Errorf("parseAmount(%q) = %d, %v; want %d", c.in, cents, err, c.cents)
			continue
		}
		if got := formatAmount(cents); got != c.out {
			t.Errorf("formatAmount(%d) = %q, want %q", cents, got, c.out)
		}
	}
	if got := formatAmount(-1); got != "-0.01" {
		t.Errorf("formatAmount(-1) = %q", got)
	}
	if got := formatMoney(&bookingv1.Money{Cents: 7, Currency: "ARS"}); got != (moneyJSON{"0.07", "ARS"}) {
		t.Errorf("formatMoney = %+v", got)
	}
}

// TestInstant_RoundTrip checks instants in any offset come out in the provider's zone.
func TestInstant_RoundTrip(t *testing.T) {
	ba, _ := time.LoadLocation("America/Argentina/Buenos_Aires")
	ny, _ := time.LoadLocation("America/New_York")
	for _, c := range []struct {
		in  string
		loc *time.Location
		out string // "" when rejected
	}{
		{"2026-12-01T09:00:00-03:00", ba, "2026-12-01T09:00:00-03:00"},
		{"2026-12-01T12:00:00Z", ba, "2026-12-01T09:00:00-03:00"},
		{"2026-12-01T13:00:00+01:00", ba, "2026-12-01T09:00:00-03:00"},
		{"2026-07-01T09:00:00-04:00", ny, "2026-07-01T09:00:00-04:00"}, // daylight time
		{"2026-12-01T14:00:00Z", ny, "2026-12-01T09:00:00-05:00"},
		{"2026-12-01T09:00:00.000-03:00", ba, "2026-12-01T09:00:00-03:00"},
		{"2026-12-01T09:00:00", ba, ""},
		{"2026-12-01 09:00:00-03:00", ba, ""},
		{"2026-02-30T09:00:00-03:00", ba, ""},
		{"2026-12-01T25:00:00-03:00", ba, ""},
		{"2026-12-01T09:60:00-03:00", ba, ""},
		{"2026-12-01T09:00:00-25:00", ba, ""},
		{"2026-12-01", ba, ""},
		{"", ba, ""},
	} {
		got, err := parseInstant("start", c.in)
		if c.out == "" {
			if err == nil {
				t.Errorf("parseInstant(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseInstant(%q): %v", c.in, err)
			continue
		}
		if out := formatInstant(got.UnixMilli(), c.loc); out != c.out {
			t.Errorf("%q in %v = %q, want %q", c.in, c.loc, out, c.out)
		}
	}
}

// TestClock_RoundTrip checks times of day.
func TestClock_RoundTrip(t *testing.T) {
	for _, c := range []struct {
		in  string
		min int32
		ok  bool
	}{
		{"00:00", 0, true}, {"09:30", 570, true}, {"23:59", 1439, true}, {"24:00", 1440, true},
		{"24:01", 0, false}, {"25:00", 0, false}, {"9:00", 0, false}, {"09:60", 0, false},
		{"09-00", 0, false}, {"-1:00", 0, false}, {"", 0, false}, {"09:00:00", 0, false}, {"٠٩:٠٠", 0, false},
	} {
		min, ok := parseClock(c.in)
		if ok != c.ok || min != c.min {
			t.Errorf("parseClock(%q) = %d, %v; want %d, %v", c.in, min, ok, c.min, c.ok)
			continue
		}
		if ok && formatClock(min) != c.in {
			t.Errorf("formatClock(%d) = %q, want %q", min, formatClock(min), c.in)
		}
	}
}

// TestDate_Parse checks local dates.
func TestDate_Parse(t *testing.T) {
	for in, ok := range map[string]bool{
		"2026-12-24": true, "2028-02-29": true, "2026-02-29": false, "2026-02-30": false,
		"2026-13-01": false, "2026-1-01": false, "26-12-24": false, "2026-12-24T00:00:00Z": false, "": false,
	} {
		if _, err := parseDate("date", in); (err == nil) != ok {
			t.Errorf("parseDate(%q) err = %v, want ok %v", in, err, ok)
		}
	}
}

// TestFormatProvider_Week checks weekly hours come out with all seven days.
func TestFormatProvider_Week(t *testing.T) {
	week := make([]*bookingv1.DayHours, 7)
	week[time.Monday] = &bookingv1.DayHours{Ranges: []*bookingv1.TimeRange{{StartMinute: 540, EndMinute: 1440}}}
	out := formatProvider(&bookingv1.Provider{WeeklyHours: week}, time.UTC)
	if len(out.WeeklyHours) != 7 || out.WeeklyHours["monday"][0] != (rangeJSON{"09:00", "24:00"}) || out.WeeklyHours["sunday"] == nil {
		t.Errorf("week %+v", out.WeeklyHours)
	}
	// A record with fewer than seven days (never written by the edge) still formats.
	if out := formatProvider(&bookingv1.Provider{}, time.UTC); len(out.WeeklyHours) != 7 {
		t.Errorf("empty week %+v", out.WeeklyHours)
	}
}
