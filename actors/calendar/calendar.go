package calendar

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// Defaults applied when a Provider leaves a field at zero.
const (
	// DefaultSlotStep is the slot step when Provider.slot_step_minutes is 0.
	DefaultSlotStep = 15 * time.Minute
	// DefaultHorizonDays is the horizon when Provider.horizon_days is 0.
	DefaultHorizonDays = 90
	// MaxDays is the most local dates Slots answers for in one call.
	MaxDays = 366
)

// Errors returned by CheckStart, Slots and friends, wrapped with a human message.
// Callers test them with errors.Is.
var (
	// ErrOutsideHours means the start (or the service from it) is not within the
	// provider's working ranges of that local date, or the date is closed.
	ErrOutsideHours = errors.New("calendar: outside working hours")
	// ErrMisaligned means the start is within working hours but not on the slot
	// grid (range start + k·step, whole minutes, first occurrence of a wall time).
	ErrMisaligned = errors.New("calendar: start not aligned to the slot step")
	// ErrTooSoon means the start is in the past or within the minimum notice.
	ErrTooSoon = errors.New("calendar: start too soon")
	// ErrBeyondHorizon means the start is at or after now + horizon.
	ErrBeyondHorizon = errors.New("calendar: start beyond the booking horizon")
	// ErrBadProvider means the provider's calendar rules cannot be used (unknown
	// time zone, malformed hours).
	ErrBadProvider = errors.New("calendar: invalid provider calendar")
	// ErrBadService means the service is missing or has no positive duration.
	ErrBadService = errors.New("calendar: invalid service")
	// ErrBadRequest means the arguments are malformed (bad date, days out of range).
	ErrBadRequest = errors.New("calendar: invalid request")
)

// Interval is a half-open span of time [Start, End).
type Interval struct {
	Start, End time.Time
}

// Overlap reports whether iv and o share an instant. Touching is not overlapping.
func (iv Interval) Overlap(o Interval) bool {
	return iv.Start.Before(o.End) && o.Start.Before(iv.End)
}

// Overlaps reports whether iv overlaps any interval of busy (in any order).
func Overlaps(busy []Interval, iv Interval) bool {
	for _, b := range busy {
		if b.Overlap(iv) {
			return true
		}
	}
	return false
}

// Slot is one offerable start and the end of the service booked there (without
// the buffer).
type Slot struct {
	Start, End time.Time
}

// BookingInterval is the span a booking occupies: [start_ms, blocked_until_ms).
func BookingInterval(b *bookingv1.Booking) Interval {
	return Interval{Start: time.UnixMilli(b.GetStartMs()), End: time.UnixMilli(b.GetBlockedUntilMs())}
}

// FindService returns the provider's service with that id, or nil.
func FindService(p *bookingv1.Provider, id string) *bookingv1.Service {
	for _, s := range p.GetServices() {
		if s.GetId() == id {
			return s
		}
	}
	return nil
}

// Span is what a booking of svc at start occupies: the service ends at end, the
// calendar is blocked until blockedUntil (end plus the buffer).
func Span(svc *bookingv1.Service, start time.Time) (end, blockedUntil time.Time) {
	end = start.Add(time.Duration(svc.GetDurationMinutes()) * time.Minute)
	return end, end.Add(time.Duration(svc.GetBufferMinutes()) * time.Minute)
}

var locations sync.Map // name -> *time.Location

// Location loads (and caches) the provider's time zone.
func Location(p *bookingv1.Provider) (*time.Location, error) {
	name := p.GetTimezone()
	if name == "" {
		return nil, fmt.Errorf("%w: provider %q has no time zone", ErrBadProvider, p.GetId())
	}
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%w: time zone %q: %v", ErrBadProvider, name, err)
	}
	locations.Store(name, l)
	return l, nil
}

// Step is the provider's slot step.
func Step(p *bookingv1.Provider) time.Duration {
	if s := p.GetSlotStepMinutes(); s > 0 {
		return time.Duration(s) * time.Minute
	}
	return DefaultSlotStep
}

// Horizon is how far ahead the provider takes bookings.
func Horizon(p *bookingv1.Provider) time.Duration {
	d := p.GetHorizonDays()
	if d <= 0 {
		d = DefaultHorizonDays
	}
	return time.Duration(d) * 24 * time.Hour
}

// Notice is the provider's minimum notice.
func Notice(p *bookingv1.Provider) time.Duration {
	if n := p.GetMinNoticeMinutes(); n > 0 {
		return time.Duration(n) * time.Minute
	}
	return 0
}

