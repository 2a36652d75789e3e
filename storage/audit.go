package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// The audit chain: every command's AuditRecords become AuditEntries in the
// same transaction as the command, numbered from seq 1, each hashed over the
// previous entry's hash and its own canonical bytes:
//
//	canon = be64(seq) || be64(at_ms) || for each of subject, role, action,
//	        object, node, outcome: be32(len) || bytes
//	hash  = SHA-256(prev_hash || canon)
//
// The first entry's prev_hash is 32 zero bytes. at_ms is the command's entry
// time. Entries are never changed or deleted (Compact does not touch them).

// Limits of the audit records a command carries (RESULT_CODE_INVALID beyond
// them: the command is refused and nothing is appended).
const (
	MaxAuditRecords    = 16
	MaxAuditFieldBytes = 512
)

// OutcomeOK is the outcome the FSM fills in for a record riding on a command
// that succeeded; other results give their code's short name (OutcomeOf).
const OutcomeOK = "ok"

// OutcomeOf is the outcome the FSM gives an AuditRecord whose outcome is "",
// for a command answered with code: "ok" for RESULT_CODE_OK, else the code's
// name in lower case without its prefix ("slot_taken", "not_found",
// "idempotency_mismatch", "invalid_transition", "already_exists", "invalid",
// "consent_required", "provider_unverified", "erased").
func OutcomeOf(code bookingv1.ResultCode) string {
	if code == bookingv1.ResultCode_RESULT_CODE_OK {
		return OutcomeOK
	}
	return strings.ToLower(strings.TrimPrefix(code.String(), "RESULT_CODE_"))
}

// ErrAuditBroken means the audit chain does not verify: an entry's seq,
// prev_hash or hash is not what its predecessor and its content require.
var ErrAuditBroken = errors.New("storage: audit chain broken")

var zeroHash = make([]byte, sha256.Size)

// AuditCanonical returns e's canonical bytes (seq, at_ms and the six string
// fields; not its hashes).
func AuditCanonical(e *bookingv1.AuditEntry) []byte {
	return appendAuditCanonical(nil, e)
}

