package check

import (
	"slices"
	"strings"
	"testing"
)

func bk(id, status string, start, end int) Booking {
	return Booking{ID: id, ProviderID: prov, Status: status, Start: m(start), End: m(end)}
}

// wantViolation fails t unless res has a violation of check whose Ops equal ops
// (when ops is non-nil) and whose Refs hold every ref.
func wantViolation(t *testing.T, res Result, check string, ops []int, refs ...string) {
	t.Helper()
	for _, v := range res.Violations {
		if v.Check != check || (ops != nil && !slices.Equal(v.Ops, ops)) {
			continue
		}
		if slices.ContainsFunc(refs, func(r string) bool { return !slices.Contains(v.Refs, r) }) {
			continue
		}
		t.Logf("%s", v)
		return
	}
	t.Fatalf("want a %s violation (ops %v, refs %v), got %v", check, ops, refs, res.Violations)
}

func TestNoDoubleBooking(t *testing.T) {
	clean := []Booking{
		bk("A", "confirmed", 0, 60),
		bk("B", "confirmed", 60, 90), // touching
		bk("C", StatusCancelled, 30, 90),
		{ID: "D", ProviderID: "prov-2", Status: "confirmed", Start: m(0), End: m(60)}, // other provider
	}
	tests := []struct {
		name     string
		replicas map[string][]Booking
		want     []string // refs of the violation; nil when clean
		node     string
	}{
		{name: "clean", replicas: map[string][]Booking{"ba-1": clean, "cba-1": clean}},
		{name: "overlap", node: "cba-1", want: []string{"A", "E"}, replicas: map[string][]Booking{
			"ba-1": clean, "cba-1": append(slices.Clone(clean), bk("E", "confirmed", 30, 40)),
		}},
		{name: "nested overlap after a long booking", node: "ba-1", want: []string{"L", "B"}, replicas: map[string][]Booking{
			"ba-1": {bk("L", "confirmed", 0, 300), bk("A", StatusCancelled, 10, 20), bk("B", "confirmed", 200, 210)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := NoDoubleBooking(tt.replicas)
			if tt.want == nil {
				if !res.OK() {
					t.Fatalf("want OK, got %v", res.Violations)
				}
				if res.Checked["no-double-booking.bookings"] == 0 {
					t.Fatal("checked nothing")
				}
				return
			}
			wantViolation(t, res, CheckNoDoubleBooking, nil, tt.want...)
			if len(res.Violations) != 1 || !strings.Contains(res.Violations[0].Detail, "node "+tt.node) {
				t.Fatalf("want one violation on node %s, got %v", tt.node, res.Violations)
			}
			ops := hist(ok(book(0, 300, "k"), 0, 10, tt.want[0]), ok(book(59, 61, "k2"), 20, 30, tt.want[1]))
			if got := res.WithOps(ops).Violations[0].Ops; !slices.Equal(got, []int{0, 1}) {
				t.Fatalf("WithOps named %v, want the two books", got)
			}
		})
	}
}

func TestReplicasAgree(t *testing.T) {
	tests := []struct {
		name    string
		digests map[string]map[string]string
		want    []string
	}{
		{name: "agree", digests: map[string]map[string]string{
			"ar": {"ba-1": "aa11", "cba-1": "aa11", "ros-1": "aa11"}, "us": {"us-1": "bb22"},
		}},
		{name: "one replica differs", want: []string{"ros-1", "ba-1"}, digests: map[string]map[string]string{
			"ar": {"ba-1": "aa11", "cba-1": "aa11", "ros-1": "ff00"}, "us": {"us-1": "bb22"},
		}},
		{name: "no digest", want: []string{"cba-1"}, digests: map[string]map[string]string{
			"ar": {"ba-1": "aa11", "cba-1": ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ReplicasAgree(tt.digests)
			if tt.want == nil {
				if !res.OK() || res.Checked["replicas-agree.nodes"] != 4 {
					t.Fatalf("want OK over 4 nodes, got %v %v", res.Violations, res.Checked)
				}
				return
			}
			wantViolation(t, res, CheckReplicasAgree, nil, tt.want...)
		})
	}
}

func TestAckedPresent(t *testing.T) {
	ops := hist(
		ok(book(0, 60, "k1"), 0, 10, "A"),                                    // 0
		ok(book(60, 120, "k2"), 0, 10, "B"),                                  // 1
		ok(cancelOf("B"), 20, 30, ""),                                        // 2
		ok(book(120, 180, "k3"), 0, 10, "C"),                                 // 3
		ok(reschedule("C", 300, 360), 20, 30, ""),                            // 4
		ok(book(400, 460, "k4"), 0, 10, "D"),                                 // 5
		lost(cancelOf("D"), 20),                                              // 6
		ok(book(500, 560, "k5"), 0, 10, "E"),                                 // 7
		ok(reschedule("E", 600, 660), 20, 40, ""),                            // 8
		ok(reschedule("E", 700, 760), 25, 35, ""),                            // 9: concurrent with 8
		ok(book(800, 860, "k6"), 0, 10, "F"),                                 // 10
		ok(reschedule("F", 900, 960), 20, 30, ""),                            // 11
		lost(reschedule("F", 1000, 1060), 40),                                // 12
		conflict(reschedule("A", 1100, 1160), 20, 30),                        // 13: refused, no effect
		lost(book(1200, 1260, "k7"), 0),                                      // 14: never acknowledged
		fail(book(1300, 1360, "k8"), 0, 10, 503, "jurisdiction_unavailable"), // 15
	)
	good := []Booking{
		bk("A", "confirmed", 0, 60),
		bk("B", StatusCancelled, 60, 120),
		bk("C", "confirmed", 300, 360),
		bk("D", StatusCancelled, 400, 460), // the unknown cancel applied
		bk("E", "confirmed", 600, 660),     // either concurrent reschedule
		bk("F", "confirmed", 1000, 1060),   // the unknown reschedule applied
	}
	with := func(b Booking) []Booking {
		out := slices.Clone(good)
		for i := range out {
			if out[i].ID == b.ID {
				out[i] = b
			}
		}
		return out
	}
	without := func(id string) []Booking {
		return slices.DeleteFunc(slices.Clone(good), func(b Booking) bool { return b.ID == id })
	}
	tests := []struct {
		name  string
		final []Booking
		ops   []int // nil: clean
		ref   string
	}{
		{name: "clean", final: good},
		{name: "clean, other outcomes", final: with(bk("E", "confirmed", 700, 760))},
		{name: "clean, unknown writes not applied", final: with(bk("F", "confirmed", 900, 960))},
		{name: "clean, unknown cancel not applied", final: with(bk("D", "confirmed", 400, 460))},
		{name: "acknowledged booking lost", final: without("A"), ops: []int{0}, ref: "A"},
		{name: "cancelled without a cancel", final: with(bk("A", StatusCancelled, 0, 60)), ops: []int{0}, ref: "A"},
		{name: "acknowledged cancel lost", final: with(bk("B", "confirmed", 60, 120)), ops: []int{2}, ref: "B"},
		{name: "acknowledged reschedule lost", final: with(bk("C", "confirmed", 120, 180)), ops: []int{4}, ref: "C"},
		{name: "refused reschedule applied", final: with(bk("A", "confirmed", 1100, 1160)), ops: []int{0}, ref: "A"},
		{name: "times from nowhere", final: with(bk("E", "confirmed", 500, 560)), ops: []int{8, 9}, ref: "E"},
		{name: "wrong provider", final: with(Booking{ID: "A", ProviderID: "prov-9", Status: "confirmed", Start: m(0), End: m(60)}),
			ops: []int{0}, ref: "A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := AckedPresent(ops, tt.final)
			if tt.ops == nil {
				if !res.OK() {
					t.Fatalf("want OK, got %v", res.Violations)
				}
				if res.Checked["acked-present.acked"] != 6 {
					t.Fatalf("checked %v, want the 6 acknowledged bookings", res.Checked)
				}
				return
			}
			wantViolation(t, res, CheckAckedPresent, tt.ops, tt.ref)
		})
	}
}
