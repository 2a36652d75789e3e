package edge

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
)

// TestAvailBodies_KeyedByReply: a body is kept only for the Reply it was
// encoded from (after that Reply came back twice), and for the same service
// and zone; another Reply of the same provider is a miss, never the old body.
func TestAvailBodies_KeyedByReply(t *testing.T) {
	var c availBodies
	r1, r2 := &calendarv1.Reply{}, &calendarv1.Reply{}
	if b, seen := c.get("p", "s", "UTC", r1); b != nil || seen {
		t.Fatal("empty cache answered")
	}
	c.put("p", "s", "UTC", r1, nil)
	if b, seen := c.get("p", "s", "UTC", r1); b != nil || !seen {
		t.Fatalf("second sighting: body %q seen %v", b, seen)
	}
	c.put("p", "s", "UTC", r1, []byte("one"))
	if b, _ := c.get("p", "s", "UTC", r1); string(b) != "one" {
		t.Fatalf("kept body: %q", b)
	}
	for _, miss := range []struct {
		id, svc, tz string
		r           *calendarv1.Reply
	}{{"p", "s", "UTC", r2}, {"p", "other", "UTC", r1}, {"p", "s", "America/Cordoba", r1}, {"q", "s", "UTC", r1}} {
		if b, seen := c.get(miss.id, miss.svc, miss.tz, miss.r); b != nil || seen {
			t.Errorf("%+v answered %q", miss, b)
		}
	}
	for i := range 2 * maxAvailBodies {
		c.put(string(rune('a'+i%26))+string(rune(i)), "s", "UTC", r2, nil)
	}
	if len(c.m) > maxAvailBodies {
		t.Fatalf("%d entries, bound %d", len(c.m), maxAvailBodies)
	}
}

// memoCalendars answers availability as a local calendar does
// (actors.availCache): the same *Reply for the same question until a write
// goes through it.
type memoCalendars struct {
	Calendars
	mu    sync.Mutex
	memo  map[string]*calendarv1.Reply
	calls int
}

func (m *memoCalendars) Availability(ctx context.Context, r *calendarv1.AvailabilityRequest) (*calendarv1.Reply, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	k := r.GetProviderId() + " " + r.GetServiceId() + " " + r.GetFromDate()
	if rep, ok := m.memo[k]; ok {
		return rep, nil
	}
	rep, err := m.Calendars.Availability(ctx, r)
	if err == nil {
		if m.memo == nil {
			m.memo = map[string]*calendarv1.Reply{}
		}
		m.memo[k] = rep
	}
	return rep, err
}

func (m *memoCalendars) Book(ctx context.Context, r *calendarv1.BookRequest) (*bookingv1.Booking, error) {
	b, err := m.Calendars.Book(ctx, r)
	m.mu.Lock()
	clear(m.memo)
	m.mu.Unlock()
	return b, err
}

// TestServer_AvailabilityAfterBookingNotStale: reads answered from a kept body
// (the calendar returned the same Reply), then a booking acknowledged (201):
// the next read does not offer the booked start.
func TestServer_AvailabilityAfterBookingNotStale(t *testing.T) {
	var memo *memoCalendars
	h := newHarnessWith(t, func(c *Config) { memo = &memoCalendars{Calendars: c.Calendars}; c.Calendars = memo })
	p := h.mustCreateProvider()
	path := "/v1/providers/" + p.ID + "/availability?service_id=" + p.Services[0].ID + "&from=2026-12-01&days=1"
	read := func() availabilityOut {
		t.Helper()
		rec := h.do(call{method: "GET", path: path, valid: true})
		wantStatus(t, rec, http.StatusOK)
		return decode[availabilityOut](t, rec)
	}
	first := read()
	for range 3 { // the third and later are the kept body
		if again := read(); len(again.Slots) != len(first.Slots) || again.Slots[0] != first.Slots[0] {
			t.Fatalf("same answer read again: %+v, first %+v", again, first)
		}
	}
	if len(h.srv.availBodies.m) != 1 || h.srv.availBodies.m[p.ID].body == nil {
		t.Fatal("the repeated answer was not kept: the test would not test the kept body")
	}
	h.mustBook(p, "cli_1", first.Slots[0].Start)
	after := read()
	if len(after.Slots) > 0 && after.Slots[0].Start == first.Slots[0].Start {
		t.Fatalf("after the booking was acknowledged, %s is still offered", first.Slots[0].Start)
	}
	if memo.calls != 5 {
		t.Fatalf("%d calendar calls, want one per read (5)", memo.calls)
	}
}

