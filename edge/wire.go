package edge

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// This file holds the JSON shapes of the API and the conversions between them and
// the stored protobuf records: money, instants, dates and times of day.

// Limits of the values the API accepts.
const (
	minDurationMinutes = 5
	maxDurationMinutes = 480
	maxBufferMinutes   = 120
	maxNameRunes       = 200
	maxIDBytes         = 200
	maxServices        = 50
	maxRangesPerDay    = 24
	maxDateOverrides   = 400
	maxNoticeMinutes   = 60 * 24 * 30 // 30 days
	maxHorizonDays     = 730
	defaultNotice      = 60
	defaultHorizonDays = 90
	slotStepMinutes    = 15
	minutesPerDay      = 24 * 60
	// maxAmountIntDigits bounds the integer part of an amount so that its cents
	// always fit an int64.
	maxAmountIntDigits = 13
)

// dateLayout is the layout of a local date, YYYY-MM-DD.
const dateLayout = "2006-01-02"

// dayNames are the keys of weekly_hours, indexed by time.Weekday.
var dayNames = [7]string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

// moneyJSON is money as the API writes it.
type moneyJSON struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// rangeJSON is a span of local wall time, "HH:MM" to "HH:MM".
type rangeJSON struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// weekIn is weekly_hours in a request; a day left out is closed (create) or keeps
// its hours (patch).
type weekIn struct {
	Monday    *[]rangeJSON `json:"monday,omitempty"`
	Tuesday   *[]rangeJSON `json:"tuesday,omitempty"`
	Wednesday *[]rangeJSON `json:"wednesday,omitempty"`
	Thursday  *[]rangeJSON `json:"thursday,omitempty"`
	Friday    *[]rangeJSON `json:"friday,omitempty"`
	Saturday  *[]rangeJSON `json:"saturday,omitempty"`
	Sunday    *[]rangeJSON `json:"sunday,omitempty"`
}

// days returns the days of w indexed by time.Weekday.
func (w *weekIn) days() [7]*[]rangeJSON {
	return [7]*[]rangeJSON{w.Sunday, w.Monday, w.Tuesday, w.Wednesday, w.Thursday, w.Friday, w.Saturday}
}

// overrideJSON is one date override.
type overrideJSON struct {
	Date  string      `json:"date"`
	Hours []rangeJSON `json:"hours"`
}

// serviceIn is a service in a request.
type serviceIn struct {
	Name            string     `json:"name"`
	DurationMinutes int64      `json:"duration_minutes"`
	BufferMinutes   int64      `json:"buffer_minutes,omitempty"`
	Price           *moneyJSON `json:"price"`
}

// serviceOut is a service in an answer.
type serviceOut struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	DurationMinutes int32     `json:"duration_minutes"`
	BufferMinutes   int32     `json:"buffer_minutes"`
	Price           moneyJSON `json:"price"`
}

// providerOut is a provider in an answer.
type providerOut struct {
	ID               string                 `json:"id"`
	Name             string                 `json:"name"`
	Vertical         string                 `json:"vertical"`
	City             string                 `json:"city"`
	Jurisdiction     string                 `json:"jurisdiction"`
	Timezone         string                 `json:"timezone"`
	Services         []serviceOut           `json:"services"`
	WeeklyHours      map[string][]rangeJSON `json:"weekly_hours"`
	DateOverrides    []overrideJSON         `json:"date_overrides"`
	MinNoticeMinutes int32                  `json:"min_notice_minutes"`
	HorizonDays      int32                  `json:"horizon_days"`
	SlotStepMinutes  int32                  `json:"slot_step_minutes"`
	CreatedAt        string                 `json:"created_at,omitempty"`
	UpdatedAt        string                 `json:"updated_at,omitempty"`
	// License is the provider's licence (verticals with license_required).
	License *licenseJSON `json:"license,omitempty"`
	// Verified tells, for verticals with license_required, whether an operator
	// verified the licence (the provider takes bookings only then).
	Verified   *bool  `json:"verified,omitempty"`
	VerifiedAt string `json:"verified_at,omitempty"`
}

// licenseJSON is a provider's professional licence.
type licenseJSON struct {
	Number string `json:"number"`
	Issuer string `json:"issuer"`
}

