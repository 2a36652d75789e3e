// Package placement puts BarberPro's virtual actors (provider calendars) on
// nodes of a protoactor-go cluster built on package membership.
//
// It has three parts:
//
//   - Place, a pure function: among the alive members that host an identity's
//     kind (and, for a jurisdiction-bound kind such as "calendar-ar", belong to
//     that jurisdiction), prefer those in the provider's home city, else any of
//     them; pick one by rendezvous hashing of the identity over the node ids.
//     No candidate is ErrNoMember: the edge answers 503 jurisdiction_unavailable.
//   - Provider, a cluster.ClusterProvider that publishes the actor cluster's
//     topology from membership: every alive node that advertises an actor
//     address and kinds, this node as member NodeID@BootID, the others under a
//     new incarnation NodeID@BootID@N each time they return, so a node falsely
//     declared dead rejoins without a restart (protoactor blocks a member id
//     that left, for good).
//   - Lookup, a cluster.IdentityLookup that asks the chosen member's placement
//     actor to activate the identity, and stops local activations a member no
//     longer owns when the topology changes and, every StaleCheck, those a
//     requester with an older view placed on it.
//
// Residency is enforced twice: a node registers only its own jurisdiction's
// kinds (Provider refuses to start otherwise), and Place never chooses a member
// of another jurisdiction for a jurisdiction-bound kind.
//
// Two activations of one identity can exist briefly while members disagree on
// the topology; the replicated store stays the judge of every write, and when
// one of them stops the survivor is told to Resync.
package placement
