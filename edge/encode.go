package edge

import (
	"encoding/json"
	"net/http"
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
// (TestAppendAvailability_MatchesMarshal and FuzzAppendAvailability hold them
// to it).

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

// appendBooking appends o and a newline as json.Marshal writes it (field
// order, omitempty, escapes: TestAppendBookingMatchesMarshal): the answer to
// every booking write, without reflection.
func appendBooking(b []byte, o *bookingOut) []byte {
	field := func(b []byte, name, v string) []byte {
		b = append(b, `,"`...)
		b = append(b, name...)
		b = append(b, `":`...)
		return appendJSONString(b, v)
	}
	b = append(b, `{"id":`...)
	b = appendJSONString(b, o.ID)
	b = field(b, "status", o.Status)
	b = field(b, "provider_id", o.ProviderID)
	b = field(b, "service_id", o.ServiceID)
	b = field(b, "client_id", o.ClientID)
	b = field(b, "start", o.Start)
	b = field(b, "end", o.End)
	b = append(b, `,"price":{"amount":`...)
	b = appendJSONString(b, o.Price.Amount)
	b = field(b, "currency", o.Price.Currency)
	b = append(b, '}')
	if o.SeriesID != "" {
		b = field(b, "series_id", o.SeriesID)
	}
	if o.CancelReason != "" {
		b = field(b, "cancel_reason", o.CancelReason)
	}
	if o.SessionStatus != "" {
		b = field(b, "session_status", o.SessionStatus)
	}
	if o.Erased {
		b = append(b, `,"erased":true`...)
	}
	return append(b, "}\n"...)
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

// writeAvailability answers reply, the calendar's availability of provider id
// for serviceID in zone tz: the body kept for the same reply when there is
// one, else encoded into a pooled buffer. A body is kept (availBodies) only
// for a vertical whose answers may be cached at all (not psychology).
func (s *Server) writeAvailability(w http.ResponseWriter, id, serviceID, tz, vertical string, reply *calendarv1.Reply) {
	keep := s.vertical(vertical).CacheTTL > 0
	var body []byte
	seen := false
	if keep {
		body, seen = s.availBodies.get(id, serviceID, tz, reply)
	}
	switch {
	case body != nil:
		writeBody(w, http.StatusOK, "application/json", body)
	case seen: // the same answer again: encode it once more, to keep
		body = appendAvailability(nil, id, serviceID, tz, reply.GetSlots(), s.zone(tz))
		if len(body) <= maxPooledBody {
			s.availBodies.put(id, serviceID, tz, reply, body)
		}
		writeBody(w, http.StatusOK, "application/json", body)
	default:
		bp := pooledBody()
		body = appendAvailability(*bp, id, serviceID, tz, reply.GetSlots(), s.zone(tz))
		writeBody(w, http.StatusOK, "application/json", body)
		if keep && len(body) <= maxPooledBody { // a longer body is never kept: nor its Reply
			s.availBodies.put(id, serviceID, tz, reply, nil)
		}
		putBody(bp, body)
	}
}

// maxAvailBodies bounds the providers availBodies remembers.
const maxAvailBodies = 512

// availBodies remembers the last availability answer of each provider as it
// was encoded, keyed by the calendar's Reply it was encoded from. A local
// calendar answers the same question with the same *Reply for as long as that
// answer holds (actors.availCache: the calendar never modifies a Reply it
// answered, and answers a new one after any change of its provider, its
// bookings or the clock's effect on them), so the same pointer means the same
// slots, and the body is encoded once per change instead of once per request.
// The entry holds the Reply, so its address cannot be reused by another while
// it is remembered. A reply from another node is decoded afresh each time and
// never matches; a body is kept only once its Reply came back a second time.
type availBodies struct {
	mu sync.Mutex
	m  map[string]availBody // provider id →
}

type availBody struct {
	reply       *calendarv1.Reply
	service, tz string
	body        []byte // nil until reply was answered twice
}

// get returns the body encoded from reply for provider id, service and zone
// tz, if there is one; seen reports whether reply is the one last answered
// for the provider (then put keeps a body).
func (c *availBodies) get(id, service, tz string, reply *calendarv1.Reply) (body []byte, seen bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || e.reply != reply || e.service != service || e.tz != tz {
		return nil, false
	}
	return e.body, true
}

// put remembers reply as the provider's last answer, with its body when seen
// (body is then the remembered copy and must not be modified).
func (c *availBodies) put(id, service, tz string, reply *calendarv1.Reply, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]availBody)
	}
	if _, ok := c.m[id]; !ok && len(c.m) >= maxAvailBodies {
		for k := range c.m { // drop any one
			delete(c.m, k)
			break
		}
	}
	c.m[id] = availBody{reply: reply, service: service, tz: tz, body: body}
}
