package check

import (
	"strings"
	"testing"
	"time"
)

func TestMergeAndWrite(t *testing.T) {
	ops := hist(
		ok(book(0, 60, "k1"), 0, 10, "A"),
		ok(book(30, 90, "k2"), 20, 30, "B"),
	)
	clean := ReplicasAgree(map[string]map[string]string{"ar": {"n1": "aa", "n2": "aa"}})
	bad := Linearizable(ops, 10*time.Second, "")
	merged := Merge(clean, bad, NoDoubleBooking(map[string][]Booking{"n1": {bk("A", "confirmed", 0, 60), bk("B", "confirmed", 30, 90)}}).WithOps(ops))
	if merged.OK() || merged.ExitCode() != 1 || len(merged.Violations) != 2 {
		t.Fatalf("merged: %+v", merged)
	}
	if merged.Checked["replicas-agree.nodes"] != 2 || merged.Checked["linearizable.ops"] != 2 {
		t.Fatalf("counts not merged: %v", merged.Checked)
	}
	var b strings.Builder
	if err := merged.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"VIOLATION [linearizable]", "VIOLATION [no-double-booking]", "(ops 0,1)", "FAIL: 2 violation(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if clean.ExitCode() != 0 || !clean.Clean() {
		t.Errorf("clean result: %+v", clean)
	}
}
