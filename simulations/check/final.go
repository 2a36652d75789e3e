package check

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/barberpro/edge/simulations/history"
)

// StatusCancelled is a cancelled booking's status; every other status is a
// booking that holds its interval.
const StatusCancelled = "cancelled"

// Booking is one booking as a replica holds it at the end of a run.
type Booking struct {
	ID, ProviderID, Status string
	// Start and End are the blocked interval, half-open: End includes the buffer.
	Start, End time.Time
}

func (b Booking) String() string {
	return fmt.Sprintf("%s %s %s", b.ID, span(b.Start.UnixNano(), b.End.UnixNano()), b.Status)
}

// NoDoubleBooking checks every replica's final bookings (node → bookings): no two
// non-cancelled bookings of one provider overlap. Each overlapping pair is a
// violation naming the node, the provider and both bookings (Refs: the booking
// ids; Result.WithOps turns them into operations).
func NoDoubleBooking(replicas map[string][]Booking) Result {
	var res Result
	for _, node := range slices.Sorted(maps.Keys(replicas)) {
		res.count("no-double-booking.replicas", 1)
		byProvider := map[string][]Booking{}
		for _, b := range replicas[node] {
			res.count("no-double-booking.bookings", 1)
			if b.Status == StatusCancelled || !b.Start.Before(b.End) {
				continue
			}
			byProvider[b.ProviderID] = append(byProvider[b.ProviderID], b)
		}
		for _, provider := range slices.Sorted(maps.Keys(byProvider)) {
			bs := byProvider[provider]
			slices.SortFunc(bs, func(a, b Booking) int {
				return cmp.Or(a.Start.Compare(b.Start), a.End.Compare(b.End), cmp.Compare(a.ID, b.ID))
			})
			// Sweep: reach is the booking that ends last among those seen.
			reach := bs[0]
			for _, b := range bs[1:] {
				if b.Start.Before(reach.End) {
					res.violate(CheckNoDoubleBooking, nil, []string{reach.ID, b.ID},
						"node %s, provider %s: bookings %s and %s overlap", node, provider, reach, b)
				}
				if b.End.After(reach.End) {
					reach = b
				}
			}
		}
	}
	return res
}

// ReplicasAgree checks that every node of each group (group → node → hex digest of
// its FSM contents) reported the same digest. A node that reported an empty
// digest is a violation too: its state could not be compared.
func ReplicasAgree(digests map[string]map[string]string) Result {
	var res Result
	for _, group := range slices.Sorted(maps.Keys(digests)) {
		nodes := digests[group]
		res.count("replicas-agree.groups", 1)
		res.count("replicas-agree.nodes", len(nodes))
		byDigest := map[string][]string{}
		for _, node := range slices.Sorted(maps.Keys(nodes)) {
			byDigest[nodes[node]] = append(byDigest[nodes[node]], node)
		}
		if missing := byDigest[""]; len(missing) > 0 {
			res.violate(CheckReplicasAgree, nil, missing,
				"group %s: node(s) %s reported no FSM digest", group, strings.Join(missing, ", "))
			delete(byDigest, "")
		}
		if len(byDigest) <= 1 {
			continue
		}
		var parts, refs []string
		for _, d := range slices.Sorted(maps.Keys(byDigest)) {
			parts = append(parts, fmt.Sprintf("%s on %s", short(d), strings.Join(byDigest[d], ", ")))
			refs = append(refs, byDigest[d]...)
		}
		res.violate(CheckReplicasAgree, nil, refs,
			"group %s: replicas disagree: %d different FSM digests: %s", group, len(byDigest), strings.Join(parts, "; "))
	}
	return res
}

func short(digest string) string {
	if len(digest) > 12 {
		return digest[:12]
	}
	return digest
}

