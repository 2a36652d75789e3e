package cluster

import (
	"fmt"
	"slices"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/edge"
)

// memberLister lists members; verifiedMembers lists only those whose certificate
// identity matches their gossip.
type memberLister interface {
	Members() []membership.Member
	AllMembers() []membership.Member
}

// router tells the edge which live node serves a jurisdiction: among members
// whose certificate names that jurisdiction (verifiedMembers), never on gossip
// alone. Relays go to the node's peer listener (mutual TLS).
type router struct {
	members      memberLister
	jurisdiction string
}

var _ edge.Router = (*router)(nil)

// Jurisdiction is this node's jurisdiction.
func (r *router) Jurisdiction() string { return r.jurisdiction }

// Peer returns the peer URL (https://PeerAddr) of a live node of jurisdiction j: one that serves
// (advertises its actor kinds) in city if any, else one that serves, else any
// live node that is not leaving (its kinds may not have reached this node's
// gossip yet); among equals the lowest node id, so one city's traffic goes to
// one peer.
func (r *router) Peer(j, city string) (string, error) {
	var best *membership.Member
	score := func(m membership.Member) int {
		s := 0
		if len(m.Kinds) > 0 {
			s += 2
		}
		if m.City == city {
			s++
		}
		return s
	}
	for _, m := range r.members.Members() {
		if m.Jurisdiction != j || m.PeerAddr == "" || m.Leaving {
			continue
		}
		if best == nil || score(m) > score(*best) {
			best = &m
		}
	}
	if best == nil {
		return "", fmt.Errorf("%w: %q", edge.ErrNoPeer, j)
	}
	return "https://" + best.PeerAddr, nil
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
