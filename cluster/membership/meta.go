package membership

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/memberlist"
)

// MetaMaxSize is the largest encoded Meta memberlist carries (memberlist.MetaMaxSize).
const MetaMaxSize = memberlist.MetaMaxSize

// metaVersion is the first byte of an encoded Meta. Later versions may append
// fields; a decoder ignores bytes it does not know.
const metaVersion = 1

// Bits of the flags byte (after the kinds).
const (
	flagLeaving = 1 // Leaving
	flagFounded = 2 // Founded
)

// Meta is what a node tells the cluster about itself. It travels in memberlist's
// node meta, encoded by MarshalBinary into at most MetaMaxSize (512) bytes.
type Meta struct {
	// NodeID names the node for good: it is its memberlist name and Raft server
	// id, and survives restarts. It may not contain '@'.
	NodeID string
	// BootID is new on every start of the process. The actor cluster knows the
	// node as NodeID@BootID (see MemberID), so a restarted node is a new member
	// (package placement adds an incarnation for a node that returns without a
	// restart).
	BootID string
	// City is the node's edge location, e.g. "buenos-aires".
	City string
	// Jurisdiction is the legal data domain of City, e.g. "ar".
	Jurisdiction string
	// RaftAddr, ActorAddr and HTTPAddr are host:port of the node's endpoints.
	// Any may be empty until the endpoint is up.
	RaftAddr, ActorAddr, HTTPAddr string
	// Kinds lists the actor kinds the node hosts (empty until its actor cluster
	// has started; set by placement.Provider). Kept sorted.
	Kinds []string
	// Leaving is set by a node that is leaving the cluster for good (`cluster
	// leave`): its Raft group must not take it back while it still gossips.
	Leaving bool
	// Founded is set by a node that holds Raft state: it founded its
	// jurisdiction's group or was added to it. A node deciding whether to found
	// a group must not while any member of its jurisdiction has it.
	Founded bool
	// ClusterID is the id of the Raft group the node's replica belongs to, ""
	// until the node has applied the group's founding entry. Nodes of one
	// jurisdiction with different cluster ids are two histories: they refuse
	// each other.
	ClusterID string
	// DiskID is the identity of the node's data dir, new with every new disk.
	// The node's Raft server id is NodeID@DiskID.
	DiskID string
	// PeerAddr is host:port of the node's peer HTTP listener (mutual TLS only):
	// relays between nodes go there, and other nodes learn the node's
	// certificate identity there. Empty from nodes of older builds.
	PeerAddr string
}

// ServerID is the node's Raft server id: NodeID + "@" + DiskID. A node whose
// disk is new is a new Raft server.
func (m Meta) ServerID() string { return ServerIDOf(m.NodeID, m.DiskID) }

// LegacyDiskID is the disk id of a data dir that held Raft state before data
// dirs had identities (its raft.db says so; storage.LegacyDiskID): its Raft
// server id stays the bare node id it was added under. A wiped legacy dir gets
// a fresh disk id like any new disk.
const LegacyDiskID = "-"

// ServerIDOf is the Raft server id of a node on a disk: NodeID@DiskID, or the
// bare node id on a legacy data dir or a node of an older build (which
// gossips no disk id: its server id is its node id).
func ServerIDOf(nodeID, diskID string) string {
	if diskID == LegacyDiskID || diskID == "" {
		return nodeID
	}
	return nodeID + "@" + diskID
}

// NodeOf is the node id in a Raft server id (NodeID@DiskID, or a bare node id).
func NodeOf(serverID string) string {
	node, _, _ := strings.Cut(serverID, "@")
	return node
}

// DiskOf is the disk id in a Raft server id (LegacyDiskID for a bare node id).
func DiskOf(serverID string) string {
	if _, disk, ok := strings.Cut(serverID, "@"); ok {
		return disk
	}
	return LegacyDiskID
}

// MemberID is the node's actor-cluster member id: NodeID + "@" + BootID.
func (m Meta) MemberID() string { return m.NodeID + "@" + m.BootID }

// SplitMemberID splits an actor-cluster member id into node id and boot id.
func SplitMemberID(id string) (nodeID, bootID string, ok bool) {
	return strings.Cut(id, "@")
}

