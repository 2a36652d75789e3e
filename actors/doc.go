// Package actors holds the calendar actors of BarberPro Edge: one protoactor-go
// actor per provider orders that provider's writes and answers its availability
// from memory, and Calendars is the typed front door the edge calls.
//
// # Shape
//
//	Calendars.Book ─▶ requester.Request(providerID, *calendarv1.BookRequest)
//	                    │ local directory: providerID → PID, activates on demand
//	                    ▼
//	              calendar actor "calendar/<providerID>"
//	                    │ validates against memory (package calendar), reserves
//	                    │ the interval as PENDING, proposes without blocking
//	                    ▼
//	              Store.Propose (Raft; the FSM re-checks every invariant)
//
// The actor speaks calendarv1 protobufs (BookRequest, BookSeriesRequest,
// CancelRequest, CancelSeriesRequest, RescheduleRequest, AvailabilityRequest,
// UpdateProviderRequest, RefreshRequest in; Reply out), so a cluster-backed
// requester can replace the local directory and host the same actor as a
// virtual actor (grain) without changing it. The actor's code is split by job:
// actor.go (messages, single-booking writes, verdicts), lifecycle.go (load,
// reload, refresh), conflicts.go (waiting behind writes in flight, confirming
// conflicts with the store), series.go (series), donekeys.go (answered keys),
// availcache.go (the last availability answers).
//
// # Availability answers
//
// A calendar keeps its last few short availability answers (availCache: two,
// of at most two days of 15-minute slots) and answers the same question with
// the same *calendarv1.Reply while the answer holds: its provider record and
// busy set (calendar.Busy.Gen) unchanged, and the clock neither before the
// instant the answer was computed (a wall clock stepped back) nor past the
// instant the notice or the horizon changes it (calendar.SlotsUntil). Every booking, cancellation, reservation, provider
// update and reload changes one of them, so the answer after an acknowledged
// write is computed afresh. A Reply the calendar answered is never modified:
// callers may keep what they derived from it by its pointer (the edge keeps
// the encoded body).
//
// # Series
//
// A series is count occurrences every every_days days at the same local wall
// time in the provider's zone (calendar.SeriesStarts: across a daylight-saving
// change the instants move, the wall time does not). Every occurrence is judged
// in memory like a single booking and against the others; any collision refuses
// them all with the colliding starts in Reply.conflicts, else one CreateSeries
// command carries them all and the FSM judges them again, all or none.
//
// # Policy fields
//
// consent_purpose, require_verified, session_status and audit records travel
// from the request into the command the actor proposes; the FSM enforces them
// (consent and verification before the slot). The FSM may also cancel bookings
// without the actor (a consent withdrawal): Calendars.Refresh reloads the
// provider's calendar, and a refusal is always confirmed with the store first.
//
// # Concurrency contract
//
// Calendars is safe for concurrent use. Each calendar actor handles one message at
// a time; Store.Propose runs in a goroutine per write and its result comes back to
// the actor as a message, so many writes of one hot provider can share one Raft
// batch. The actor answers a write only after Propose returned: it never
// acknowledges a write the store has not committed. Reservations of writes in
// flight count as busy for every later request, but a reservation is not a
// booking (its write may still fail): a book or reschedule that overlaps only a
// write in flight waits for that write's verdict and is then judged again, so a
// 409 always stands for a committed booking. Two requests with the same
// idempotency key and hash get the same answer.
//
// # Lifecycle of an activation
//
// On Started the actor loads the provider and its non-cancelled bookings from
// now-LookBack to now+horizon+1 day. A missing provider answers ErrNotFound and
// the activation ends. After IdleTimeout without messages and with no write in
// flight the actor retires: the directory stops routing to it, it finishes what
// is already queued, stops, and the next request activates a fresh one that
// reloads from the store. When the store rejects as SLOT_TAKEN a write that memory
// judged free (another activation wrote during a membership change), the actor
// reloads its calendar from the store.
//
// # Errors
//
// Every error wraps one of the sentinels in errors.go; store errors that are not a
// verdict of the FSM (no leader, timeouts) are ErrUnavailable and, in-process,
// still wrap the store's own error.
package actors
