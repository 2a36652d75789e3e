package calendar

import (
	"fmt"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// Limits of a series (a recurring booking).
const (
	// MinSeriesCount and MaxSeriesCount bound the occurrences of one series.
	MinSeriesCount = 2
	MaxSeriesCount = 52
	// MaxSeriesEveryDays is the longest interval between two occurrences.
	MaxSeriesEveryDays = 366
)

// SeriesStarts returns the starts of count occurrences every everyDays days from
// start, each at the same local wall time as start in the provider's time zone:
// across a DST change the instants move, the wall time does not. An ambiguous
// wall time (DST fall-back) gives its first occurrence. It fails with
// ErrBadRequest when everyDays or count is out of range, when start is not on a
// whole minute, or when an occurrence's wall time does not exist that day (a DST
// gap), and with ErrBadProvider for an unusable time zone.
func SeriesStarts(p *bookingv1.Provider, start time.Time, everyDays, count int) ([]time.Time, error) {
	if everyDays < 1 || everyDays > MaxSeriesEveryDays {
		return nil, fmt.Errorf("%w: every_days must be within 1..%d, got %d", ErrBadRequest, MaxSeriesEveryDays, everyDays)
	}
	if count < MinSeriesCount || count > MaxSeriesCount {
		return nil, fmt.Errorf("%w: count must be within %d..%d, got %d", ErrBadRequest, MinSeriesCount, MaxSeriesCount, count)
	}
	loc, err := Location(p)
	if err != nil {
		return nil, err
	}
	local := start.In(loc)
	if local.Second() != 0 || local.Nanosecond() != 0 {
		return nil, fmt.Errorf("%w: start %s is not on a whole minute", ErrBadRequest, local.Format(time.RFC3339Nano))
	}
	d := DateOf(local)
	minute := local.Hour()*60 + local.Minute()
	out := make([]time.Time, count)
	for i := range out {
		day := d.AddDays(i * everyDays)
		t, ok := wallInstant(day, minute, loc)
		if !ok {
			return nil, fmt.Errorf("%w: occurrence %d: %s %02d:%02d does not exist in %s (a daylight-saving gap)",
				ErrBadRequest, i+1, day, minute/60, minute%60, loc)
		}
		if i == 0 {
			// The first occurrence is the start asked for, even when it is
			// the second of a repeated wall time (CheckStart then refuses it).
			t = start
		}
		out[i] = t
	}
	return out, nil
}
