package membership

import "errors"

// ErrBadConfig is wrapped by every error Config.Validate returns.
var ErrBadConfig = errors.New("membership: bad config")

// ErrBadMeta is wrapped by errors about a Meta record: a missing field, an
// immutable field changed by UpdateMeta, an encoding over MetaMaxSize, or bytes
// that do not decode.
var ErrBadMeta = errors.New("membership: bad node meta")

// ErrJoin is returned by Start when none of the Join addresses could be reached
// (or accepted us: a wrong SecretKey looks the same) within Config.JoinTimeout.
var ErrJoin = errors.New("membership: could not join the cluster")

// ErrNotStarted is returned by methods that need a running memberlist.
var ErrNotStarted = errors.New("membership: not started")

// ErrStopped is returned by Start after Shutdown, and by UpdateMeta after Leave or
// Shutdown.
var ErrStopped = errors.New("membership: stopped")