// bookingOut is a booking in an answer.
type bookingOut struct {
	ID         string    `json:"id"`
	Status     string    `json:"status"`
	ProviderID string    `json:"provider_id"`
	ServiceID  string    `json:"service_id"`
	ClientID   string    `json:"client_id"`
	Start      string    `json:"start"`
	End        string    `json:"end"`
	Price      moneyJSON `json:"price"`
	// SeriesID is the series the booking is an occurrence of.
	SeriesID string `json:"series_id,omitempty"`
	// CancelReason says why the system cancelled it (consent_withdrawn,
	// series_cancelled).
	CancelReason string `json:"cancel_reason,omitempty"`
	// SessionStatus is set for verticals whose bookings are sessions.
	SessionStatus string `json:"session_status,omitempty"`
	// Erased: the client's health data was erased; dates and provider remain.
	Erased bool `json:"erased,omitempty"`
}

// slotJSON is one bookable start.
type slotJSON struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// listOut is a page of a list.
type listOut[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// formatAmount writes cents as a decimal string with exactly two places.
func formatAmount(cents int64) string {
	sign := ""
	u := uint64(cents)
	if cents < 0 {
		sign = "-"
		u = uint64(-(cents + 1)) + 1 // no overflow at math.MinInt64
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// formatMoney converts stored money to the API's shape.
func formatMoney(m *bookingv1.Money) moneyJSON {
	return moneyJSON{Amount: formatAmount(m.GetCents()), Currency: m.GetCurrency()}
}

// parseAmount reads a positive decimal amount with at most two places ("1500",
// "1500.5", "1500.50") into cents, without floating point. It rejects signs,
// exponents, leading zeros, spaces, more than two places and zero.
func parseAmount(s string) (int64, error) {
	if rest, neg := strings.CutPrefix(s, "-"); neg && rest != "" {
		return 0, fmt.Errorf("amount %q must be positive", s)
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || len(intPart) > maxAmountIntDigits || !allDigits(intPart) ||
		(len(intPart) > 1 && intPart[0] == '0') {
		return 0, fmt.Errorf("amount %q must be a decimal string such as \"1500.00\"", s)
	}
	if hasDot && (frac == "" || len(frac) > 2 || !allDigits(frac)) {
		return 0, fmt.Errorf("amount %q must have at most two decimal places", s)
	}
	whole, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("amount %q is out of range", s)
	}
	var cents int64
	switch len(frac) {
	case 1:
		cents = int64(frac[0]-'0') * 10
	case 2:
		cents = int64(frac[0]-'0')*10 + int64(frac[1]-'0')
	}
	total := whole*100 + cents
	if total <= 0 {
		return 0, fmt.Errorf("amount %q must be greater than zero", s)
	}
	return total, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseMoney validates m (named field) against the city's currency.
func parseMoney(field string, m *moneyJSON, currency string) (*bookingv1.Money, error) {
	if m == nil {
		return nil, invalid("%s is required", field)
	}
	cents, err := parseAmount(m.Amount)
	if err != nil {
		return nil, invalid("%s.amount: %v", field, err)
	}
	if m.Currency != currency {
		return nil, invalid("%s.currency %q must be the city's currency %q", field, m.Currency, currency)
	}
	return &bookingv1.Money{Cents: cents, Currency: currency}, nil
}

// parseInstant reads an RFC 3339 instant that carries an offset ("Z" or ±hh:mm).
func parseInstant(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, invalid("%s %q must be an RFC 3339 instant with offset, such as 2026-12-01T09:00:00-03:00", field, s)
	}
	return t, nil
}

// formatInstant writes a Unix-millisecond instant as RFC 3339 in loc.
func formatInstant(ms int64, loc *time.Location) string {
	var buf [len("2006-01-02T15:04:05-07:00")]byte // no allocation but the string's
	return string(appendInstant(buf[:0], ms, loc))
}

// appendInstant appends formatInstant's text to b: the one place that says how
// an instant is written (the availability encoder appends it into its buffer).
func appendInstant(b []byte, ms int64, loc *time.Location) []byte {
	return time.UnixMilli(ms).In(loc).AppendFormat(b, time.RFC3339)
}

// parseDate reads a YYYY-MM-DD date.
func parseDate(field, s string) (time.Time, error) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return time.Time{}, invalid("%s %q must be a date YYYY-MM-DD", field, s)
	}
	return t, nil
}

// parseClock reads "HH:MM" (00:00..24:00) into minutes after midnight.
func parseClock(s string) (int32, bool) {
	if len(s) != 5 || s[2] != ':' || !allDigits(s[:2]) || !allDigits(s[3:]) {
		return 0, false
	}
	h := int32(s[0]-'0')*10 + int32(s[1]-'0')
	m := int32(s[3]-'0')*10 + int32(s[4]-'0')
	if h > 24 || m > 59 || (h == 24 && m != 0) {
		return 0, false
	}
	return h*60 + m, true
}

// formatClock writes minutes after midnight as "HH:MM".
func formatClock(min int32) string {
	return fmt.Sprintf("%02d:%02d", min/60, min%60)
}

// parseRanges validates one day's ranges: each "HH:MM", start before end, in order
// and not overlapping.
func parseRanges(field string, in []rangeJSON) ([]*bookingv1.TimeRange, error) {
	if len(in) > maxRangesPerDay {
		return nil, invalid("%s has %d ranges; at most %d", field, len(in), maxRangesPerDay)
	}
	out := make([]*bookingv1.TimeRange, 0, len(in))
	prevEnd := int32(-1)
	for i, r := range in {
		start, ok := parseClock(r.Start)
		if !ok {
			return nil, invalid("%s[%d].start %q must be a time of day HH:MM between 00:00 and 24:00", field, i, r.Start)
		}
		end, ok := parseClock(r.End)
		if !ok {
			return nil, invalid("%s[%d].end %q must be a time of day HH:MM between 00:00 and 24:00", field, i, r.End)
		}
		if start >= end {
			return nil, invalid("%s[%d]: start %s must be before end %s", field, i, r.Start, r.End)
		}
		if start < prevEnd {
			return nil, invalid("%s[%d]: ranges must be in order and must not overlap", field, i)
		}
		prevEnd = end
		out = append(out, &bookingv1.TimeRange{StartMinute: start, EndMinute: end})
	}
	return out, nil
}

// formatRanges converts stored ranges to the API's shape (never nil).
func formatRanges(in []*bookingv1.TimeRange) []rangeJSON {
	out := make([]rangeJSON, 0, len(in))
	for _, r := range in {
		out = append(out, rangeJSON{Start: formatClock(r.GetStartMinute()), End: formatClock(r.GetEndMinute())})
	}
	return out
}

// parseOverrides validates date overrides: real dates, each at most once. The
// answer is sorted by date.
func parseOverrides(in []overrideJSON) ([]*bookingv1.DateOverride, error) {
	if len(in) > maxDateOverrides {
		return nil, invalid("date_overrides has %d entries; at most %d", len(in), maxDateOverrides)
	}
	seen := make(map[string]bool, len(in))
	out := make([]*bookingv1.DateOverride, 0, len(in))
	for i, o := range in {
		field := fmt.Sprintf("date_overrides[%d]", i)
		if _, err := parseDate(field+".date", o.Date); err != nil {
			return nil, err
		}
		if seen[o.Date] {
			return nil, invalid("%s.date %s is listed twice", field, o.Date)
		}
		seen[o.Date] = true
		ranges, err := parseRanges(field+".hours", o.Hours)
		if err != nil {
			return nil, err
		}
		out = append(out, &bookingv1.DateOverride{Date: o.Date, Ranges: ranges})
	}
	sortOverrides(out)
	return out, nil
}

func sortOverrides(o []*bookingv1.DateOverride) {
	// Insertion sort: at most maxDateOverrides entries, usually a handful.
	for i := 1; i < len(o); i++ {
		for j := i; j > 0 && o[j].GetDate() < o[j-1].GetDate(); j-- {
			o[j], o[j-1] = o[j-1], o[j]
		}
	}
}

// checkName validates a human-readable name: 1..200 characters, valid UTF-8, no
// control characters, not only spaces.
func checkName(field, s string) error {
	n := utf8.RuneCountInString(s)
	if strings.TrimSpace(s) == "" || n > maxNameRunes {
		return invalid("%s must have 1 to %d characters", field, maxNameRunes)
	}
	if !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return invalid("%s must be valid UTF-8 text without control characters", field)
	}
	return nil
}

