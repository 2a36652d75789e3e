package storage_test

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
)

// TestAudit_Review9_VerifyAuditDirOnDamagedFileNeverPanics: audit verify
// --data-dir is run on copies of data dirs that may be damaged or tampered
// with; it must name a broken link or return an error, never crash.
func TestAudit_Review9_VerifyAuditDirOnDamagedFileNeverPanics(t *testing.T) {
	dir := t.TempDir()
	f, err := storage.OpenTestFSMWith(filepath.Join(dir, storage.FSMFile), "ar", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 300; i++ {
		f.Apply(uint64(i), mustMarshal(t, withAudit(cmdAt(time.Duration(i)*time.Second, &bookingv1.AppendAudit{}),
			&bookingv1.AuditRecord{Subject: fmt.Sprintf("prv_%d", i%7), Role: "provider", Action: "notes.read", Object: fmt.Sprintf("bk_%d", i), Node: "n1"})))
	}
	f.Close()
	orig, err := os.ReadFile(filepath.Join(dir, storage.FSMFile))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(9))
	for i := 0; i < 400; i++ {
		cp := t.TempDir()
		data := append([]byte(nil), orig...)
		for j := 0; j < 1+r.Intn(4); j++ {
			data[r.Intn(len(data))] ^= byte(1 + r.Intn(255))
		}
		if err := os.WriteFile(filepath.Join(cp, storage.FSMFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("iteration %d: VerifyAuditDir panicked on a damaged fsm.db: %v", i, p)
				}
			}()
			_, _ = storage.VerifyAuditDir(cp)
		}()
	}
}
