// Package cluster wires one BarberPro node together: it opens the node's replicated
// store (storage), starts its calendar actors (actors) on top of it, and serves the
// HTTP API (edge) over both. cmd/barberpro calls it; it is the only package that
// imports all three, so imports keep flowing one way: edge → actors → storage, with
// cluster above them.
//
// It also keeps each jurisdiction to one history (invariant 6): founding.go decides
// when a node founds its jurisdiction's Raft group (once, ever: --bootstrap-expect,
// never while a member holding state is known), and raftgroup.go's keeper, on the
// group's leader, admits new servers (Raft server id node@disk) as non-voters,
// replaces a wiped disk's old entry, promotes caught-up replicas of its own cluster
// id, refuses members of another, and removes servers dead past DeadServerTimeout.
package cluster