// Ranges are the working ranges of a local date: its override if there is one,
// else the weekly hours of its weekday.
func Ranges(p *bookingv1.Provider, d Date) []*bookingv1.TimeRange {
	if len(p.GetDateOverrides()) > 0 {
		ds := d.String()
		for _, o := range p.GetDateOverrides() {
			if o.GetDate() == ds {
				return o.GetRanges()
			}
		}
	}
	wh := p.GetWeeklyHours()
	wd := int(d.Weekday())
	if wd >= len(wh) {
		return nil
	}
	return wh[wd].GetRanges()
}

// wallInstant converts a local wall time (date + minute after midnight) to an
// instant: ok is false when the wall time does not exist (DST gap); an ambiguous
// wall time (DST fall-back) gives its first occurrence.
func wallInstant(d Date, minute int, loc *time.Location) (time.Time, bool) {
	h, m := minute/60, minute%60
	t := time.Date(d.Year, d.Month, d.Day, h, m, 0, 0, loc)
	if !sameWall(t, d, h, m) {
		return time.Time{}, false
	}
	// Go picks one of the two occurrences of an ambiguous wall time; prefer the
	// earlier one. A fall-back shortly before t shows as a larger earlier offset.
	_, off := t.Zone()
	if _, prevOff := t.Add(-3 * time.Hour).Zone(); prevOff > off {
		alt := t.Add(-time.Duration(prevOff-off) * time.Second)
		if sameWall(alt, d, h, m) {
			return alt, true
		}
	}
	return t, true
}

func sameWall(t time.Time, d Date, h, m int) bool {
	y, mo, dd := t.Date()
	return y == d.Year && mo == d.Month && dd == d.Day && t.Hour() == h && t.Minute() == m
}

func checkService(svc *bookingv1.Service) error {
	if svc == nil {
		return fmt.Errorf("%w: no service", ErrBadService)
	}
	if svc.GetDurationMinutes() <= 0 || svc.GetBufferMinutes() < 0 {
		return fmt.Errorf("%w: service %q has duration %d min and buffer %d min", ErrBadService,
			svc.GetId(), svc.GetDurationMinutes(), svc.GetBufferMinutes())
	}
	return nil
}

// CheckStart reports whether start is an offerable start of svc at the provider
// now, ignoring other bookings: nil if so, else an error wrapping ErrTooSoon,
// ErrBeyondHorizon, ErrOutsideHours or ErrMisaligned (checked in that order), or
// ErrBadProvider / ErrBadService when the rules themselves are unusable.
func CheckStart(p *bookingv1.Provider, svc *bookingv1.Service, start, now time.Time) error {
	if err := checkService(svc); err != nil {
		return err
	}
	loc, err := Location(p)
	if err != nil {
		return err
	}
	local := start.In(loc)
	if start.Before(now) {
		return fmt.Errorf("%w: %s is in the past", ErrTooSoon, local.Format(time.RFC3339))
	}
	if n := Notice(p); start.Before(now.Add(n)) {
		return fmt.Errorf("%w: %s is within the minimum notice of %d minutes", ErrTooSoon,
			local.Format(time.RFC3339), int(n/time.Minute))
	}
	if h := Horizon(p); !start.Before(now.Add(h)) {
		return fmt.Errorf("%w: %s is %d or more days ahead", ErrBeyondHorizon,
			local.Format(time.RFC3339), int(h/(24*time.Hour)))
	}
	d := DateOf(local)
	minute := local.Hour()*60 + local.Minute()
	dur := int(svc.GetDurationMinutes())
	step := int(Step(p) / time.Minute)
	ranges := Ranges(p, d)
	inRange := false
	for _, r := range ranges {
		rs, re := int(r.GetStartMinute()), int(r.GetEndMinute())
		if minute < rs || minute+dur > re {
			continue
		}
		inRange = true
		if (minute-rs)%step != 0 || local.Second() != 0 || local.Nanosecond() != 0 {
			continue
		}
		if t, ok := wallInstant(d, minute, loc); ok && t.Equal(start) {
			return nil
		}
		return fmt.Errorf("%w: %s is the second occurrence of a repeated local time; only the first is offered",
			ErrMisaligned, local.Format(time.RFC3339))
	}
	if inRange {
		return fmt.Errorf("%w: %s is not on the %d-minute grid of the working hours", ErrMisaligned,
			local.Format(time.RFC3339), step)
	}
	if len(ranges) == 0 {
		return fmt.Errorf("%w: the provider does not work on %s", ErrOutsideHours, d)
	}
	return fmt.Errorf("%w: a %d-minute service at %s does not fit the working hours of %s (%s)",
		ErrOutsideHours, dur, local.Format("15:04"), d, formatRanges(ranges))
}