// TestWriteAvailability_PsychologyKeepsNothing: a vertical whose answers may
// not be cached keeps no body, however often the same Reply comes back.
func TestWriteAvailability_PsychologyKeepsNothing(t *testing.T) {
	h := newHarness(t)
	rep := &calendarv1.Reply{Timezone: "UTC", Slots: []*calendarv1.Slot{{StartMs: 0, EndMs: 1000}}}
	for _, vertical := range []string{"psychology", "psychology", "psychology", "barber", "barber"} {
		rec := httptest.NewRecorder()
		h.srv.writeAvailability(rec, "prv_x", "svc_1", "UTC", vertical, rep)
		if want := `{"provider_id":"prv_x","service_id":"svc_1","timezone":"UTC","slots":[{"start":"1970-01-01T00:00:00Z","end":"1970-01-01T00:00:01Z"}]}` + "\n"; rec.Body.String() != want {
			t.Fatalf("%s: %s", vertical, rec.Body)
		}
		if vertical == "psychology" && len(h.srv.availBodies.m) != 0 {
			t.Fatal("a psychology answer was kept")
		}
	}
	if h.srv.availBodies.m["prv_x"].body == nil {
		t.Fatal("the barber answer, seen twice, was not kept: the test would not test the psychology rule")
	}
}

// TestWriteAvailability_LongAnswerNotRemembered: an answer whose body is too
// large to keep (a month of slots) is not remembered either: its Reply (up to
// ~200 KB of slots) would stay pinned by availBodies for nothing.
func TestWriteAvailability_LongAnswerNotRemembered(t *testing.T) {
	h := newHarness(t)
	rep := &calendarv1.Reply{Timezone: "UTC"}
	for i := range 2000 {
		s := int64(i) * 15 * 60 * 1000
		rep.Slots = append(rep.Slots, &calendarv1.Slot{StartMs: s, EndMs: s + 30*60*1000})
	}
	for range 3 {
		rec := httptest.NewRecorder()
		h.srv.writeAvailability(rec, "prv_x", "svc_1", "UTC", "barber", rep)
		if rec.Body.Len() <= maxPooledBody {
			t.Fatalf("a %d-byte body: the test would not test a long answer", rec.Body.Len())
		}
		if _, ok := h.srv.availBodies.m["prv_x"]; ok {
			t.Fatal("a Reply whose body is never kept was remembered")
		}
	}
}

// TestWriteAvailability_ConcurrentRepliesNeverMixed: requests racing with
// the calendar's answer changing (a write between reads) each get the body
// of the Reply they were handed, never one kept for another.
func TestWriteAvailability_ConcurrentRepliesNeverMixed(t *testing.T) {
	h := newHarness(t)
	reps := make([]*calendarv1.Reply, 3)
	want := make([]string, len(reps))
	for i := range reps {
		reps[i] = &calendarv1.Reply{Timezone: "UTC", Slots: []*calendarv1.Slot{{StartMs: int64(i) * 60000, EndMs: int64(i)*60000 + 1000}}}
		want[i] = string(appendAvailability(nil, "prv_x", "svc_1", "UTC", reps[i].GetSlots(), time.UTC))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				n := (g + i/7) % len(reps)
				rec := httptest.NewRecorder()
				h.srv.writeAvailability(rec, "prv_x", "svc_1", "UTC", "barber", reps[n])
				if rec.Body.String() != want[n] {
					t.Errorf("reply %d answered %s", n, rec.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
	if h.srv.availBodies.m["prv_x"].reply == nil {
		t.Fatal("nothing was remembered: the test would not test kept bodies")
	}
}
