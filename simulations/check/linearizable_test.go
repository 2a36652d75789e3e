package check

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/simulations/history"
)

func TestLinearizable(t *testing.T) {
	const notFound = codeNotFound
	tests := []struct {
		name  string
		ops   []history.Op
		check string // "" when the history is linearizable
		want  []int  // the ops the violation must name
	}{
		{
			name: "clean lifecycle",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 10, "A"),
				seen(get("A"), 20, 30, "confirmed", 0, 60),
				conflict(book(30, 90, "k2"), 32, 38),
				ok(book(60, 90, "k3"), 35, 45, "B"), // touching A is fine
				ok(cancelOf("A"), 50, 60, ""),
				seen(get("A"), 70, 80, "cancelled", 0, 60),
				ok(cancelOf("A"), 85, 88, ""), // cancelling again is OK
				ok(book(0, 60, "k4"), 90, 100, "C"),
				fail(get("nope-never-booked"), 110, 120, 404, notFound), // orphan: left out
			),
		},
		{
			name: "double booking, sequential",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 10, "A"),
				ok(book(30, 90, "k2"), 20, 30, "B"),
			),
			check: CheckLinearizable, want: []int{0, 1},
		},
		{
			name: "double booking, concurrent",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 30, "A"),
				ok(book(0, 60, "k2"), 5, 25, "B"),
				ok(book(200, 260, "k3"), 6, 8, "C"), // unrelated: not named
			),
			check: CheckLinearizable, want: []int{0, 1},
		},
		{
			name: "stale read: not found after the book returned",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 10, "A"),
				fail(get("A"), 20, 30, 404, notFound),
			),
			check: CheckLinearizable, want: []int{0, 1},
		},
		{
			name: "stale read: cancelled without a cancel",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 10, "A"),
				seen(get("A"), 20, 30, "cancelled", 0, 60),
			),
			check: CheckLinearizable, want: []int{0, 1},
		},
		{
			name: "stale read: still confirmed after an acknowledged cancel",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 10, "A"),
				ok(cancelOf("A"), 20, 30, ""),
				seen(get("A"), 40, 50, "confirmed", 0, 60),
			),
			check: CheckLinearizable, want: []int{0, 1, 2},
		},
		{
			name: "concurrent read may miss the booking",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 20, "A"),
				fail(get("A"), 5, 15, 404, notFound),
				seen(get("A"), 25, 30, "confirmed", 0, 60),
			),
		},
		{
			name: "false conflict: nothing overlaps",
			ops: hist(
				ok(book(60, 120, "k1"), 0, 10, "A"),
				conflict(book(0, 60, "k2"), 20, 30),
			),
			check: CheckLinearizable, want: []int{1},
		},
		{
			name: "conflict explained by an unknown book invoked before it",
			ops: hist(
				lost(book(0, 60, "k1"), 0),
				conflict(book(30, 90, "k2"), 20, 30),
			),
		},
		{
			name: "conflict explained by a 503 book (may have applied)",
			ops: hist(
				fail(book(0, 60, "k1"), 0, 10, 503, codeJurisdictionUnavailable),
				conflict(book(30, 90, "k2"), 20, 30),
			),
		},
		{
			name: "conflict not explained by an unknown book invoked after it returned",
			ops: hist(
				conflict(book(30, 90, "k2"), 0, 10),
				lost(book(0, 60, "k1"), 20),
			),
			check: CheckLinearizable, want: []int{0},
		},
		{
			name: "a 4xx refusal has no effect",
			ops: hist(
				fail(book(0, 60, "k1"), 0, 10, 422, "validation_failed"),
				ok(book(0, 60, "k2"), 20, 30, "A"),
			),
		},
		{
			name: "cancel acknowledged, slot refused later without explanation",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 10, "A"),
				ok(cancelOf("A"), 20, 30, ""),
				conflict(book(0, 60, "k2"), 40, 50),
			),
			check: CheckLinearizable, want: []int{0, 1, 2},
		},
		{
			name: "cancel acknowledged, refusal explained by a concurrent unknown book",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 10, "A"),
				ok(cancelOf("A"), 20, 30, ""),
				lost(book(10, 40, "k3"), 35),
				conflict(book(0, 60, "k2"), 40, 50),
			),
		},
		{
			name: "unknown book applied: its retry is acknowledged and read",
			ops: hist(
				client(lost(book(0, 60, "k1"), 0), 1),
				client(ok(book(0, 60, "k1"), 50, 60, "A"), 1),
				seen(get("A"), 70, 80, "confirmed", 0, 60),
				conflict(book(0, 30, "k2"), 90, 100),
			),
		},
		{
			name: "unknown book applied: a later book of its slot is refused",
			ops: hist(
				lost(book(0, 60, "k1"), 0),
				conflict(book(0, 60, "k2"), 100, 110),
				conflict(book(20, 30, "k3"), 120, 130),
			),
		},
		{
			name: "unknown book not applied: a later book of its slot succeeds",
			ops: hist(
				lost(book(0, 60, "k1"), 0),
				ok(book(0, 60, "k2"), 100, 110, "B"),
				seen(get("B"), 120, 130, "confirmed", 0, 60),
			),
		},
		{
			name: "unknown book cannot both apply and not apply",
			ops: hist(
				lost(book(0, 60, "k1"), 0),
				conflict(book(0, 60, "k2"), 10, 20),
				ok(book(0, 60, "k3"), 30, 40, "C"),
			),
			check: CheckLinearizable, want: []int{0, 1, 2},
		},
		{
			name: "retries with one idempotency key are one booking",
			ops: hist(
				client(lost(book(0, 60, "k1"), 0), 1),
				client(lost(book(0, 60, "k1"), 30), 1),
				client(ok(book(0, 60, "k1"), 60, 70, "A"), 1),
				client(ok(book(0, 60, "k1"), 80, 90, "A"), 1), // replayed answer
				seen(get("A"), 95, 99, "confirmed", 0, 60),
				conflict(book(30, 40, "k2"), 100, 110),
			),
		},
		{
			name: "retries acknowledged with two ids",
			ops: hist(
				client(ok(book(0, 60, "k1"), 0, 10, "A"), 1),
				client(ok(book(0, 60, "k1"), 20, 30, "B"), 1),
			),
			check: CheckIdempotency, want: []int{0, 1},
		},
		{
			name: "retry refused after the booking was acknowledged",
			ops: hist(
				client(ok(book(0, 60, "k1"), 0, 10, "A"), 1),
				client(conflict(book(0, 60, "k1"), 20, 30), 1),
			),
			check: CheckIdempotency, want: []int{0, 1},
		},
		{
			name: "reschedule moves the booking atomically",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 10, "A"),
				ok(reschedule("A", 120, 180), 20, 30, ""),
				ok(book(0, 60, "k2"), 40, 50, "B"),
				conflict(book(150, 200, "k3"), 60, 70),
				seen(get("A"), 80, 90, "confirmed", 120, 180),
				conflict(reschedule("A", 30, 90), 100, 110),
				seen(get("A"), 120, 130, "confirmed", 120, 180),
			),
		},
		{
			name: "read after an acknowledged reschedule shows the old times",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 10, "A"),
				ok(reschedule("A", 120, 180), 20, 30, ""),
				seen(get("A"), 40, 50, "confirmed", 0, 60),
			),
			check: CheckLinearizable, want: []int{0, 1, 2},
		},
		{
			name: "reschedule refused with nothing in the way",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 10, "A"),
				conflict(reschedule("A", 120, 180), 20, 30),
			),
			check: CheckLinearizable, want: []int{0, 1},
		},
		{
			name: "reschedule of a cancelled booking acknowledged",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 10, "A"),
				ok(cancelOf("A"), 20, 30, ""),
				ok(reschedule("A", 120, 180), 40, 50, ""),
			),
			check: CheckLinearizable, want: []int{0, 1, 2},
		},
		{
			name: "providers are independent",
			ops: hist(
				ok(book(0, 60, "k1"), 0, 10, "A"),
				history.Op{Kind: history.Book, ProviderID: "prov-2", Start: m(0), End: m(60),
					IdempotencyKey: "k2", Call: at(20), Return: at(30), Outcome: history.OK, BookingID: "B"},
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Linearizable(tt.ops, 10*time.Second, "")
			if len(res.Inconclusive) > 0 {
				t.Fatalf("inconclusive: %v", res.Inconclusive)
			}
			if tt.check == "" {
				if !res.OK() {
					t.Fatalf("want OK, got %v", res.Violations)
				}
				return
			}
			if res.OK() {
				t.Fatalf("want a %s violation naming ops %v, got OK", tt.check, tt.want)
			}
			for _, v := range res.Violations {
				if v.Check == tt.check && slices.Equal(v.Ops, tt.want) {
					t.Logf("%s", v)
					return
				}
			}
			t.Fatalf("want a %s violation naming ops %v, got %v", tt.check, tt.want, res.Violations)
		})
	}
}

func TestLinearizableWritesHTML(t *testing.T) {
	dir := t.TempDir()
	ops := hist(
		ok(book(0, 60, "k1"), 0, 10, "A"),
		ok(book(30, 90, "k2"), 20, 30, "B"),
		lost(book(200, 260, "k9"), 5), // rendered with its return at infinity
		history.Op{Kind: history.Book, ProviderID: "prov/2", Start: m(0), End: m(60),
			IdempotencyKey: "k3", Call: at(20), Return: at(30), Outcome: history.OK, BookingID: "C"},
	)
	res := Linearizable(ops, 10*time.Second, dir)
	if res.OK() {
		t.Fatal("want a violation")
	}
	path := filepath.Join(dir, "linearizability-"+prov+".html")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no rendering of the failing partition: %v", err)
	}
	if !strings.Contains(string(b), "book [02-01 10:30, 11:30)") {
		t.Errorf("rendering does not describe the operations")
	}
	if !strings.Contains(res.Violations[0].Detail, path) {
		t.Errorf("violation does not point at the rendering: %s", res.Violations[0].Detail)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("only the failing partition is rendered, got %d files", len(entries))
	}
}
