package cluster

import (
	"strings"
	"testing"

	"github.com/barberpro/edge/cluster/membership"
)

func member(id, jur, state string, founded bool, cid string) membership.Member {
	return membership.Member{Meta: membership.Meta{NodeID: id, Jurisdiction: jur, Founded: founded, ClusterID: cid}, State: state}
}

// TestFoundingVerdict is the founding rule, case by case. The wiped founder
// (finding 1) is "wiped ba-1 sees a dead member holding state" and "wiped
// ba-1 alone": neither founds.
func TestFoundingVerdict(t *testing.T) {
	alive, dead := membership.StateAlive, membership.StateDead
	ar := func(ms ...membership.Member) []membership.Member { return ms }
	for _, c := range []struct {
		name    string
		self    string
		expect  int
		members []membership.Member
		found   bool
		why     string
	}{
		{"expect 0 never founds", "ba-1", 0, ar(member("ba-1", "ar", alive, false, "")), false, "bootstrap-expect is 0"},
		{"single node, expect 1", "us-1", 1, ar(member("us-1", "us", alive, false, "")), true, ""},
		{"wiped founder alone, expect 3", "ba-1", 3, ar(member("ba-1", "ar", alive, false, "")), false, "1 of 3"},
		{"three new ar nodes, lowest founds", "ba-1", 3, ar(
			member("ba-1", "ar", alive, false, ""), member("cba-1", "ar", alive, false, ""), member("ros-1", "ar", alive, false, ""),
			member("us-1", "us", alive, true, "u")), true, ""},
		{"three new ar nodes, not the lowest", "ros-1", 3, ar(
			member("ba-1", "ar", alive, false, ""), member("cba-1", "ar", alive, false, ""), member("ros-1", "ar", alive, false, "")), false, "ba-1 founds"},
		{"a live member holds state", "ba-1", 1, ar(
			member("ba-1", "ar", alive, false, ""), member("cba-1", "ar", alive, true, "")), false, "the group exists"},
		{"a member has a cluster id", "ba-1", 1, ar(
			member("ba-1", "ar", alive, false, ""), member("cba-1", "ar", alive, false, "c1")), false, "the group exists"},
		{"a dead member held state", "ba-1", 1, ar(
			member("ba-1", "ar", alive, false, ""), member("cba-1", "ar", dead, true, "c1")), false, "the group exists"},
		{"dead empty members do not count", "ba-1", 2, ar(
			member("ba-1", "ar", alive, false, ""), member("cba-1", "ar", dead, false, "")), false, "1 of 2"},
		{"another jurisdiction's state does not matter", "ba-1", 1, ar(
			member("ba-1", "ar", alive, false, ""), member("us-1", "us", alive, true, "u")), true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			jur := "ar"
			if strings.HasPrefix(c.self, "us") {
				jur = "us"
			}
			found, why := foundingVerdict(c.self, jur, c.expect, c.members, true)
			if found != c.found || !strings.Contains(why, c.why) {
				t.Fatalf("verdict %v %q, want %v containing %q", found, why, c.found, c.why)
			}
		})
	}
}

// TestFoundingVerdict_SeedsNeverAnswered: a node started with --join whose
// seeds never answered founds nothing, though it alone meets bootstrap-expect
// 1 or is the lowest of enough live nodes: its seeds' group may exist.
func TestFoundingVerdict_SeedsNeverAnswered(t *testing.T) {
	alive := membership.StateAlive
	for _, ms := range [][]membership.Member{
		{member("ba-1", "ar", alive, false, "")},
		{member("ba-1", "ar", alive, false, ""), member("cba-1", "ar", alive, false, "")},
	} {
		if found, why := foundingVerdict("ba-1", "ar", len(ms), ms, false); found || !strings.Contains(why, "--join seeds") {
			t.Fatalf("seeds never answered, %d alive: verdict %v %q", len(ms), found, why)
		}
		if found, _ := foundingVerdict("ba-1", "ar", len(ms), ms, true); !found {
			t.Fatalf("seeds answered, %d alive: no founding", len(ms))
		}
	}
}