// HasKind reports whether the node hosts the actor kind.
func (m Meta) HasKind(kind string) bool { return slices.Contains(m.Kinds, kind) }

// Validate reports a missing identity field or a bad node id.
func (m Meta) Validate() error {
	switch {
	case m.NodeID == "" || m.BootID == "":
		return fmt.Errorf("%w: node id and boot id are required", ErrBadMeta)
	case strings.Contains(m.NodeID, "@") || strings.Contains(m.BootID, "@") || strings.Contains(m.DiskID, "@"):
		return fmt.Errorf("%w: node id %q and boot id %q may not contain '@'", ErrBadMeta, m.NodeID, m.BootID)
	case m.City == "" || m.Jurisdiction == "":
		return fmt.Errorf("%w: city and jurisdiction are required", ErrBadMeta)
	}
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	if len(b) > MetaMaxSize {
		return fmt.Errorf("%w: encodes to %d bytes, memberlist carries at most %d", ErrBadMeta, len(b), MetaMaxSize)
	}
	return nil
}

// clone returns a copy that shares no slice with m.
func (m Meta) clone() Meta {
	m.Kinds = slices.Clone(m.Kinds)
	return m
}

// MarshalBinary encodes m compactly: a version byte, then each string as a
// uvarint length and its bytes, in field order, then the number of kinds and
// each kind, then a flags byte (Leaving, Founded), then ClusterID, DiskID and
// PeerAddr as strings.
func (m Meta) MarshalBinary() ([]byte, error) {
	fields := m.strings()
	n := 2 + binary.MaxVarintLen64
	for _, s := range append(fields, m.ClusterID, m.DiskID, m.PeerAddr) {
		n += binary.MaxVarintLen64 + len(s)
	}
	for _, k := range m.Kinds {
		n += binary.MaxVarintLen64 + len(k)
	}
	b := make([]byte, 0, n)
	b = append(b, metaVersion)
	for _, s := range fields {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Kinds)))
	for _, k := range m.Kinds {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	var flags byte
	if m.Leaving {
		flags |= flagLeaving
	}
	if m.Founded {
		flags |= flagFounded
	}
	b = append(b, flags)
	for _, s := range []string{m.ClusterID, m.DiskID, m.PeerAddr} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

func (m *Meta) strings() []string {
	return []string{m.NodeID, m.BootID, m.City, m.Jurisdiction, m.RaftAddr, m.ActorAddr, m.HTTPAddr}
}

// UnmarshalBinary decodes what MarshalBinary encoded. Trailing bytes from a
// newer encoder are ignored.
func (m *Meta) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] < metaVersion {
		return fmt.Errorf("%w: empty or unknown version", ErrBadMeta)
	}
	rest := b[1:]
	next := func() (string, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return "", fmt.Errorf("%w: truncated", ErrBadMeta)
		}
		s := string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		return s, nil
	}
	var out Meta
	ptrs := []*string{&out.NodeID, &out.BootID, &out.City, &out.Jurisdiction, &out.RaftAddr, &out.ActorAddr, &out.HTTPAddr}
	for _, p := range ptrs {
		s, err := next()
		if err != nil {
			return err
		}
		*p = s
	}
	count, k := binary.Uvarint(rest)
	if k <= 0 || count > uint64(len(rest)) {
		return fmt.Errorf("%w: truncated kinds", ErrBadMeta)
	}
	rest = rest[k:]
	if count > 0 {
		out.Kinds = make([]string, 0, count)
	}
	for range count {
		s, err := next()
		if err != nil {
			return err
		}
		out.Kinds = append(out.Kinds, s)
	}
	if len(rest) > 0 { // a flags byte (older encoders had none)
		out.Leaving = rest[0]&flagLeaving != 0
		out.Founded = rest[0]&flagFounded != 0
		rest = rest[1:]
	}
	if len(rest) > 0 { // cluster id and disk id (older encoders had none)
		for _, p := range []*string{&out.ClusterID, &out.DiskID} {
			s, err := next()
			if err != nil {
				return err
			}
			*p = s
		}
	}
	if len(rest) > 0 { // peer address (older encoders had none)
		s, err := next()
		if err != nil {
			return err
		}
		out.PeerAddr = s
	}
	*m = out
	return nil
}
