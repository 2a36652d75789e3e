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
// idempotent: the Idempotency-Key is scoped by the caller's subject, method and route, the request
// hash covers the path and the canonical body, an earlier request with the same
// key is replayed from the store, and the key always travels down so that the
// FSM, the final judge, applies a request once.
//
// Every route carries its access rule (access.go, security.md): public, or what
// each role (client, provider, operator) of a bearer token verified by
// Config.Auth (package edge/auth) may do; a record's owner is checked once the
// record is read. Handler serves clients, with rate limits per token subject and
// per client IP; PeerHandler serves the same routes to the nodes that relay
// requests (ForwardedByHeader), verifying tokens again but not limiting again.
//
// Build a Server with DefaultConfig, fill the dependencies, then New, and serve
// Handler to clients and PeerHandler to the other nodes.
package edge