// checkID validates an opaque id given by a client: 1..200 bytes of printable
// ASCII without spaces or slashes.
func checkID(field, s string) error {
	if s == "" {
		return invalid("%s is required", field)
	}
	if len(s) > maxIDBytes {
		return invalid("%s must have at most %d characters", field, maxIDBytes)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return invalid("%s must be printable ASCII without spaces or slashes", field)
		}
	}
	return nil
}

// statusName is a booking status as the API writes it.
func statusName(s bookingv1.BookingStatus) string {
	switch s {
	case bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED:
		return "confirmed"
	case bookingv1.BookingStatus_BOOKING_STATUS_CANCELLED:
		return "cancelled"
	default:
		return "unknown"
	}
}

// formatBooking converts a stored booking to the API's shape, times in loc.
func formatBooking(b *bookingv1.Booking, loc *time.Location) bookingOut {
	return bookingOut{
		ID:            b.GetId(),
		Status:        statusName(b.GetStatus()),
		ProviderID:    b.GetProviderId(),
		ServiceID:     b.GetServiceId(),
		ClientID:      b.GetClientId(),
		Start:         formatInstant(b.GetStartMs(), loc),
		End:           formatInstant(b.GetEndMs(), loc),
		Price:         formatMoney(b.GetPrice()),
		SeriesID:      b.GetSeriesId(),
		CancelReason:  b.GetCancelReason(),
		SessionStatus: sessionStatusName(b.GetSessionStatus()),
		Erased:        b.GetErased(),
	}
}

