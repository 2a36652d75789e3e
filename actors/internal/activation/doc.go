// Package activation holds what the calendar actors (package actors) and the
// session actors (package actors/session) share about finding their actors: a
// keyed in-process directory that activates an actor per key on demand, lets it
// retire when idle and stops the rest on Close (local mode), and a requester that
// resends a grain request through the actor cluster until it is answered
// (cluster mode). The key is the actor's identity (a provider id, a booking id).
package activation
