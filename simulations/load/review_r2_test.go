package load

import (
	"context"
	"testing"
	"time"
)

// TestReview_HugeThinkStillPauses (review s15-r2, low): --think is checked for
// 0 and negatives only; a pause of min(draw, 10)×Think past MaxInt64 ns
// converts to a negative time.Duration, the timer fires at once and the person
// sends without a pause (the opposite of what a longer think time asks for).
func TestReview_HugeThinkStillPauses(t *testing.T) {
	run := &cityRun{cfg: Config{Think: 1 << 62}} // ~146 years: draws above 2 overflow
	for i := range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		paused := !run.think(ctx, personRand(1, i))
		cancel()
		if !paused {
			t.Fatalf("person %d: a think time of %v ended before a 1 ms deadline", i, run.cfg.Think)
		}
	}
}
