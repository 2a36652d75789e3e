// Package calendar is the pure domain logic of a provider's calendar: which starts
// can be offered, which cannot and why, and which are free given the bookings the
// calendar already holds. It has no actors and does no I/O; the calendar actor in
// package actors calls it from memory.
//
// # Rules
//
// A provider works in its IANA time zone (Provider.timezone, loaded with
// time.LoadLocation and cached; the barberpro binary embeds time/tzdata). Its week
// is Provider.weekly_hours: seven DayHours indexed by time.Weekday, each a list of
// [start_minute, end_minute) ranges of local wall-clock minutes after midnight
// (end_minute may be 1440). A DateOverride replaces the weekly ranges of its local
// date; an override without ranges closes that date.
//
// A service has a duration and a buffer. A booking at start s occupies the
// calendar over [s, s+duration+buffer) (Booking.blocked_until_ms); two bookings
// conflict when those half-open intervals overlap, so buffers count on both sides
// and touching intervals do not conflict.
//
// # Decisions
//
//   - Candidate starts of a range [rs, re) are the wall-clock minutes rs, rs+step,
//     rs+2·step, ... while start+duration <= re. The step is
//     Provider.slot_step_minutes, DefaultSlotStep (15) when 0. The buffer may run
//     past closing time; the service itself may not.
//   - Durations and range ends are counted in wall-clock minutes: on a DST change
//     day a service that spans the change lasts its real duration, the range is
//     judged by the wall clock.
//   - Starts are local wall times converted to instants in the provider's zone. A
//     wall time that does not exist (DST spring-forward gap) is skipped. A wall time
//     that occurs twice (DST fall-back) means its first occurrence only; the second
//     occurrence is not an offerable start (CheckStart answers ErrMisaligned).
//     Any duplicate instant is listed once and output is sorted by instant.
//   - Minimum notice: start >= now + min_notice_minutes (0 = no notice; the edge
//     applies the API's default of 60 when it creates a provider). A start in the
//     past is ErrTooSoon too.
//   - Horizon: start < now + horizon_days·24h; DefaultHorizonDays (90) when 0.
//   - Starts are whole minutes: an instant with seconds or milliseconds is
//     ErrMisaligned.
package calendar
