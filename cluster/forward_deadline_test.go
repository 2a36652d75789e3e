package cluster

import (
	"context"
	"testing"
	"time"
)

// TestDeadlineMs_NeverAsksTheLeaderForItsDefault: a forwarded request whose
// caller has under a millisecond left (or none) must not reach the leader
// as "no timeout given" (0), which the leader reads as its 5 s default.
func TestDeadlineMs_NeverAsksTheLeaderForItsDefault(t *testing.T) {
	for _, left := range []time.Duration{-time.Second, 0, 300 * time.Microsecond, 999 * time.Microsecond} {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(left))
		ms := deadlineMs(ctx, time.Minute)
		cancel()
		if ms < 1 || msDuration(ms) > time.Millisecond {
			t.Errorf("%s left: TimeoutMs %d, the leader waits %s", left, ms, msDuration(ms))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if ms := deadlineMs(ctx, time.Minute); ms < 1900 || ms > 2000 {
		t.Errorf("2s left: TimeoutMs %d", ms)
	}
	if ms := deadlineMs(context.Background(), time.Minute); ms != 60000 {
		t.Errorf("no deadline: TimeoutMs %d, want the default 60000", ms)
	}
}
