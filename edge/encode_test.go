package edge

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// marshalAvailability is the availability answer as the edge wrote it before
// appendAvailability: availabilityOut through encoding/json, plus the newline.
func marshalAvailability(t testing.TB, providerID, serviceID, tz string, slots []*calendarv1.Slot, loc *time.Location) []byte {
	t.Helper()
	out := availabilityOut{ProviderID: providerID, ServiceID: serviceID, Timezone: tz, Slots: make([]slotJSON, 0, len(slots))}
	for _, sl := range slots {
		out.Slots = append(out.Slots, slotJSON{Start: formatInstant(sl.GetStartMs(), loc), End: formatInstant(sl.GetEndMs(), loc)})
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestAppendAvailability_MatchesMarshal: the hand-rolled answer is byte for
// byte what encoding/json wrote, escapes, zones, DST and empty lists included.
func TestAppendAvailability_MatchesMarshal(t *testing.T) {
	day := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	slots := func(start int64, n int) []*calendarv1.Slot {
		var out []*calendarv1.Slot
		for i := range n {
			s := start + int64(i)*15*60*1000
			out = append(out, &calendarv1.Slot{StartMs: s, EndMs: s + 30*60*1000})
		}
		return out
	}
	// 2026-03-08 07:00 UTC: New York leaves standard time mid-list.
	dst := time.Date(2026, 3, 8, 5, 0, 0, 0, time.UTC).UnixMilli()
	for _, c := range []struct {
		name, pid, sid, tz string
		zone               string
		slots              []*calendarv1.Slot
	}{
		{"a day", "prv_buenos-aires_ABC", "svc_1", "America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires", slots(day, 40)},
		{"no slots", "prv_cordoba_x", "svc_2", "America/Argentina/Cordoba", "America/Argentina/Cordoba", nil},
		{"utc", "prv_us-east_y", "svc_3", "UTC", "UTC", slots(day, 3)},
		{"dst", "prv_us-east_z", "svc_4", "America/New_York", "America/New_York", slots(dst, 20)},
		{"half-hour offset", "prv_x_y", "svc_5", "Asia/Kolkata", "Asia/Kolkata", slots(day, 5)},
		{"escapes", "prv_<a>&\"b\\", "svc_\u00e9\x01\u2028", "Zone/\"odd\"", "UTC", slots(day, 2)},
		{"before 1970 and far ahead", "p", "s", "UTC", "UTC", []*calendarv1.Slot{{StartMs: -1000, EndMs: 0}, {StartMs: 253402300799000, EndMs: 253402300800000}}},
		{"milliseconds dropped", "p", "s", "UTC", "UTC", []*calendarv1.Slot{{StartMs: day + 999, EndMs: day + 1001}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			loc := mustZone(t, c.zone)
			want := marshalAvailability(t, c.pid, c.sid, c.tz, c.slots, loc)
			got := appendAvailability([]byte("kept:"), c.pid, c.sid, c.tz, c.slots, loc)
			if !bytes.Equal(got, append([]byte("kept:"), want...)) {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// FuzzAppendJSONString: any string is written as encoding/json writes it.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "prv_buenos-aires_x", "<>&", "\"\\", "\x00\x1f\x7f", "é", "\u2028\u2029", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

// FuzzAppendAvailability: any answer (ids, zone name, instants anywhere in
// the range an int64 of milliseconds reaches, in any of the zones) is written
// as encoding/json writes availabilityOut; the table test above only draws
// instants near 2026 and FuzzAppendJSONString only strings.
func FuzzAppendAvailability(f *testing.F) {
	f.Add("prv_x", "svc_1", "America/Argentina/Buenos_Aires", int64(1796140800000), int64(1796142600000), uint8(0))
	f.Add("<&>", "\u2028", "Zone/\"x\"", int64(-62135596800001), int64(253402300800000), uint8(3))
	f.Add("p", "s", "UTC", int64(math.MinInt64), int64(math.MaxInt64), uint8(2))
	zones := []*time.Location{time.UTC, mustZone(f, "America/New_York"), mustZone(f, "Asia/Kolkata"), mustZone(f, "Australia/Lord_Howe")}
	f.Fuzz(func(t *testing.T, pid, sid, tz string, start, end int64, zone uint8) {
		loc := zones[int(zone)%len(zones)]
		slots := []*calendarv1.Slot{{StartMs: start, EndMs: end}, {StartMs: end, EndMs: start}}
		want := marshalAvailability(t, pid, sid, tz, slots, loc)
		if got := appendAvailability(nil, pid, sid, tz, slots, loc); !bytes.Equal(got, want) {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
	})
}

// TestPutBody_DropsLargeBuffers: a buffer grown past maxPooledBody is not kept.
func TestPutBody_DropsLargeBuffers(t *testing.T) {
	bp := pooledBody()
	big := append(*bp, make([]byte, maxPooledBody+1)...)
	putBody(bp, big)
	if cap(*bp) > maxPooledBody {
		t.Fatalf("pooled a %d-byte buffer", cap(*bp))
	}
}

// BenchmarkAvailabilityEncode compares a day's answer through encoding/json
// with appendAvailability.
func BenchmarkAvailabilityEncode(b *testing.B) {
	loc := mustZone(b, "America/Argentina/Buenos_Aires")
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	var slots []*calendarv1.Slot
	for i := range 36 {
		s := start + int64(i)*15*60*1000
		slots = append(slots, &calendarv1.Slot{StartMs: s, EndMs: s + 30*60*1000})
	}
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			marshalAvailability(b, "prv_buenos-aires_x", "svc_1", "America/Argentina/Buenos_Aires", slots, loc)
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bp := pooledBody()
			body := appendAvailability(*bp, "prv_buenos-aires_x", "svc_1", "America/Argentina/Buenos_Aires", slots, loc)
			putBody(bp, body)
		}
	})
}
