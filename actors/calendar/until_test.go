package calendar_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/barberpro/edge/actors/calendar"
)

// TestSlotsUntil_HoldsUntilThenChanges: at random instants of [now, until]
// the answer is the one computed at now; just after until it is not. Days,
// notice, horizon, zones (DST included) and the starting instant are drawn at
// random, so the notice edge and the horizon edge both come up.
func TestSlotsUntil_HoldsUntilThenChanges(t *testing.T) {
	rnd := rand.New(rand.NewPCG(11, 16))
	zones := []string{"America/Argentina/Buenos_Aires", "America/Santiago", "America/New_York", "UTC"}
	base := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	sawNotice, sawHorizon := false, false
	for i := range 400 {
		tz := zones[i%len(zones)]
		loc := mustLoc(t, tz)
		p := testProvider(tz)
		p.MinNoticeMinutes = int32(rnd.IntN(4) * 45)
		p.HorizonDays = int32(1 + rnd.IntN(12))
		svc := calendar.FindService(p, []string{"cut", "color", "beard"}[rnd.IntN(3)])
		now := base.Add(time.Duration(rnd.Int64N(int64(20 * 24 * time.Hour))))
		from := calendar.DateOf(now.In(loc).AddDate(0, 0, rnd.IntN(15)-1))
		days := 1 + rnd.IntN(3)
		busy := calendar.NewBusy()
		if rnd.IntN(2) == 0 {
			s := now.Add(time.Duration(rnd.IntN(48)) * time.Hour).Truncate(15 * time.Minute)
			busy.Add("b", calendar.Interval{Start: s, End: s.Add(time.Hour)})
		}
		want, until, err := calendar.SlotsUntil(p, svc, from, days, now, busy)
		if err != nil {
			t.Fatal(err)
		}
		if until.Before(now) {
			t.Fatalf("case %d: until %v before now %v", i, until, now)
		}
		check := func(at time.Time) []calendar.Slot {
			got, err := calendar.SlotsBusy(p, svc, from, days, at, busy)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		last := until
		if until.Equal(calendar.Forever) {
			last = now.Add(60 * 24 * time.Hour)
		}
		for _, at := range []time.Time{now, last, now.Add(time.Duration(rnd.Int64N(int64(last.Sub(now)) + 1)))} {
			if got := check(at); !slices.EqualFunc(got, want, sameSlot) {
				t.Fatalf("case %d (%s): at %v (until %v) %d slots, at now %d", i, tz, at, until, len(got), len(want))
			}
		}
		if until.Equal(calendar.Forever) {
			continue
		}
		after := check(until.Add(time.Nanosecond))
		if slices.EqualFunc(after, want, sameSlot) {
			t.Fatalf("case %d (%s): the answer did not change just after until %v (now %v)", i, tz, until, now)
		}
		if len(after) < len(want) {
			sawNotice = true
		} else {
			sawHorizon = true
		}
	}
	if !sawNotice || !sawHorizon {
		t.Fatalf("draws missed an edge: notice %v, horizon %v", sawNotice, sawHorizon)
	}
}

func sameSlot(a, b calendar.Slot) bool { return a.Start.Equal(b.Start) && a.End.Equal(b.End) }

// TestBusy_Gen: every change of the set changes Gen; a Remove of nothing does not.
func TestBusy_Gen(t *testing.T) {
	b := calendar.NewBusy()
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	g := b.Gen()
	b.Add("x", calendar.Interval{Start: at, End: at.Add(time.Hour)})
	if b.Gen() == g {
		t.Fatal("Add left Gen unchanged")
	}
	g = b.Gen()
	if b.Remove("nothing"); b.Gen() != g {
		t.Fatal("a Remove of nothing changed Gen")
	}
	if b.Remove("x"); b.Gen() == g {
		t.Fatal("Remove left Gen unchanged")
	}
}
