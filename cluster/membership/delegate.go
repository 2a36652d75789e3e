package membership

import (
	"fmt"

	"github.com/hashicorp/memberlist"
)

// delegate implements memberlist.Delegate, AliveDelegate and ConflictDelegate.
type delegate Membership

// NodeMeta returns this node's encoded Meta.
func (d *delegate) NodeMeta(limit int) []byte {
	m := (*Membership)(d)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.metaBytes) > limit {
		// Validate keeps us below MetaMaxSize; never hand memberlist too much.
		return nil
	}
	return append([]byte(nil), m.metaBytes...)
}

// NotifyMsg receives user messages (graceful-leave notices and their acks).
func (d *delegate) NotifyMsg(b []byte) {
	(*Membership)(d).onMessage(append([]byte(nil), b...))
}

// GetBroadcasts has nothing to broadcast: all state is in the node meta.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState has no extra state for push/pull.
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState ignores push/pull user state.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

// NotifyAlive rejects a node whose meta does not decode or names another node.
func (d *delegate) NotifyAlive(n *memberlist.Node) error {
	var meta Meta
	if err := meta.UnmarshalBinary(n.Meta); err != nil {
		return err
	}
	if meta.NodeID != n.Name {
		return fmt.Errorf("%w: meta names node %q, memberlist %q", ErrBadMeta, meta.NodeID, n.Name)
	}
	return nil
}

// NotifyConflict logs two nodes claiming one name at different addresses.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	(*Membership)(d).cfg.Logger.Error("membership: two nodes claim one node id", "node_id", existing.Name, "known", existing.Address(), "other", other.Address())
}

// events implements memberlist.EventDelegate.
type events Membership

func (e *events) NotifyJoin(n *memberlist.Node)   { (*Membership)(e).apply(n, EventJoin) }
func (e *events) NotifyLeave(n *memberlist.Node)  { (*Membership)(e).apply(n, EventLeave) }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Membership)(e).apply(n, EventUpdate) }
