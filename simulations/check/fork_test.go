package check

import (
	"encoding/json"
	"strings"
	"testing"
)

// status is a sample of group ar as observer saw it.
func status(ms int, observer, clusterID string, members ...MemberView) StatusSample {
	return StatusSample{At: at(ms), Observer: observer, Groups: []GroupView{{Group: "ar", ClusterID: clusterID, Members: members}}}
}

func member(id, role string, term uint64, clusterID string) MemberView {
	return MemberView{ID: id, Role: role, Term: term, ClusterID: clusterID}
}

func TestFork(t *testing.T) {
	healthy := []StatusSample{
		status(0, "ba-1", "c1", member("ba-1", "leader", 2, "c1"), member("cba-1", "follower", 2, "c1")),
		status(10, "cba-1", "c1", member("ba-1", "leader", 2, "c1"), member("cba-1", "follower", 2, "c1")),
		// ba-1 killed; cba-1 leads term 3 while a stale view still shows ba-1.
		status(900, "cba-1", "c1", member("cba-1", "leader", 3, "c1"), member("ba-1", "leader", 2, "c1")),
		// ba-1 back as a follower, a new disk (no cluster id yet while it joins).
		status(2000, "ros-1", "c1", member("cba-1", "leader", 3, "c1"), member("ba-1", "nonvoter", 3, "")),
		// A build before issue 7: no ids, no member terms — no claims.
		{At: at(2100), Observer: "lp-1", Groups: []GroupView{{Group: "ar", Leader: "ba-1", Term: 3,
			Members: []MemberView{{ID: "ba-1", Role: "leader"}, {ID: "cba-1", Role: "leader"}}}}},
	}
	tests := []struct {
		name    string
		samples []StatusSample
		detail  string // "" when clean
		refs    []string
	}{
		{name: "healthy, failover and a stale view", samples: healthy},
		{
			name: "wiped founder founds a second group",
			samples: append(healthy[:3:3],
				status(3000, "ba-1", "c2", member("ba-1", "leader", 2, "c2")),
				status(3010, "ros-1", "c1", member("cba-1", "leader", 3, "c1"), member("ros-1", "follower", 3, "c1"))),
			detail: "2 cluster ids: c1 held by", refs: []string{"ba-1", "cba-1"},
		},
		{
			name: "two leaders of one term",
			samples: []StatusSample{
				status(0, "ba-1", "", member("ba-1", "leader", 4, "")),
				status(5, "cba-1", "", member("cba-1", "candidate", 4, "")),
				status(1000, "cba-1", "", member("cba-1", "leader", 4, "")),
			},
			detail: "two leaders of term 4", refs: []string{"ba-1", "cba-1"},
		},
		{
			name: "one member seen leading a term twice is not a fork",
			samples: []StatusSample{
				status(0, "ba-1", "c1", member("ba-1", "leader", 4, "c1")),
				status(5, "cba-1", "c1", member("ba-1", "leader", 4, "c1")),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Fork(tt.samples)
			if tt.detail == "" {
				if !res.OK() {
					t.Fatalf("want OK, got %v", res.Violations)
				}
				return
			}
			wantViolation(t, res, CheckFork, nil, tt.refs...)
			if !strings.Contains(res.Violations[0].Detail, tt.detail) {
				t.Fatalf("detail %q lacks %q", res.Violations[0].Detail, tt.detail)
			}
		})
	}
	if n := Fork(healthy).Checked["fork.leader_claims"]; n != 5 {
		t.Errorf("leader claims counted %d, want 5 (none from the sample without member terms)", n)
	}
}

// TestStatusSample_DecodesTheAPI: the status answer of a build before issue 7
// and one after both decode into StatusSample.
func TestStatusSample_DecodesTheAPI(t *testing.T) {
	for _, body := range []string{
		`{"node":"ba-1","groups":[{"group":"ar","leader":"ba-1","term":2,"members":[{"id":"ba-1","role":"leader","applied_index":10,"lag":0}]}]}`,
		`{"node":"ba-1","groups":[{"group":"ar","leader":"ba-1","term":2,"cluster_id":"c1","events":["x"],"members":[{"id":"ba-1","role":"leader","applied_index":10,"lag":0,"term":2,"cluster_id":"c1","disk":"d1"}]}]}`,
	} {
		var s StatusSample
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatal(err)
		}
		if len(s.Groups) != 1 || s.Groups[0].Members[0].ID != "ba-1" || s.Groups[0].Members[0].Role != "leader" {
			t.Fatalf("decoded %+v", s)
		}
	}
}