// AckedPresent checks that every acknowledged write is in final, the bookings of
// one replica at the end of the run (for several groups, one replica of each,
// concatenated; to check every replica, call it per replica with the ops of that
// replica's group):
//   - every booking an OK Book answered is present, of its provider, and not
//     cancelled unless a Cancel of it was acknowledged or may have applied
//     (Unknown);
//   - every OK Cancel's booking is present and cancelled;
//   - every acknowledged booking's interval is one its writes may have left:
//     the interval of an acknowledged write (Book or Reschedule) that no other
//     acknowledged write of it followed in real time, or that of a Reschedule of
//     it with an unknown outcome (it may have applied at any time).
func AckedPresent(ops []history.Op, final []Booking) Result {
	var res Result
	res.count("acked-present.bookings", len(final))
	byID := make(map[string]Booking, len(final))
	for _, b := range final {
		byID[b.ID] = b
	}
	type write struct {
		op         history.Op
		start, end time.Time
		acked      bool
	}
	type booking struct {
		books, cancels []history.Op // acknowledged
		maybeCancelled bool         // an acknowledged or unknown cancel
		writes         []write      // interval writes: acknowledged Books, acknowledged or unknown Reschedules
	}
	bookings := map[string]*booking{}
	get := func(id string) *booking {
		b, ok := bookings[id]
		if !ok {
			b = &booking{}
			bookings[id] = b
		}
		return b
	}
	for _, op := range ops {
		if op.BookingID == "" {
			continue
		}
		outcome := effectiveOutcome(op)
		switch op.Kind {
		case history.Book:
			if outcome == history.OK {
				b := get(op.BookingID)
				b.books = append(b.books, op)
				b.writes = append(b.writes, write{op, op.Start, op.End, true})
			}
		case history.Cancel:
			switch outcome {
			case history.OK:
				b := get(op.BookingID)
				b.cancels = append(b.cancels, op)
				b.maybeCancelled = true
			case history.Unknown:
				get(op.BookingID).maybeCancelled = true
			}
		case history.Reschedule:
			switch outcome {
			case history.OK, history.Unknown:
				get(op.BookingID).writes = append(get(op.BookingID).writes,
					write{op, op.Start, op.End, outcome == history.OK})
			}
		}
	}

	for _, id := range slices.Sorted(maps.Keys(bookings)) {
		b := bookings[id]
		if len(b.books) == 0 && len(b.cancels) == 0 && !slices.ContainsFunc(b.writes, func(w write) bool { return w.acked }) {
			continue // nothing acknowledged about it
		}
		res.count("acked-present.acked", 1)
		var ackedOps []int
		for _, op := range b.books {
			ackedOps = append(ackedOps, op.ID)
		}
		for _, op := range b.cancels {
			ackedOps = append(ackedOps, op.ID)
		}
		for _, w := range b.writes {
			if w.acked {
				ackedOps = append(ackedOps, w.op.ID)
			}
		}
		got, ok := byID[id]
		if !ok {
			res.violate(CheckAckedPresent, ackedOps, []string{id},
				"booking %s was acknowledged (ops %s) but is missing from the final state", id, joinInts(sortedUnique(ackedOps)))
			continue
		}
		if len(b.books) > 0 && b.books[0].ProviderID != "" && got.ProviderID != b.books[0].ProviderID {
			res.violate(CheckAckedPresent, []int{b.books[0].ID}, []string{id},
				"booking %s was booked for provider %s (op %d) but the final state has it under %s",
				id, b.books[0].ProviderID, b.books[0].ID, got.ProviderID)
		}
		cancelled := got.Status == StatusCancelled
		if cancelled && !b.maybeCancelled {
			res.violate(CheckAckedPresent, ackedOps, []string{id},
				"booking %s is cancelled in the final state but no cancel of it was acknowledged or left unanswered", id)
		}
		if !cancelled {
			for _, c := range b.cancels {
				res.violate(CheckAckedPresent, []int{c.ID}, []string{id},
					"cancel of %s was acknowledged (op %d) but the final state has it %q", id, c.ID, got.Status)
				break
			}
		}
		// The interval.
		var candidates []write
		for _, w := range b.writes {
			if !w.acked {
				candidates = append(candidates, w)
				continue
			}
			superseded := slices.ContainsFunc(b.writes, func(o write) bool {
				return o.acked && !w.op.Return.IsZero() && o.op.Call.After(w.op.Return)
			})
			if !superseded {
				candidates = append(candidates, w)
			}
		}
		if len(candidates) == 0 {
			continue
		}
		if slices.ContainsFunc(candidates, func(w write) bool { return w.start.Equal(got.Start) && w.end.Equal(got.End) }) {
			continue
		}
		var want []string
		var wantOps []int
		for _, w := range candidates {
			verb := "acknowledged"
			if !w.acked {
				verb = "unknown"
			}
			want = append(want, fmt.Sprintf("%s (op %d, %s %s)", span(w.start.UnixNano(), w.end.UnixNano()), w.op.ID, verb, w.op.Kind))
			wantOps = append(wantOps, w.op.ID)
		}
		res.violate(CheckAckedPresent, wantOps, []string{id},
			"booking %s is at %s in the final state, but its last acknowledged writes leave it at %s",
			id, span(got.Start.UnixNano(), got.End.UnixNano()), strings.Join(want, " or "))
	}
	return res
}
