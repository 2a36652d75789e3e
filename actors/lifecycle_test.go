package actors_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/actors/actorstest"
	"github.com/barberpro/edge/cluster/placement"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCalendars_ActorSystemLogsJSONThroughLogger(t *testing.T) {
	var buf syncBuffer
	e := newEnv(t, func(c *actors.Config) { c.Logger = slog.New(slog.NewJSONHandler(&buf, nil)) })
	e.mustBook(t, "p1", "cut", at(2, 9, 0), "a")
	out := buf.String()
	if !strings.Contains(out, `"lib":"protoactor"`) {
		t.Fatalf("protoactor did not log through Config.Logger: %q", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("not a JSON line: %q", line)
		}
	}
}

func TestCalendars_KilledActivationIsReplaced(t *testing.T) {
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer system.Shutdown()
	e := newEnv(t, func(c *actors.Config) { c.System = system })
	e.mustBook(t, "p1", "cut", at(2, 9, 0), "a")
	for i := range 20 {
		// Stop the activation that answered behind the directory's back, racing
		// the next request: the request either reaches the dying activation (dead
		// letter → retried) or a new one. The process is resolved here, not by
		// name in the goroutine: the name may by then belong to the next
		// activation, mid-spawn, and protoactor's spawn registers a process
		// before its mailbox has a dispatcher, so any message to it then is a
		// nil dereference (the CI panic at stop 26). The directory never sends to
		// a pid before SpawnNamed returns it.
		pid := system.NewLocalPID("calendar/p1")
		// (None when last round's stop came after its answer: the booking below
		// then activates a new one.)
		if proc, ok := system.ProcessRegistry.GetLocal(pid.Id); ok {
			go proc.Stop(pid)
		}
		_, err := e.book(t, "p1", "cut", at(2, 9, 0), "a")
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	if _, err := e.book(t, "p1", "cut", at(2, 9, 0), "other"); !errors.Is(err, actors.ErrSlotTaken) {
		t.Fatalf("after restarts: %v", err)
	}
	if n := len(actorstest.NewStore().Bookings("p1", 0)); n != 0 {
		t.Fatal("fresh store not empty")
	}
}

// TestCalendars_ResyncReloads: the placement actor tells an activation that
// another activation of its calendar has stopped (a healed partition's
// duplicate); what that one wrote is in the store only, and the survivor's
// availability must show it without waiting for a conflicting write.
func TestCalendars_ResyncReloads(t *testing.T) {
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer system.Shutdown()
	e := newEnv(t, func(c *actors.Config) { c.System = system })
	e.mustBook(t, "p1", "cut", at(2, 9, 0), "warm") // activate
	e.store.PutBooking(&bookingv1.Booking{Id: "dup", ProviderId: "p1", ServiceId: "cut", ClientId: "c9",
		StartMs: at(2, 10, 0), EndMs: at(2, 10, 30), BlockedUntilMs: at(2, 10, 40), Version: 1,
		Status: bookingv1.BookingStatus_BOOKING_STATUS_CONFIRMED})
	if !e.slots(t, "p1", "cut", "2026-12-02")[at(2, 10, 0)] {
		t.Fatal("setup: memory should not know the duplicate's booking yet")
	}
	loads := e.store.ProviderLoads()
	system.Root.Send(system.NewLocalPID("calendar/p1"), &placement.Resync{})
	if e.slots(t, "p1", "cut", "2026-12-02")[at(2, 10, 0)] {
		t.Fatal("after Resync the calendar still offers the slot the other activation booked")
	}
	if got := e.store.ProviderLoads() - loads; got != 1 {
		t.Fatalf("%d reloads, want 1", got)
	}
}