func formatRanges(rs []*bookingv1.TimeRange) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%02d:%02d-%02d:%02d", r.GetStartMinute()/60, r.GetStartMinute()%60,
			r.GetEndMinute()/60, r.GetEndMinute()%60)
	}
	return s
}

// Slots lists every start of svc over `days` local dates from `from` at which a
// booking would succeed now: an offerable start (see CheckStart) whose span
// [start, start+duration+buffer) overlaps no interval of busy. Slots are sorted
// by instant. busy may be in any order.
func Slots(p *bookingv1.Provider, svc *bookingv1.Service, from Date, days int, now time.Time, busy []Interval) ([]Slot, error) {
	b := NewBusy()
	for i, iv := range busy {
		b.Add(fmt.Sprint(i), iv)
	}
	return SlotsBusy(p, svc, from, days, now, b)
}

// SlotsBusy is Slots over a Busy set (nil: nothing busy).
func SlotsBusy(p *bookingv1.Provider, svc *bookingv1.Service, from Date, days int, now time.Time, busy *Busy) ([]Slot, error) {
	slots, _, err := SlotsUntil(p, svc, from, days, now, busy)
	return slots, err
}

// Forever is the until of SlotsUntil when no later now changes the answer.
var Forever = time.Unix(1<<62, 0)

// SlotsUntil is SlotsBusy that also tells how long its answer holds: the same
// call with any now' in [now, until] (same p, svc, from, days and an unchanged
// busy) returns the same slots. Time only removes starts (the minimum notice
// passes them) and adds starts (the horizon reaches them); until is the last
// instant before the first of those, Forever when there is none.
func SlotsUntil(p *bookingv1.Provider, svc *bookingv1.Service, from Date, days int, now time.Time, busy *Busy) ([]Slot, time.Time, error) {
	until := Forever
	if err := checkService(svc); err != nil {
		return nil, until, err
	}
	if days < 1 || days > MaxDays {
		return nil, until, fmt.Errorf("%w: days must be within 1..%d, got %d", ErrBadRequest, MaxDays, days)
	}
	if !from.Valid() {
		return nil, until, fmt.Errorf("%w: invalid date %v", ErrBadRequest, from)
	}
	loc, err := Location(p)
	if err != nil {
		return nil, until, err
	}
	dur := time.Duration(svc.GetDurationMinutes()) * time.Minute
	blocked := dur + time.Duration(svc.GetBufferMinutes())*time.Minute
	durMin := int(svc.GetDurationMinutes())
	step := int(Step(p) / time.Minute)
	notice, horizon := Notice(p), Horizon(p)
	earliest := now.Add(notice)
	limit := now.Add(horizon)
	var out []Slot
	for i := 0; i < days; i++ {
		d := from.AddDays(i)
		for _, r := range Ranges(p, d) {
			rs, re := int(r.GetStartMinute()), int(r.GetEndMinute())
			if rs < 0 || re > 24*60 {
				return nil, until, fmt.Errorf("%w: range %d..%d on %s is not within a day", ErrBadProvider, rs, re, d)
			}
			if out == nil {
				out = make([]Slot, 0, days*(re-rs)/step+1)
			}
			for m := rs; m+durMin <= re; m += step {
				s, ok := wallInstant(d, m, loc)
				if !ok || s.Before(earliest) {
					continue
				}
				// s leaves the answer once now+notice passes it.
				if t := s.Add(-notice); t.Before(until) {
					until = t
				}
				if !s.Before(limit) {
					// s (the first start of the range past the horizon)
					// joins once now+horizon passes it.
					if t := s.Add(-horizon); t.Before(until) {
						until = t
					}
					break
				}
				if busy != nil && busy.Overlaps(Interval{Start: s, End: s.Add(blocked)}, "") {
					continue
				}
				out = append(out, Slot{Start: s, End: s.Add(dur)})
			}
		}
	}
	if !sort.SliceIsSorted(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) }) {
		sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	}
	// Drop duplicate instants (overlapping ranges, repeated wall times).
	n := 0
	for i := range out {
		if n > 0 && out[i].Start.Equal(out[n-1].Start) {
			continue
		}
		out[n] = out[i]
		n++
	}
	return out[:n], until, nil
}
