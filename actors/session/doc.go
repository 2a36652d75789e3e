// Package session holds the session actors of BarberPro Edge: one protoactor-go
// actor per psychology booking (a session; session id = booking id) of the cluster
// kind session-<jurisdiction> (Kind), so a session activates only on nodes of its
// home jurisdiction, where the jurisdiction's key-encryption key is.
//
// # Shape
//
//	Sessions.Do ─▶ local directory (tests) or the actor cluster (UseCluster)
//	                 ▼
//	           session actor "session/<booking id>": one request at a time
//	                 │ loads the booking, checks the caller (subject, role)
//	                 │ seals notes before proposing, unseals them after reading
//	                 ▼
//	           Store (storage.*Store): Booking, Note, ClientKey, Erasure, Propose
//
// A session actor handles its requests one at a time, in arrival order: the
// moves and notes of one session are serialized there, and the FSM re-checks
// every move (SetSessionStatus) and every note's key (PutNote).
//
// # Access
//
//   - GetSession: the client owner (role "client", subject = the booking's
//     client_id), the treating provider (role "provider", subject = the
//     booking's provider_id) or an operator (role "operator").
//   - MoveSession, PutNotes, GetNotes: the treating provider only. Everyone
//     else, operators and the client included, gets ERROR_CODE_FORBIDDEN.
//
// Only bookings whose session_status is set are sessions; any other booking id
// answers ERROR_CODE_NOT_FOUND.
//
// # Moves
//
// A session moves scheduled → checked_in | no_show, checked_in → completed
// (cancelled only through the booking's cancel). A move to the status the
// session already has is answered OK without a write, so that a request retried
// after a lost answer has one effect; any other move is
// ERROR_CODE_INVALID_TRANSITION.
//
// # Notes, sealed
//
// PutNotes gets the client's data key (ClientKey, unwrapped with the KEK) or
// creates one (seal.KEK.NewDataKey, proposed as PutClientKey; the key in the
// answer is used, so the first key proposed wins), seals the text
// (seal.DataKey.SealNote) and proposes PutNote: no plain text reaches a Raft
// command. GetNotes reads the SealedNote and opens it. A client whose health
// data was erased (an Erasure record in the store, the booking marked erased, or
// the KEK's erasure ledger) answers ERROR_CODE_ERASED. A node without a KEK
// (Config.KEK nil) answers ERROR_CODE_UNAVAILABLE for notes. Data keys are wiped
// after each use. Note text and client ids are never logged nor put in details.
//
// # Audit
//
// Every request that names a booking, allowed or refused, appends exactly one
// AuditRecord (subject, role, action, object = booking id, node): writes carry it
// on the command they propose with outcome "" (the FSM fills it from the
// command's result); reads and refusals propose an AppendAudit command with the
// outcome set here ("ok", "forbidden", "not_found", "erased", "invalid",
// "invalid_transition", "unavailable"). Actions: session.read, session.move,
// notes.read, notes.write. A read is answered only once its record committed.
// A request that Do retries after losing its answer (cluster mode) may append a
// second record for the same request.
//
// # Export
//
// ClientNotes unseals a client's notes for the client's GDPR export; it runs on
// the calling node (it needs that node's KEK), not in a session actor, and
// appends no audit record: the edge's "export" record covers it.
package session
