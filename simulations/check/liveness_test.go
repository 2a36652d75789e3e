package check

import (
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/simulations/history"
)

func TestLiveness(t *testing.T) {
	healed := at(1000)
	bound := 2 * time.Second
	on := func(op history.Op, p string) history.Op { op.ProviderID = p; return op }
	ops := hist(
		on(ok(book(0, 30, "a1"), 500, 1500, "A1"), "p-a"),                                // 0: invoked before the heal: does not count
		on(ok(book(30, 60, "a2"), 1200, 1300, "A2"), "p-a"),                              // 1: p-a recovered
		on(fail(book(0, 30, "b1"), 1100, 1200, 503, codeJurisdictionUnavailable), "p-b"), // 2
		on(lost(book(0, 30, "b2"), 1500), "p-b"),                                         // 3
		on(ok(book(0, 30, "b3"), 3500, 3600, "B3"), "p-b"),                               // 4: too late
		on(ok(book(0, 30, "c1"), 500, 1500, "C1"), "p-c"),                                // 5: before the heal only
		on(conflict(book(0, 30, "d1"), 1100, 1200), "p-d"),                               // 6: refused
		on(ok(book(60, 90, "d2"), 2900, 3000, "D2"), "p-d"),                              // 7: just in time
	)
	tests := []struct {
		name      string
		providers []string
		ops       []int // nil: OK
		detail    string
	}{
		{name: "recovered", providers: []string{"p-a", "p-d"}},
		{name: "recovered too late", providers: []string{"p-a", "p-b"}, ops: []int{2, 3}, detail: "first success came 2.6s after"},
		{name: "never tried after the heal", providers: []string{"p-c"}, ops: []int{}, detail: "no booking was attempted"},
		{name: "never booked at all", providers: []string{"p-z"}, ops: []int{}, detail: "no booking was attempted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Liveness(ops, tt.providers, healed, bound)
			if tt.ops == nil {
				if !res.OK() {
					t.Fatalf("want OK, got %v", res.Violations)
				}
				return
			}
			wantViolation(t, res, CheckLiveness, nilIfEmpty(tt.ops))
			if !strings.Contains(res.Violations[0].Detail, tt.detail) {
				t.Fatalf("detail %q does not say %q", res.Violations[0].Detail, tt.detail)
			}
		})
	}
	if d, ok := RecoveryTime(ops, "p-b", healed); !ok || d != 2600*time.Millisecond {
		t.Errorf("RecoveryTime(p-b) = %v, %v; want 2.6s", d, ok)
	}
	if _, ok := RecoveryTime(ops, "p-c", healed); ok {
		t.Errorf("RecoveryTime(p-c): p-c never recovered")
	}
}

func nilIfEmpty(ids []int) []int {
	if len(ids) == 0 {
		return nil
	}
	return ids
}
