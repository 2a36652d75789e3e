// Package edge is the HTTP API v1 of a BarberPro node (see docs and
// /openapi.json): it decodes and validates requests, turns them into calendar
// actor requests (Calendars) or store reads and commands (Store), and answers
// JSON, or RFC 9457 problems whose code comes from one table of sentinel errors
// (errorTable in problem.go).
//
// The edge keeps no state of its own. It assigns ids (Config.NewID), converts
// between the API's shapes (decimal money strings, RFC 3339 instants in the
// provider's zone, "HH:MM" times of day) and the stored records (int64 cents,
// Unix milliseconds, minutes after midnight), and makes creating POSTs
// idempotent: the Idempotency-Key is scoped by method and route, the request
// hash covers the path and the canonical body, an earlier request with the same
// key is replayed from the store, and the key always travels down so that the
// FSM, the final judge, applies a request once.
//
// Build a Server with DefaultConfig, fill the dependencies, then New and
// Handler.
package edge
