package placement

import "errors"

// ErrNoMember means no alive member may host the identity: none hosts its kind in
// its jurisdiction. The edge maps it to 503 jurisdiction_unavailable.
var ErrNoMember = errors.New("placement: no member available for this kind")

// ErrResidency is returned by Provider.StartMember when the node registers a kind
// bound to another jurisdiction than its own.
var ErrResidency = errors.New("placement: kind belongs to another jurisdiction")

// ErrBadConfig is wrapped by every config validation error.
var ErrBadConfig = errors.New("placement: bad config")
