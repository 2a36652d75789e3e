package storage_test

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

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
