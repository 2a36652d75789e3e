package cluster

import (
	"fmt"
	"slices"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/edge"
)

// router tells the edge which live node serves a jurisdiction, from gossip.
type router struct {
	members      *membership.Membership
	jurisdiction string
}

var _ edge.Router = (*router)(nil)

// Jurisdiction is this node's jurisdiction.
func (r *router) Jurisdiction() string { return r.jurisdiction }

// Peer returns the API URL of a live node of jurisdiction j, preferring one in
// city, then the lowest node id (stable, so one city's traffic goes to one peer).
func (r *router) Peer(j, city string) (string, error) {
	var best *membership.Member
	for _, m := range r.members.Members() {
		// A node serves once it advertises its actor kinds, and stops when it
		// withdraws them to leave: relay only to serving nodes.
		if m.Jurisdiction != j || m.HTTPAddr == "" || len(m.Kinds) == 0 {
			continue
		}
		if best == nil || (m.City == city && best.City != city) {
			best = &m
		}
	}
	if best == nil {
		return "", fmt.Errorf("%w: %q", edge.ErrNoPeer, j)
	}
	return "http://" + best.HTTPAddr, nil
}

// Jurisdictions lists every jurisdiction with a live node, sorted.
func (r *router) Jurisdictions() []string {
	var out []string
	for _, m := range r.members.Members() {
		if !slices.Contains(out, m.Jurisdiction) {
			out = append(out, m.Jurisdiction)
		}
	}
	slices.Sort(out)
	return out
}