// appendAuditCanonical appends AuditCanonical(e) to out.
func appendAuditCanonical(out []byte, e *bookingv1.AuditEntry) []byte {
	out = binary.BigEndian.AppendUint64(out, e.GetSeq())
	out = binary.BigEndian.AppendUint64(out, uint64(e.GetAtMs()))
	for _, f := range [...]string{e.GetSubject(), e.GetRole(), e.GetAction(), e.GetObject(), e.GetNode(), e.GetOutcome()} {
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	return out
}

// AuditHash returns SHA-256(prev || AuditCanonical(e)): the hash e must
// carry when prev is its predecessor's hash (32 zero bytes for seq 1).
func AuditHash(prev []byte, e *bookingv1.AuditEntry) []byte {
	h, _ := auditHashScratch(nil, prev, e)
	return h
}

// auditHashScratch is AuditHash building prev || canonical bytes in
// scratch, which it returns (grown) for the next call.
func auditHashScratch(scratch, prev []byte, e *bookingv1.AuditEntry) (hash, grown []byte) {
	scratch = appendAuditCanonical(append(scratch[:0], prev...), e)
	sum := sha256.Sum256(scratch)
	return sum[:], scratch
}

// validAudit reports why a command's audit records are not acceptable, or "".
func validAudit(recs []*bookingv1.AuditRecord) string {
	if len(recs) > MaxAuditRecords {
		return fmt.Sprintf("more than %d audit records", MaxAuditRecords)
	}
	for i, r := range recs {
		if r == nil {
			return fmt.Sprintf("audit record %d is empty", i)
		}
		if r.Action == "" {
			return fmt.Sprintf("audit record %d has no action", i)
		}
		for _, f := range []string{r.Subject, r.Role, r.Action, r.Object, r.Node, r.Outcome} {
			if len(f) > MaxAuditFieldBytes || !utf8.ValidString(f) {
				return fmt.Sprintf("audit record %d has a field longer than %d bytes or not UTF-8", i, MaxAuditFieldBytes)
			}
		}
		if strings.IndexByte(r.Subject, 0) >= 0 || strings.IndexByte(r.Object, 0) >= 0 {
			return fmt.Sprintf("audit record %d has a NUL byte in subject or object", i)
		}
	}
	return ""
}

// auditHead returns the last entry's seq and hash (0 and 32 zero bytes for
// an empty chain).
func auditHead(tx *bolt.Tx) (uint64, []byte) {
	k, v := tx.Bucket(bucketAudit).Cursor().Last()
	if len(k) != 8 {
		return 0, zeroHash
	}
	seq := binary.BigEndian.Uint64(k)
	e := new(bookingv1.AuditEntry)
	if proto.Unmarshal(v, e) != nil || len(e.Hash) != sha256.Size {
		// A damaged last entry (the file was tampered with): chain on
		// from a hash of its bytes, the same on every replica holding them.
		sum := sha256.Sum256(v)
		return seq, sum[:]
	}
	return seq, e.Hash
}

// auditIndexKey is owner 0x00 be64(seq): the key layout of audit_object and
// audit_subject.
func auditIndexKey(owner string, seq uint64) []byte {
	return appendAuditIndexKey(make([]byte, 0, len(owner)+9), owner, seq)
}

// appendAuditIndexKey appends auditIndexKey(owner, seq) to k.
func appendAuditIndexKey(k []byte, owner string, seq uint64) []byte {
	k = append(k, owner...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// appendAudit appends recs to the chain at now, filling an empty outcome
// from r's code, and sets r.AuditSeq to the last seq appended. The chain's
// head is read from the audit bucket at the transaction's first append and
// kept in a from then on (nothing else writes the bucket).
func (a *applier) appendAudit(recs []*bookingv1.AuditRecord, now int64, r *bookingv1.CommandResult) {
	if len(recs) == 0 {
		return
	}
	if !a.auditKnown {
		a.auditSeq, a.auditHash = auditHead(a.tx)
		a.auditKnown = true
	}
	seq, prev := a.auditSeq, a.auditHash
	for _, rec := range recs {
		seq++
		e := &bookingv1.AuditEntry{
			Seq: seq, AtMs: now,
			Subject: rec.Subject, Role: rec.Role, Action: rec.Action, Object: rec.Object, Node: rec.Node,
			Outcome:  rec.Outcome,
			PrevHash: prev,
		}
		if e.Outcome == "" {
			e.Outcome = OutcomeOf(r.Code)
		}
		e.Hash, a.canon = auditHashScratch(a.canon, prev, e)
		a.wkey = binary.BigEndian.AppendUint64(a.wkey[:0], seq) // Put copies its key
		a.put(bucketAudit, a.wkey, e)
		if e.Object != "" {
			a.wkey = appendAuditIndexKey(a.wkey[:0], e.Object, seq)
			a.putKey(bucketAuditObject, a.wkey)
		}
		if e.Subject != "" {
			a.wkey = appendAuditIndexKey(a.wkey[:0], e.Subject, seq)
			a.putKey(bucketAuditSubject, a.wkey)
		}
		prev = e.Hash
	}
	a.auditSeq, a.auditHash = seq, prev
	r.AuditSeq = seq
}

// AuditReport is the outcome of walking the audit chain.
type AuditReport struct {
	// Entries is how many entries verified, from seq 1 on.
	Entries uint64
	// Head is the hash of the last entry that verified (32 zero bytes when
	// none did).
	Head []byte
	// BrokenSeq is the seq of the first entry that does not verify (0: the
	// chain verified), and Reason says why.
	BrokenSeq uint64
	Reason    string
}

// HeadAnchor is the report's head as an anchor, "SEQ:HEX" (seq Entries, hash
// Head), for ParseAuditAnchor; "" for an empty chain. Kept somewhere the
// file's writers cannot reach, it is what detects a later rewrite.
func (r AuditReport) HeadAnchor() string {
	if r.Entries == 0 {
		return ""
	}
	return AuditAnchor{Seq: r.Entries, Hash: r.Head}.String()
}

// AuditAnchor is an entry's seq and hash kept outside the store (printed by
// `barberpro audit verify`, checked with --head SEQ:HEX). The chain is a bare
// SHA-256 chain: whoever can write fsm.db can change an entry and rehash every
// later one, or cut the tail off, and the chain still verifies. Only an anchor
// kept elsewhere detects that: the entry at Seq must exist and have Hash.
type AuditAnchor struct {
	Seq  uint64
	Hash []byte
}

// String is "SEQ:HEX".
func (a AuditAnchor) String() string { return fmt.Sprintf("%d:%x", a.Seq, a.Hash) }

// ParseAuditAnchor reads "SEQ:HEX" (seq from 1, HEX the 64 hex digits of a
// SHA-256 hash).
func ParseAuditAnchor(s string) (AuditAnchor, error) {
	seqText, hexText, ok := strings.Cut(strings.TrimSpace(s), ":")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if !ok || err != nil || seq == 0 {
		return AuditAnchor{}, fmt.Errorf("audit anchor %q: want SEQ:HEX, SEQ from 1", s)
	}
	h, err := hex.DecodeString(hexText)
	if err != nil || len(h) != sha256.Size {
		return AuditAnchor{}, fmt.Errorf("audit anchor %q: HEX must be the %d hex digits of a SHA-256 hash", s, 2*sha256.Size)
	}
	return AuditAnchor{Seq: seq, Hash: h}, nil
}

// AuditVerifier checks a chain one entry at a time, in seq order from seq 1
// (what VerifyAudit and VerifyAuditDir do over the store; a client walking
// GET /v1/audit pages can use it too). Anchors given to NewAuditVerifier are
// checked as their entries pass (Add) and, for anchors past the last entry
// seen, by Finish (a truncated chain).
type AuditVerifier struct {
	r       AuditReport
	anchors []AuditAnchor
}

// NewAuditVerifier returns a verifier expecting seq 1 that also checks anchors.
func NewAuditVerifier(anchors ...AuditAnchor) *AuditVerifier {
	return &AuditVerifier{r: AuditReport{Head: zeroHash}, anchors: anchors}
}

// Add checks e as the next entry. After the first broken entry every call
// returns the same error. The error wraps ErrAuditBroken and names the seq.
func (v *AuditVerifier) Add(e *bookingv1.AuditEntry) error {
	if v.r.BrokenSeq != 0 {
		return v.err()
	}
	want := v.r.Entries + 1
	switch {
	case e.GetSeq() != want:
		return v.broken(want, fmt.Sprintf("entry has seq %d, expected %d (missing or reordered entry)", e.GetSeq(), want))
	case !bytes.Equal(e.GetPrevHash(), v.r.Head):
		return v.broken(want, "prev_hash is not the previous entry's hash")
	case !bytes.Equal(e.GetHash(), AuditHash(v.r.Head, e)):
		return v.broken(want, "hash does not match the entry's content")
	}
	for _, a := range v.anchors {
		if a.Seq == want && !bytes.Equal(a.Hash, e.GetHash()) {
			return v.broken(want, fmt.Sprintf("hash %x is not the anchor's %x: the chain was rewritten and rehashed from here or before", e.GetHash(), a.Hash))
		}
	}
	v.r.Entries = want
	v.r.Head = e.GetHash()
	return nil
}

// Finish checks, after the last entry, that the chain reached every anchor:
// one past its end means the chain was truncated. It wraps ErrAuditBroken.
func (v *AuditVerifier) Finish() error {
	if v.r.BrokenSeq != 0 {
		return v.err()
	}
	for _, a := range v.anchors {
		if a.Seq > v.r.Entries {
			return v.broken(v.r.Entries+1, fmt.Sprintf("the chain ends at seq %d, before the anchor's seq %d: entries were cut off", v.r.Entries, a.Seq))
		}
	}
	return nil
}

func (v *AuditVerifier) broken(seq uint64, reason string) error {
	v.r.BrokenSeq, v.r.Reason = seq, reason
	return v.err()
}

// fail breaks the chain at seq and returns the report with the break in it
// (a "return v.Report(), v.broken(...)" would read the report first).
func (v *AuditVerifier) fail(seq uint64, reason string) (AuditReport, error) {
	err := v.broken(seq, reason)
	return v.Report(), err
}

func (v *AuditVerifier) err() error {
	return fmt.Errorf("%w at seq %d: %s", ErrAuditBroken, v.r.BrokenSeq, v.r.Reason)
}

// Report returns what the verifier has seen so far.
func (v *AuditVerifier) Report() AuditReport { return v.r }

// verifyAuditTx walks the audit bucket of tx in key order, checking anchors.
// An entry whose bytes do not decode, or whose key is not its seq, breaks the
// chain there. The index buckets (audit_object, audit_subject), which the
// chain does not cover and filtered reads depend on, must hold exactly one
// key per entry's object and subject: a missing key (an entry hidden from
// GET /v1/audit?object=) or an extra one breaks the chain at its seq.
func verifyAuditTx(tx *bolt.Tx, anchors ...AuditAnchor) (AuditReport, error) {
	v := NewAuditVerifier(anchors...)
	b := tx.Bucket(bucketAudit)
	if b == nil {
		err := v.Finish() // a file from before the audit chain
		return v.Report(), err
	}
	objects, subjects := tx.Bucket(bucketAuditObject), tx.Bucket(bucketAuditSubject)
	var indexed [2]int // keys the entries need in objects, subjects
	c := b.Cursor()
	for k, val := c.First(); k != nil; k, val = c.Next() {
		want := v.r.Entries + 1
		if len(k) != 8 {
			return v.fail(want, "audit bucket holds a key that is not a seq")
		}
		e := new(bookingv1.AuditEntry)
		if err := proto.Unmarshal(val, e); err != nil {
			return v.fail(binary.BigEndian.Uint64(k), "entry does not decode")
		}
		if ks := binary.BigEndian.Uint64(k); ks != e.Seq {
			return v.fail(ks, fmt.Sprintf("entry stored at seq %d says seq %d", ks, e.Seq))
		}
		if err := v.Add(e); err != nil {
			return v.Report(), err
		}
		for i, idx := range []struct {
			owner  string
			bucket *bolt.Bucket
			name   string
		}{{e.Object, objects, "audit_object"}, {e.Subject, subjects, "audit_subject"}} {
			if idx.owner == "" {
				continue
			}
			indexed[i]++
			if idx.bucket == nil || idx.bucket.Get(auditIndexKey(idx.owner, e.Seq)) == nil {
				return v.fail(e.Seq, fmt.Sprintf("the %s index lacks the entry (filtered reads would not list it)", idx.name))
			}
		}
	}
	// Every index key the entries need exists; any more is an extra one.
	for i, idx := range []struct {
		bucket *bolt.Bucket
		name   string
		field  func(*bookingv1.AuditEntry) string
	}{{objects, "audit_object", (*bookingv1.AuditEntry).GetObject}, {subjects, "audit_subject", (*bookingv1.AuditEntry).GetSubject}} {
		if idx.bucket == nil {
			continue
		}
		n := 0
		var extra []byte
		_ = idx.bucket.ForEach(func(k, _ []byte) error {
			n++
			if extra == nil && !indexKeyOfEntry(b, k, idx.field) {
				extra = bytes.Clone(k)
			}
			return nil
		})
		if extra != nil || n != indexed[i] {
			seq := v.r.Entries
			if len(extra) >= 9 {
				seq = binary.BigEndian.Uint64(extra[len(extra)-8:])
			}
			return v.fail(seq, fmt.Sprintf("the %s index holds a key naming no such entry (%d keys for %d entries)", idx.name, n, indexed[i]))
		}
	}
	err := v.Finish()
	return v.Report(), err
}

// indexKeyOfEntry reports whether k (owner 0x00 be64(seq)) names an entry of
// the audit bucket b whose field (object or subject) is owner.
func indexKeyOfEntry(b *bolt.Bucket, k []byte, field func(*bookingv1.AuditEntry) string) bool {
	if len(k) < 9 || k[len(k)-9] != 0 {
		return false
	}
	owner, seq := string(k[:len(k)-9]), k[len(k)-8:]
	val := b.Get(seq)
	if val == nil {
		return false
	}
	e := new(bookingv1.AuditEntry)
	if proto.Unmarshal(val, e) != nil {
		return false
	}
	return field(e) == owner
}

// VerifyAudit walks this replica's audit chain from seq 1 and reports how
// far it verifies, checking anchors (see AuditAnchor). A broken chain returns
// the report (BrokenSeq, Reason) and an error wrapping ErrAuditBroken that
// names the seq.
func (s *Store) VerifyAudit(ctx context.Context, anchors ...AuditAnchor) (AuditReport, error) {
	if err := s.readable(ctx); err != nil {
		return AuditReport{}, err
	}
	var rep AuditReport
	var broken error
	err := s.fsm.view(func(tx *bolt.Tx) error {
		rep, broken = verifyAuditTx(tx, anchors...)
		return nil
	})
	if err != nil {
		return AuditReport{}, err
	}
	return rep, broken
}

// VerifyAuditDir verifies the audit chain of a stopped node's data dir (or a
// copy of one, e.g. a backup) offline: it opens <dataDir>/fsm.db read-only,
// never writing to it, and walks the chain as VerifyAudit does, checking
// anchors. A live node holds the file's lock; VerifyAuditDir then gives up
// after a second. A damaged file never crashes it: a memory fault reading the
// mapped file, or a panic of bbolt on a corrupt page, is an error wrapping
// ErrAuditBroken ("damaged file"). An fsm.db a power loss may have torn is
// not read: ErrFSMUntrusted (see Inspect).
func VerifyAuditDir(dataDir string, anchors ...AuditAnchor) (rep AuditReport, err error) {
	path := filepath.Join(dataDir, FSMFile)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return AuditReport{}, fmt.Errorf("%w: %s", ErrNoFSM, dataDir)
		}
		return AuditReport{}, err
	}
	if err := checkFSMTrusted(path); err != nil {
		return AuditReport{}, err // not evidence of tampering: rebuilt at the next Open
	}
	// Deferred in this order: db.Close (below) runs first, then the recover
	// (which catches a panic in Close too), then the fault mode is restored.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			rep = AuditReport{}
			err = fmt.Errorf("%w: damaged file %s: %v", ErrAuditBroken, path, p)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return AuditReport{}, fmt.Errorf("storage: verify audit %s: %w", path, err)
	}
	defer db.Close()
	var broken error
	if err := db.View(func(tx *bolt.Tx) error {
		rep, broken = verifyAuditTx(tx, anchors...)
		return nil
	}); err != nil {
		return AuditReport{}, fmt.Errorf("storage: verify audit %s: %w", path, err)
	}
	return rep, broken
}
