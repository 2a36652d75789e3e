package edge

import (
	"encoding/json"
	"sync"
	"time"

	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// This file encodes the hottest answer, availability, by appending into a
// pooled buffer instead of building availabilityOut and handing it to
// encoding/json: a day is up to 96 slots of two RFC 3339 instants, and the
// reflection, the per-instant strings and the copy of the body were a quarter
// of a node's CPU under availability load (docs/PERFORMANCE.md). The bytes are
// exactly json.Marshal's for availabilityOut plus the newline writeJSON adds
// (TestAppendAvailability_MatchesMarshal holds them to it).

// appendAvailability appends the answer of GET /v1/providers/{id}/availability,
// ending in its newline, to b: provider, service and zone, then slots in loc.
func appendAvailability(b []byte, providerID, serviceID, tz string, slots []*calendarv1.Slot, loc *time.Location) []byte {
	b = append(b, `{"provider_id":`...)
	b = appendJSONString(b, providerID)
	b = append(b, `,"service_id":`...)
	b = appendJSONString(b, serviceID)
	b = append(b, `,"timezone":`...)
	b = appendJSONString(b, tz)
	b = append(b, `,"slots":[`...)
	for i, sl := range slots {
		if i > 0 {
			b = append(b, ',')
		}
		// RFC 3339 has only digits, '-', ':', 'T', 'Z' and '+': nothing to escape.
		b = append(b, `{"start":"`...)
		b = appendInstant(b, sl.GetStartMs(), loc)
		b = append(b, `","end":"`...)
		b = appendInstant(b, sl.GetEndMs(), loc)
		b = append(b, `"}`...)
	}
	return append(b, "]}\n"...)
}

// appendInstant appends what formatInstant returns.
func appendInstant(b []byte, ms int64, loc *time.Location) []byte {
	return time.UnixMilli(ms).In(loc).AppendFormat(b, time.RFC3339)
}

// appendJSONString appends s as encoding/json writes a string: printable ASCII
// that needs no escape as it is, anything else (control bytes, quotes,
// backslashes, the HTML-escaped <, > and &, non-ASCII) through json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			m, _ := json.Marshal(s) // a string always encodes
			return append(b, m...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// maxPooledBody bounds the buffers bodies keeps: a month of availability
// (~200 KB) is encoded into a fresh one and left to the collector.
const maxPooledBody = 64 << 10

// bodies holds answer buffers between requests (*[]byte).
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// pooledBody returns an empty buffer from bodies; give it back with putBody once
// it is written (http.ResponseWriter, as any io.Writer, does not keep it).
func pooledBody() *[]byte {
	bp := bodies.Get().(*[]byte)
	*bp = (*bp)[:0]
	return bp
}

// putBody keeps b (what was appended into *bp) for another answer unless it
// grew past maxPooledBody.
func putBody(bp *[]byte, b []byte) {
	if cap(b) > maxPooledBody {
		return
	}
	*bp = b[:0]
	bodies.Put(bp)
}
