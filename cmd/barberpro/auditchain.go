package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	be "encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/barberpro/edge/edge/client"
)

// auditEntryHash is the hash of an audit entry as the FSM computes it
// (issue9-plan Decisions, storage/audit.go): SHA-256(prev_hash || canon), canon =
// be64(seq) || be64(at_ms) || for each of subject, role, action, object, node,
// outcome: be32(len) || bytes.
func auditEntryHash(prev []byte, seq uint64, atMs int64, subject, role, action, object, node, outcome string) []byte {
	h := sha256.New()
	h.Write(prev)
	var b [8]byte
	be.BigEndian.PutUint64(b[:], seq)
	h.Write(b[:])
	be.BigEndian.PutUint64(b[:], uint64(atMs))
	h.Write(b[:])
	for _, f := range []string{subject, role, action, object, node, outcome} {
		be.BigEndian.PutUint32(b[:4], uint32(len(f)))
		h.Write(b[:4])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// zeroHash is the prev_hash of the first entry.
var zeroHash = make([]byte, sha256.Size)

// chainBreak is the first broken link of an audit chain.
type chainBreak struct {
	Seq    uint64
	Reason string
}

func (b *chainBreak) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s", b.Seq, b.Reason)
}

// chainVerifier walks an audit chain in order, entry by entry, recomputing each
// hash; it stops at the first broken link.
type chainVerifier struct {
	entries uint64
	prev    []byte // hash of the last good entry (zeroHash before the first)
	broken  *chainBreak
}

func newChainVerifier() *chainVerifier { return &chainVerifier{prev: zeroHash} }

// add checks the next entries; it returns the first break (and keeps it).
func (v *chainVerifier) add(es []client.AuditEntry) error {
	for _, e := range es {
		if v.broken != nil {
			return v.broken
		}
		v.broken = v.check(e)
	}
	if v.broken != nil {
		return v.broken
	}
	return nil
}

func (v *chainVerifier) check(e client.AuditEntry) *chainBreak {
	want := v.entries + 1
	switch {
	case e.Seq > want:
		return &chainBreak{want, fmt.Sprintf("entry missing (the next entry listed is seq %d)", e.Seq)}
	case e.Seq < want:
		return &chainBreak{e.Seq, fmt.Sprintf("entry listed again or out of order (after seq %d)", v.entries)}
	}
	prev, err := decodeHash(e.PrevHash)
	if err != nil {
		return &chainBreak{e.Seq, "prev_hash: " + err.Error()}
	}
	hash, err := decodeHash(e.Hash)
	if err != nil {
		return &chainBreak{e.Seq, "hash: " + err.Error()}
	}
	if !bytes.Equal(prev, v.prev) {
		return &chainBreak{e.Seq, fmt.Sprintf("prev_hash %s is not the hash %s of the entry before", short(prev), short(v.prev))}
	}
	atMs, err := entryMillis(e)
	if err != nil {
		return &chainBreak{e.Seq, err.Error()}
	}
	if got := auditEntryHash(prev, e.Seq, atMs, e.Subject, e.Role, e.Action, e.Object, e.Node, e.Outcome); !bytes.Equal(got, hash) {
		return &chainBreak{e.Seq, fmt.Sprintf("hash %s does not match the entry's content (recomputed %s): the entry was changed after it was written", short(hash), short(got))}
	}
	v.entries++
	v.prev = hash
	return nil
}

// head is the hash of the last entry, hex ("" for an empty chain).
func (v *chainVerifier) head() string {
	if v.entries == 0 {
		return ""
	}
	return hex.EncodeToString(v.prev)
}

// entryMillis is the entry's time in Unix milliseconds: at_ms when the node sent
// it, else at (RFC 3339, with its fraction of a second).
func entryMillis(e client.AuditEntry) (int64, error) {
	if e.AtMs != 0 {
		return e.AtMs, nil
	}
	t, err := time.Parse(time.RFC3339Nano, e.At)
	if err != nil {
		return 0, fmt.Errorf("at %q is not an RFC 3339 instant", e.At)
	}
	return t.UnixMilli(), nil
}

// decodeHash reads a SHA-256 digest written as hex or base64 (standard or URL,
// padded or not).
func decodeHash(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == sha256.Size {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == sha256.Size {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%q is not a SHA-256 digest in hex or base64", strings.TrimSpace(s))
}

func short(h []byte) string {
	s := hex.EncodeToString(h)
	if len(s) > 12 {
		s = s[:12] + "…"
	}
	return s
}
