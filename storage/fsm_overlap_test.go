package storage_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestFSM_OverlapMatchesModel drives random creates, cancels and reschedules
// of three providers whose ids prefix one another ("q", "q-a", "q-b": their
// time-index keys sit side by side) and checks every answer against a model
// that compares the new interval with each live booking of the provider. The
// FSM's overlap check walks back one entry from the new interval's end (the
// entries are disjoint); the model does not, so a check that stops too early,
// skips the wrong entry or strays into the neighbour's keys answers
// differently on some step: a wrongly refused slot as well as a double booking.
func TestFSM_OverlapMatchesModel(t *testing.T) {
	s := st.MustOpen(t, st.Config(t))
	ctx := context.Background()
	providers := []string{"q", "q-a", "q-b"}
	for _, p := range providers {
		mustPropose(t, s, st.CreateProvider(st.Provider(p)))
	}
	type booking struct {
		provider       string
		start, blocked int // in 5-minute units from T0
		live           bool
	}
	model := map[string]*booking{}
	var ids []string
	collides := func(p string, start, blocked int, exclude string) bool {
		for id, b := range model {
			if b.live && b.provider == p && id != exclude && b.blocked > start && b.start < blocked {
				return true
			}
		}
		return false
	}
	unit := func(n int) time.Duration { return time.Duration(n) * 5 * time.Minute }
	rng := rand.New(rand.NewPCG(11, 24))
	slotTaken := 0
	for step := 0; step < 600; step++ {
		p := providers[rng.IntN(len(providers))]
		start := 1 + rng.IntN(60)
		end := start + 1 + rng.IntN(12)
		blocked := end + rng.IntN(4)
		var err error
		var want error
		var desc string
		switch op := rng.IntN(10); {
		case op < 6 || len(ids) == 0:
			id := fmt.Sprintf("%s-b%03d", p, step)
			desc = fmt.Sprintf("create %s [%d,%d)", id, start, blocked)
			if collides(p, start, blocked, "") {
				want = storage.ErrSlotTaken
			}
			_, err = s.Propose(ctx, st.CreateBooking(st.Booking(id, p, unit(start), unit(end), unit(blocked))))
			if err == nil && want == nil {
				model[id] = &booking{provider: p, start: start, blocked: blocked, live: true}
				ids = append(ids, id)
			}
		case op < 8:
			id := ids[rng.IntN(len(ids))]
			b := model[id]
			if rng.IntN(2) == 0 && b.start > 1 {
				// Earlier by a little: over its own old interval and maybe
				// its neighbour's, the case where the walk must step past
				// the excluded entry.
				start = max(1, b.start-1-rng.IntN(6))
				end = start + 1 + rng.IntN(8)
				blocked = end + rng.IntN(3)
			}
			desc = fmt.Sprintf("reschedule %s [%d,%d) to [%d,%d)", id, b.start, b.blocked, start, blocked)
			switch {
			case !b.live:
				want = storage.ErrInvalidTransition
			case collides(b.provider, start, blocked, id):
				want = storage.ErrSlotTaken
			}
			_, err = s.Propose(ctx, st.RescheduleBooking(id, unit(start), unit(end), unit(blocked)))
			if err == nil && want == nil {
				b.start, b.blocked = start, blocked
			}
		default:
			id := ids[rng.IntN(len(ids))]
			desc = "cancel " + id
			_, err = s.Propose(ctx, st.CancelBooking(id))
			if err == nil {
				model[id].live = false
			}
		}
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("step %d (%s): error %v, want %v", step, desc, err, want)
		}
		if errors.Is(want, storage.ErrSlotTaken) {
			slotTaken++
		}
	}
	// The walk must have been tested on refusals as well as on free slots.
	if slotTaken < 50 {
		t.Fatalf("only %d of 600 steps collided: the random times do not exercise the check", slotTaken)
	}
}
