package check

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Check names of the checks of issue 7.
const (
	// CheckFork: one Raft group with two histories.
	CheckFork = "fork"
	// CheckNoCrash: a node process that ended without the harness ending it.
	CheckNoCrash = "no-crash"
	// CheckPlacement: nodes disagree on where a calendar lives, or it did not
	// return to its home city's node.
	CheckPlacement = "placement"
	// CheckHostsCalendars: a node of a jurisdiction hosts no calendar actor.
	CheckHostsCalendars = "hosts-calendars"
	// CheckDiskFull: a node whose disk filled did not refuse writes as it
	// should, or did not take writes again once the disk had room.
	CheckDiskFull = "disk-full"
)

// StatusSample is one node's answer to GET /v1/cluster/status, taken at At. Its
// JSON is the API's, so the answer decodes straight into it; the fields the
// API gained with issue 7 (cluster ids, member terms) are optional.
type StatusSample struct {
	// At is when the answer came; Observer the node asked.
	At       time.Time   `json:"at"`
	Observer string      `json:"observer"`
	Groups   []GroupView `json:"groups"`
}

// GroupView is one Raft group as an observer reports it.
type GroupView struct {
	Group string `json:"group"`
	// ClusterID is the group's id as the observer knows it ("" when the
	// observer does not say: a build before issue 7).
	ClusterID string       `json:"cluster_id,omitempty"`
	Leader    string       `json:"leader"`
	Term      uint64       `json:"term"`
	Members   []MemberView `json:"members"`
}

// MemberView is one member of a group as an observer reports it.
type MemberView struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	// Term is the member's current Raft term, as it reported it (0: not said).
	Term uint64 `json:"term,omitempty"`
	// ClusterID is the group id the member holds ("": not said).
	ClusterID string `json:"cluster_id,omitempty"`
	// Disk is the member's data dir identity ("": not said).
	Disk string `json:"disk,omitempty"`
}

// witness says who reported something, and when.
type witness struct {
	node, observer string
	at             time.Time
}

func (w witness) String() string {
	return fmt.Sprintf("%s, as %s reported at %s", w.node, w.observer, w.at.UTC().Format("15:04:05.000"))
}

// Fork checks every status sample of a run for a forked Raft group: two
// members of one group that hold different (non-empty) cluster ids, or two
// different members that reported being the leader in the same term (Raft
// allows one leader per term, ever). Claims come from each member's own term
// and role as an observer relays them; a sample without member terms (a build
// before issue 7) gives no leader claims, and one without cluster ids none of
// those: the check then passes on what it could see (the counts say how much).
func Fork(samples []StatusSample) Result {
	var res Result
	res.count("fork.samples", len(samples))
	type groupSeen struct {
		ids     map[string][]witness            // cluster id → who holds it
		leaders map[uint64]map[string][]witness // term → member → reports
	}
	groups := map[string]*groupSeen{}
	seen := func(g string) *groupSeen {
		if groups[g] == nil {
			groups[g] = &groupSeen{ids: map[string][]witness{}, leaders: map[uint64]map[string][]witness{}}
		}
		return groups[g]
	}
	sorted := slices.Clone(samples)
	slices.SortStableFunc(sorted, func(a, b StatusSample) int { return a.At.Compare(b.At) })
	for _, s := range sorted {
		for _, g := range s.Groups {
			gs := seen(g.Group)
			if g.ClusterID != "" {
				gs.ids[g.ClusterID] = append(gs.ids[g.ClusterID], witness{s.Observer, s.Observer, s.At})
			}
			for _, m := range g.Members {
				if m.ClusterID != "" {
					gs.ids[m.ClusterID] = append(gs.ids[m.ClusterID], witness{m.ID, s.Observer, s.At})
				}
				if m.Role == "leader" && m.Term > 0 {
					res.count("fork.leader_claims", 1)
					if gs.leaders[m.Term] == nil {
						gs.leaders[m.Term] = map[string][]witness{}
					}
					gs.leaders[m.Term][m.ID] = append(gs.leaders[m.Term][m.ID], witness{m.ID, s.Observer, s.At})
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		gs := groups[name]
		res.count("fork.cluster_ids", len(gs.ids))
		if len(gs.ids) > 1 {
			var parts []string
			var refs []string
			for _, id := range slices.Sorted(maps.Keys(gs.ids)) {
				ws := gs.ids[id]
				var holders []string
				for _, w := range ws {
					if !slices.Contains(holders, w.node) {
						holders = append(holders, w.node)
					}
				}
				parts = append(parts, fmt.Sprintf("%s held by %s (first: %s)", id, strings.Join(holders, ", "), ws[0]))
				refs = append(refs, holders...)
			}
			res.violate(CheckFork, nil, uniqueStrings(refs), "group %s has %d cluster ids: %s", name, len(gs.ids), strings.Join(parts, "; "))
		}
		for _, term := range slices.Sorted(maps.Keys(gs.leaders)) {
			ls := gs.leaders[term]
			if len(ls) < 2 {
				continue
			}
			var parts []string
			ids := slices.Sorted(maps.Keys(ls))
			for _, id := range ids {
				parts = append(parts, ls[id][0].String())
			}
			res.violate(CheckFork, nil, ids, "group %s has two leaders of term %d: %s", name, term, strings.Join(parts, "; "))
		}
	}
	return res
}

func uniqueStrings(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}
