package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/barberpro/edge/edge/client"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
)

// chainBreak is the first broken link of an audit chain.
type chainBreak struct {
	Seq    uint64
	Reason string
}

func (b *chainBreak) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s", b.Seq, b.Reason)
}

// chainVerifier walks an audit chain as GET /v1/audit lists it, entry by entry,
// with the store's own verifier (storage.AuditVerifier: the hash is defined once,
// in storage/audit.go); it stops at the first broken link.
type chainVerifier struct {
	v      *storage.AuditVerifier
	broken *chainBreak
}

func newChainVerifier(anchors ...storage.AuditAnchor) *chainVerifier {
	return &chainVerifier{v: storage.NewAuditVerifier(anchors...)}
}

// finish checks, after the last entry, that the chain reached every anchor
// (--head): a chain that ends before one was cut off.
func (c *chainVerifier) finish() *chainBreak {
	if c.broken != nil {
		return c.broken
	}
	if err := c.v.Finish(); err != nil {
		r := c.v.Report()
		c.broken = &chainBreak{r.BrokenSeq, r.Reason}
	}
	return c.broken
}

// add checks the next entries; it returns the first break (and keeps it).
func (c *chainVerifier) add(es []client.AuditEntry) error {
	for _, e := range es {
		if c.broken != nil {
			return c.broken
		}
		c.broken = c.check(e)
	}
	if c.broken != nil {
		return c.broken
	}
	return nil
}

func (c *chainVerifier) check(e client.AuditEntry) *chainBreak {
	want := c.v.Report().Entries + 1
	if e.Seq < want {
		// The store's verifier names the seq it expected; an entry listed again
		// is named by its own.
		return &chainBreak{e.Seq, fmt.Sprintf("entry listed again or out of order (after seq %d)", want-1)}
	}
	pe, err := entryProto(e)
	if err != nil {
		return &chainBreak{max(e.Seq, want), err.Error()}
	}
	if err := c.v.Add(pe); err != nil {
		r := c.v.Report()
		if !errors.Is(err, storage.ErrAuditBroken) || r.BrokenSeq == 0 {
			return &chainBreak{want, err.Error()}
		}
		return &chainBreak{r.BrokenSeq, r.Reason}
	}
	return nil
}

// entries is how many entries verified.
func (c *chainVerifier) entries() uint64 { return c.v.Report().Entries }

// head is the hash of the last verified entry, hex ("" for an empty chain).
func (c *chainVerifier) head() string {
	r := c.v.Report()
	if r.Entries == 0 {
		return ""
	}
	return hex.EncodeToString(r.Head)
}

// entryProto turns an answered entry back into the stored record: hashes
// decoded, the time in Unix milliseconds.
func entryProto(e client.AuditEntry) (*bookingv1.AuditEntry, error) {
	prev, err := decodeHash(e.PrevHash)
	if err != nil {
		return nil, fmt.Errorf("prev_hash: %w", err)
	}
	hash, err := decodeHash(e.Hash)
	if err != nil {
		return nil, fmt.Errorf("hash: %w", err)
	}
	atMs, err := entryMillis(e)
	if err != nil {
		return nil, err
	}
	return &bookingv1.AuditEntry{Seq: e.Seq, AtMs: atMs, Subject: e.Subject, Role: e.Role, Action: e.Action, Object: e.Object,
		Node: e.Node, Outcome: e.Outcome, PrevHash: prev, Hash: hash}, nil
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