// sessionStatusName is a session status as the API writes it ("" for none).
func sessionStatusName(s bookingv1.SessionStatus) string {
	switch s {
	case bookingv1.SessionStatus_SESSION_STATUS_SCHEDULED:
		return "scheduled"
	case bookingv1.SessionStatus_SESSION_STATUS_CHECKED_IN:
		return "checked_in"
	case bookingv1.SessionStatus_SESSION_STATUS_COMPLETED:
		return "completed"
	case bookingv1.SessionStatus_SESSION_STATUS_NO_SHOW:
		return "no_show"
	case bookingv1.SessionStatus_SESSION_STATUS_CANCELLED:
		return "cancelled"
	default:
		return ""
	}
}

// formatProvider converts a stored provider to the API's shape, times in loc.
func formatProvider(p *bookingv1.Provider, loc *time.Location) providerOut {
	out := providerOut{
		ID:               p.GetId(),
		Name:             p.GetName(),
		Vertical:         p.GetVertical(),
		City:             p.GetCity(),
		Jurisdiction:     p.GetJurisdiction(),
		Timezone:         p.GetTimezone(),
		Services:         make([]serviceOut, 0, len(p.GetServices())),
		WeeklyHours:      make(map[string][]rangeJSON, 7),
		DateOverrides:    make([]overrideJSON, 0, len(p.GetDateOverrides())),
		MinNoticeMinutes: p.GetMinNoticeMinutes(),
		HorizonDays:      p.GetHorizonDays(),
		SlotStepMinutes:  p.GetSlotStepMinutes(),
	}
	for _, s := range p.GetServices() {
		out.Services = append(out.Services, serviceOut{
			ID:              s.GetId(),
			Name:            s.GetName(),
			DurationMinutes: s.GetDurationMinutes(),
			BufferMinutes:   s.GetBufferMinutes(),
			Price:           formatMoney(s.GetPrice()),
		})
	}
	week := p.GetWeeklyHours()
	for d, name := range dayNames {
		var ranges []*bookingv1.TimeRange
		if d < len(week) {
			ranges = week[d].GetRanges()
		}
		out.WeeklyHours[name] = formatRanges(ranges)
	}
	for _, o := range p.GetDateOverrides() {
		out.DateOverrides = append(out.DateOverrides, overrideJSON{Date: o.GetDate(), Hours: formatRanges(o.GetRanges())})
	}
	if ms := p.GetCreatedAtMs(); ms != 0 {
		out.CreatedAt = formatInstant(ms, loc)
	}
	if ms := p.GetUpdatedAtMs(); ms != 0 {
		out.UpdatedAt = formatInstant(ms, loc)
	}
	if l := p.GetLicense(); l != nil {
		out.License = &licenseJSON{Number: l.GetNumber(), Issuer: l.GetIssuer()}
		verified := p.GetVerifiedAtMs() != 0
		out.Verified = &verified
		if verified {
			out.VerifiedAt = formatInstant(p.GetVerifiedAtMs(), loc)
		}
	}
	return out
}
