package storage

import "errors"

// Sentinel errors returned by the Store. They are wrapped with %w and carry
// detail in the message; compare them with errors.Is.
var (
	// ErrWrongJurisdiction means a backup, or a data dir restored from one,
	// holds another jurisdiction's records than the node's (RestoreBackup,
	// Open).
	ErrWrongJurisdiction = errors.New("storage: records of another jurisdiction")

	// ErrForeignGroupSnapshot is returned by the FSM's Restore for a snapshot
	// whose cluster id differs from this node's (another Raft group's).
	ErrForeignGroupSnapshot = errors.New("storage: snapshot of another raft group")

	// ErrKEKRequired means a restore needs the jurisdiction's key-encryption
	// key file and its erasure ledger (RestoreOptions.KEKFile), which were
	// not given, are missing or do not load.
	ErrKEKRequired = errors.New("storage: restore needs the key-encryption key file and its erasure ledger")

	// ErrLedgerOutdated means the KEK's erasure ledger was last changed
	// before the backup was taken (RestoreOptions.AllowOldLedger).
	ErrLedgerOutdated = errors.New("storage: erasure ledger older than the backup")

	// ErrNotFound means the requested provider, booking or idempotency record
	// does not exist (RESULT_CODE_NOT_FOUND for commands).
	ErrNotFound = errors.New("storage: not found")

	// ErrSlotTaken means the booking would overlap (buffers included) another
	// non-cancelled booking of the same provider (RESULT_CODE_SLOT_TAKEN).
	ErrSlotTaken = errors.New("storage: slot taken")

	// ErrIdempotencyKeyReused means the idempotency key was already used by a
	// request with a different request hash (RESULT_CODE_IDEMPOTENCY_MISMATCH).
	ErrIdempotencyKeyReused = errors.New("storage: idempotency key reused with a different request")

	// ErrInvalidTransition means the command is not allowed in the resource's
	// current state, e.g. rescheduling a cancelled booking
	// (RESULT_CODE_INVALID_TRANSITION).
	ErrInvalidTransition = errors.New("storage: invalid state transition")

	// ErrAlreadyExists means a create command used an id that already exists
	// (RESULT_CODE_ALREADY_EXISTS).
	ErrAlreadyExists = errors.New("storage: already exists")

	// ErrInvalid means the command is malformed or breaks a field rule
	// (RESULT_CODE_INVALID), or could not be encoded at all.
	ErrInvalid = errors.New("storage: invalid command")

	// ErrNotLeader means this node is not the Raft leader, so it cannot accept
	// writes or serve linearizable reads. It is also returned when leadership
	// was lost while a command was in flight: that command's outcome is then
	// unknown, and a retry carrying the same idempotency key is safe.
	ErrNotLeader = errors.New("storage: not the raft leader")

	// ErrOutcomeUnknown accompanies ErrNotLeader (or a forwarding failure)
	// when a command may or may not have committed: leadership was lost while
	// it was in flight, or the forwarded call failed after it was sent. A
	// retry carrying the same idempotency key is safe; Store.Propose makes it
	// by itself for keyed commands.
	ErrOutcomeUnknown = errors.New("storage: outcome unknown")

	// ErrBatchTooLarge refuses a forwarded batch of more commands than the
	// leader's Config.MaxBatch (a follower never packs more): none of them is
	// proposed, so a peer cannot queue an unbounded batch in one message.
	ErrBatchTooLarge = errors.New("storage: forwarded batch too large")

	// ErrNoOtherVoter means TransferLeadership found no other voter to hand
	// leadership to.
	ErrNoOtherVoter = errors.New("storage: no other voter")

	// ErrLastVoter means a membership change would remove the group's only
	// voter with no non-voter to promote in its place: Raft needs at least
	// one voter, so the group would be left without any.
	ErrLastVoter = errors.New("storage: the only voter of the group cannot be removed")

	// ErrTooManyVoters means Promote found the group at Config.MaxVoters.
	ErrTooManyVoters = errors.New("storage: the group has its most voters")

	// ErrClosed means the Store has been closed.
	ErrClosed = errors.New("storage: store closed")

	// ErrStorageUnavailable means this node cannot write to its disk now (disk
	// full, I/O error): its FSM or its Raft log failed a write. While it lasts
	// the node refuses proposals at once (nothing was proposed; a retry
	// elsewhere or later is safe), keeps serving local reads, and Ready
	// reports why it is not ready. The FSM retries the failed entries by
	// itself and the condition clears when a write succeeds again (space
	// freed). A Propose answered with it together with ErrOutcomeUnknown was
	// in flight when the node stopped (Close) with the entry committed but not
	// applied here.
	ErrStorageUnavailable = errors.New("storage: storage unavailable")

	// ErrTimeout means Raft did not accept the command within
	// Config.ApplyTimeout (the command was not proposed), or a follower's
	// FSM did not reach a linearizable read's index within ApplyTimeout.
	ErrTimeout = errors.New("storage: timed out")

	// ErrConsentRequired means a booking (or series) needs an active consent
	// of its client for the command's purpose in the store's jurisdiction,
	// and there is none (RESULT_CODE_CONSENT_REQUIRED).
	ErrConsentRequired = errors.New("storage: consent required")

	// ErrProviderUnverified means a booking (or series) requires a verified
	// provider and its provider's licence was not verified
	// (RESULT_CODE_PROVIDER_UNVERIFIED).
	ErrProviderUnverified = errors.New("storage: provider unverified")

	// ErrErased means the client's health data was erased: no data key or
	// note can be stored for them any more (RESULT_CODE_ERASED).
	ErrErased = errors.New("storage: health data erased")
	// ErrStale means the record changed since the proposer read it
	// (RESULT_CODE_STALE): read it again before writing.
	ErrStale = errors.New("storage: the record changed since it was read")
)
