package actors

import "errors"

// Errors returned by Calendars. Callers test them with errors.Is; the edge maps each
// to one problem code. Errors from the store (storage.ErrNotLeader, ...) are wrapped
// and pass through as well.
var (
	// ErrSlotTaken means the requested start overlaps another booking of the
	// provider (buffers included).
	ErrSlotTaken = errors.New("actors: slot taken")
	// ErrInvalid means the request could never succeed as asked: a start outside the
	// provider's hours, in the past or within the minimum notice, beyond the horizon,
	// misaligned with the slot step, or an unknown service. The wrapped message says
	// which.
	ErrInvalid = errors.New("actors: invalid request")
	// ErrNotFound means the provider or booking does not exist.
	ErrNotFound = errors.New("actors: not found")
	// ErrIdempotencyKeyReused means the Idempotency-Key was used before with another
	// request body.
	ErrIdempotencyKeyReused = errors.New("actors: idempotency key reused")
	// ErrInvalidTransition means the booking's state does not allow the change
	// (rescheduling a cancelled booking).
	ErrInvalidTransition = errors.New("actors: invalid state transition")
	// ErrUnavailable means no calendar actor could answer in time: its node or its
	// store is down or has no leader.
	ErrUnavailable = errors.New("actors: calendar unavailable")
	// ErrStorageUnavailable means the calendar's store cannot write now (a full
	// disk, an I/O error: Config.IsStorageUnavailable). Usually it refused the
	// write before proposing it; after a failed fsync it may have given up on a
	// write the group still commits, so a retry must carry the same
	// idempotency key.
	ErrStorageUnavailable = errors.New("actors: the store cannot write now")
	// ErrConsentRequired means the booking needs an active consent of its client
	// for the vertical's purpose in the provider's jurisdiction, and there is
	// none (none granted, expired or withdrawn). The store checks it before the
	// slot.
	ErrConsentRequired = errors.New("actors: consent required")
	// ErrProviderUnverified means the provider's licence has not been verified by
	// an operator yet, and the vertical requires it.
	ErrProviderUnverified = errors.New("actors: provider not verified")
	// ErrErased means the client's health data was erased (crypto-shredded).
	ErrErased = errors.New("actors: health data erased")
	// ErrForbidden means the caller may not do this (only the treating provider
	// reads or writes a session's notes).
	ErrForbidden = errors.New("actors: forbidden")
)
