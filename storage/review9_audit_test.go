package storage_test

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestAudit_Review9_IndexTamperingHidesEntries: the audit_object and
// audit_subject index buckets are not covered by the chain, and neither
// VerifyAudit nor VerifyAuditDir checks them against the entries. Someone who
// can write fsm.db deletes the index key of one entry (say, a provider reading
// a client's notes): the chain still verifies, and GET /v1/audit?object=...
// (AuditEntries with Object) no longer lists the entry. Either the verifier
// must flag the missing index key, or the filtered read must not depend on an
// unverified index.
func TestAudit_Review9_IndexTamperingHidesEntries(t *testing.T) {
	ctx := context.Background()
	cfg := st.Config(t)
	cfg.Jurisdiction = "ar"
	s, err := storage.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.MustWaitLeader(t, s)
	const object, subject = "bk_ba_review9", "prv_snoop"
	for i := 0; i < 3; i++ {
		if _, err := s.Propose(ctx, withAudit(cmdAt(time.Duration(i)*time.Minute, &bookingv1.AppendAudit{}),
			&bookingv1.AuditRecord{Subject: subject, Role: "provider", Action: "notes.read", Object: object, Node: "n1"})); err != nil {
			t.Fatal(err)
		}
	}
	if es, _, err := s.AuditEntries(ctx, storage.AuditFilter{Object: object}); err != nil || len(es) != 3 {
		t.Fatalf("control: %d entries for the object (%v)", len(es), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The tamperer: drop the index keys of seq 2 (object and subject).
	db, err := bolt.Open(filepath.Join(cfg.DataDir, storage.FSMFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	key := func(owner string, seq uint64) []byte {
		return binary.BigEndian.AppendUint64(append([]byte(owner), 0), seq)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("audit_object")).Delete(key(object, 2)); err != nil {
			return err
		}
		return tx.Bucket([]byte("audit_subject")).Delete(key(subject, 2))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	rep, verr := storage.VerifyAuditDir(cfg.DataDir)
	s2 := st.MustOpen(t, cfg)
	byObject, _, err := s2.AuditEntries(ctx, storage.AuditFilter{Object: object})
	if err != nil {
		t.Fatal(err)
	}
	bySubject, _, err := s2.AuditEntries(ctx, storage.AuditFilter{Subject: subject})
	if err != nil {
		t.Fatal(err)
	}
	if verr == nil && (len(byObject) != 3 || len(bySubject) != 3) {
		t.Fatalf("VerifyAuditDir says the chain is whole (%d entries), yet the audit read by object lists %d and by subject %d of the 3 entries: an index edit hides entries undetected",
			rep.Entries, len(byObject), len(bySubject))
	}
}

// TestAudit_Review9_RehashedChainVerifies: the chain is a bare SHA-256 chain
// with no key, so whoever can write fsm.db changes an old entry (here: who
// read the notes), fixes the index and recomputes every later hash;
// VerifyAuditDir alone then reports a whole chain with the same number of
// entries (the documented limit). Adapted by fix F2 (R2 #4): an anchor, the
// head printed by an earlier verify and kept elsewhere (--head SEQ:HEX),
// catches the rewrite, and a truncation past it.
func TestAudit_Review9_RehashedChainVerifies(t *testing.T) {
	dir := t.TempDir()
	f, err := storage.OpenTestFSMWith(filepath.Join(dir, storage.FSMFile), "ar", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		r := f.Apply(uint64(i), mustMarshal(t, withAudit(cmdAt(time.Duration(i)*time.Minute, &bookingv1.AppendAudit{}),
			&bookingv1.AuditRecord{Subject: "prv_" + string(rune('a'+i)), Role: "provider", Action: "notes.read", Object: "bk_1", Node: "n1"})))
		if len(r) != 1 || r[0].Code != bookingv1.ResultCode_RESULT_CODE_OK {
			t.Fatalf("append: %v", r)
		}
	}
	f.Close()
	before, err := storage.VerifyAuditDir(dir)
	if err != nil || before.Entries != 4 {
		t.Fatalf("control: %+v %v", before, err)
	}
	anchor, err := storage.ParseAuditAnchor(before.HeadAnchor())
	if err != nil || anchor.Seq != 4 {
		t.Fatalf("head anchor %q: %v", before.HeadAnchor(), err)
	}
	if _, err := storage.VerifyAuditDir(dir, anchor); err != nil {
		t.Fatalf("control: the untouched chain against its own head: %v", err)
	}
	// An anchor kept from when the chain had 2 entries holds too.
	early, err := storage.ParseAuditAnchor(storage.AuditAnchor{Seq: 2, Hash: auditHashAt(t, dir, 2)}.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storage.VerifyAuditDir(dir, early); err != nil {
		t.Fatalf("control: an earlier anchor: %v", err)
	}

	db, err := bolt.Open(filepath.Join(dir, storage.FSMFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	key := func(owner string, seq uint64) []byte {
		return binary.BigEndian.AppendUint64(append([]byte(owner), 0), seq)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		prev := make([]byte, 32)
		return b.ForEach(func(k, v []byte) error {
			e := new(bookingv1.AuditEntry)
			if err := proto.Unmarshal(v, e); err != nil {
				return err
			}
			if e.Seq == 2 {
				// Who really read the notes is gone; the index follows.
				if err := tx.Bucket([]byte("audit_subject")).Delete(key(e.Subject, 2)); err != nil {
					return err
				}
				e.Subject = "prv_somebody_else"
				if err := tx.Bucket([]byte("audit_subject")).Put(key(e.Subject, 2), nil); err != nil {
					return err
				}
			}
			e.PrevHash = prev
			e.Hash = storage.AuditHash(prev, e)
			prev = e.Hash
			raw, err := proto.Marshal(e)
			if err != nil {
				return err
			}
			return b.Put(append([]byte(nil), k...), raw)
		})
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	after, err := storage.VerifyAuditDir(dir)
	if err != nil || after.Entries != 4 {
		t.Fatalf("without an anchor a rehashed chain verifies (the documented limit), got %+v, %v", after, err)
	}
	for _, a := range []storage.AuditAnchor{anchor, early} {
		if rep, err := storage.VerifyAuditDir(dir, a); !errors.Is(err, storage.ErrAuditBroken) || rep.BrokenSeq != a.Seq {
			t.Fatalf("an audit entry was changed and the chain rehashed: VerifyAuditDir with anchor %s: %+v, %v; want broken at seq %d",
				a, rep, err, a.Seq)
		}
	}

	// Cutting the tail off (here: seq 4) is caught by an anchor past the end.
	db, err = bolt.Open(filepath.Join(dir, storage.FSMFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_ = tx.Bucket([]byte("audit_subject")).Delete(key("prv_e", 4))
		_ = tx.Bucket([]byte("audit_object")).Delete(key("bk_1", 4))
		return tx.Bucket([]byte("audit")).Delete(binary.BigEndian.AppendUint64(nil, 4))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if rep, err := storage.VerifyAuditDir(dir); err != nil || rep.Entries != 3 {
		t.Fatalf("control: the truncated chain verifies without an anchor: %+v, %v", rep, err)
	}
	if rep, err := storage.VerifyAuditDir(dir, storage.AuditAnchor{Seq: 4, Hash: anchor.Hash}); !errors.Is(err, storage.ErrAuditBroken) || rep.BrokenSeq != 4 {
		t.Fatalf("a truncated chain with an anchor past its end: %+v, %v", rep, err)
	}
}

// auditHashAt reads entry seq's hash from dir's fsm.db.
func auditHashAt(t *testing.T, dir string, seq uint64) []byte {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, storage.FSMFile), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := new(bookingv1.AuditEntry)
	if err := db.View(func(tx *bolt.Tx) error {
		return proto.Unmarshal(tx.Bucket([]byte("audit")).Get(binary.BigEndian.AppendUint64(nil, seq)), e)
	}); err != nil {
		t.Fatal(err)
	}
	return e.Hash
}
