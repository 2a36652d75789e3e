package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// A body length above 2^63 turns negative in io.CopyN, which then copies
// nothing and reports no error: a file that is a header and a checksum of it
// verifies as a valid backup.
func TestBackup_VerifyRefusesBodyLengthOverflow(t *testing.T) {
	var buf bytes.Buffer
	if err := writeBackupHeader(&buf, BackupHeader{Format: BackupFormat, Jurisdiction: "ar", BodyBytes: 1 << 63}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	_ = binary.BigEndian
	p := filepath.Join(t.TempDir(), "x.bpbackup")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if h, err := VerifyBackupFile(p); err == nil {
		t.Fatalf("a %d-byte file claiming a %d-byte body verified", buf.Len(), h.BodyBytes)
	}
}
