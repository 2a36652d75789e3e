// Package membership tells every BarberPro node which other nodes are up, using
// hashicorp/memberlist gossip (SWIM failure detection over UDP probes and TCP
// push/pull, encrypted with a shared key).
//
// Each node gossips a small Meta record: its node id, boot id, city, jurisdiction
// and the addresses of its Raft, actor and HTTP endpoints, plus the actor kinds it
// hosts. Membership keeps a table of every node it has heard of, keyed by node id,
// and reports changes as Events to any number of subscribers.
//
// A node is named in memberlist by its NodeID, so a restarted node (same NodeID,
// new BootID) replaces its previous incarnation: the latest boot wins and shows as
// an Update (or a Join after a Dead). A node that called Leave shows as "left" on
// the others; a node that stopped answering probes shows as "dead".
//
// The package imports nothing of protoactor: package placement builds the actor
// cluster's topology from it.
package membership
