// Package storage is the Raft-replicated bbolt store of BarberPro Edge: one Raft
// group (github.com/hashicorp/raft) whose finite state machine keeps providers,
// bookings, the per-provider time index, the per-client booking index and
// idempotency records in a bbolt file — and, for the psychology vertical,
// consents, series, session states, wrapped client data keys, sealed notes,
// erasure records and a hash-chained audit log (fsm_psych.go, audit.go).
//
// The FSM is the judge of every invariant: no two non-cancelled bookings of a
// provider overlap (buffers included), a booking that asks for a consent or a
// verified provider gets it before its slot is considered, a command's audit
// records commit with it, a command carrying an idempotency key
// takes effect at most once, and a malformed command is answered with
// RESULT_CODE_INVALID instead of crashing the node. Commands carry everything
// the FSM needs (ids, timestamps chosen by the proposer), so applying them is
// deterministic on every replica.
//
// Writes go through Store.Propose, which group-commits concurrent commands into
// one Raft entry (a CommandBatch). Reads are served locally from bbolt; call
// Store.LinearizableRead first when a read must observe every write
// acknowledged before it.
//
// In a multi-node group (one per jurisdiction) a follower forwards writes and
// read-index requests to the leader through a Forwarder the cluster layer
// provides (served there by Store.ProposeLocal and Store.ReadIndexLocal), and
// retries across leader changes; keyed commands are retried safely because
// the FSM applies an idempotency key at most once. AddServer, RemoveServer,
// TransferLeadership and LeaderChanges are the cluster layer's handles on
// membership.
//
// Raft's log is append-only segment files (raft-log/, one write and one
// fdatasync per append) and its stable store a bbolt file (raft.db), both
// behind LogStore; snapshots stream a consistent copy of the FSM's bbolt file. DESIGN.md beside
// this file describes buckets, keys, apply rules and restart semantics.
package storage
