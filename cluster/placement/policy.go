package placement

import (
	"cmp"
	"fmt"
	"github.com/barberpro/edge/edge/ids"
	"hash/fnv"
	"slices"
	"strings"
)

// ProviderIDPrefix starts every provider id: "prv_<city>_<random>".
const ProviderIDPrefix = "prv_"

// Candidate is an actor-cluster member as placement sees it.
type Candidate struct {
	// MemberID is the actor-cluster member id as this node's cluster knows
	// it: NodeID@BootID for this node, NodeID@BootID@N for the others (see
	// Incarnation).
	MemberID string
	// NodeID is the stable node id; rendezvous hashing uses it, so a restarted
	// node gets its identities back.
	NodeID string
	// Address is the member's actor endpoint, host:port.
	Address string
	// City and Jurisdiction come from the node's membership metadata.
	City, Jurisdiction string
	// Kinds are the actor kinds the member hosts.
	Kinds []string
}

// ProviderCity returns the home city encoded in a provider id
// ("prv_buenos-aires_k3j4" → "buenos-aires"), as edge/ids defines the format.
func ProviderCity(identity string) (string, bool) {
	if !strings.HasPrefix(identity, ProviderIDPrefix) {
		return "", false
	}
	return ids.CityOf(identity)
}

// Kind names the jurisdiction-bound actor kind of a family: Kind("calendar",
// "ar") = "calendar-ar".
func Kind(family, jurisdiction string) string { return family + "-" + jurisdiction }

// KindJurisdiction returns the jurisdiction a kind is bound to: the text after
// its last '-' ("calendar-ar" → "ar"). A kind without '-' (e.g. protoactor's
// "prototopic") is bound to none and returns "". Jurisdictions never contain '-'.
func KindJurisdiction(kind string) string {
	if i := strings.LastIndexByte(kind, '-'); i >= 0 {
		return kind[i+1:]
	}
	return ""
}

// Place picks the member that should host identity of kind:
//
//  1. candidates that host kind and, if kind is jurisdiction-bound, belong to
//     its jurisdiction;
//  2. of those, the ones in the provider's home city if any (ProviderCity);
//  3. of those, the highest rendezvous score of (identity, NodeID).
//
// The choice depends only on the set in step 2, so adding or removing a member
// outside it never moves the identity. No candidate gives an error wrapping
// ErrNoMember.
func Place(identity, kind string, candidates []Candidate) (Candidate, error) {
	jurisdiction := KindJurisdiction(kind)
	pool := make([]Candidate, 0, len(candidates))
	for _, c := range candidates {
		if slices.Contains(c.Kinds, kind) && (jurisdiction == "" || c.Jurisdiction == jurisdiction) {
			pool = append(pool, c)
		}
	}
	if len(pool) == 0 {
		return Candidate{}, fmt.Errorf("%w: kind %q (identity %q)", ErrNoMember, kind, identity)
	}
	if city, ok := ProviderCity(identity); ok {
		local := slices.DeleteFunc(slices.Clone(pool), func(c Candidate) bool { return c.City != city })
		if len(local) > 0 {
			pool = local
		}
	}
	best, bestScore := pool[0], score(identity, pool[0].key())
	for _, c := range pool[1:] {
		s := score(identity, c.key())
		if s > bestScore || (s == bestScore && cmp.Less(c.key(), best.key())) {
			best, bestScore = c, s
		}
	}
	return best, nil
}

func (c Candidate) key() string {
	if c.NodeID != "" {
		return c.NodeID
	}
	return c.MemberID
}

// score is the rendezvous weight of a node for an identity: FNV-1a over both,
// finished with a 64-bit mixer so similar node ids spread evenly.
func score(identity, node string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(identity))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(node))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
