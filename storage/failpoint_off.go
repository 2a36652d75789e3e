//go:build !failpoints

package storage

// failpoint marks a named point (see failpoint.go). Built without the
// `failpoints` tag it does nothing and the compiler drops the call.
func failpoint(string) {}

// failpointOn reports whether a mode failpoint is on (see failpoint.go):
// never without the tag.
func failpointOn(string) bool { return false }
