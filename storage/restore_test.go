package storage_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/storage/seal"
	st "github.com/barberpro/edge/storage/storagetest"
)

// sealedBackup writes a backup of an "ar" store that holds one client's key,
// wrapped by a new KEK, and returns the file, the KEK file and the key.
func sealedBackup(t *testing.T) (file, kekPath string, kek *seal.KEK, ck *bookingv1.ClientKey) {
	t.Helper()
	kekPath, kek = newKEK(t)
	cfg := st.Config(t)
	cfg.Jurisdiction = "ar"
	s := st.MustOpen(t, cfg)
	fillBookings(t, s, 5)
	dek, ck, err := kek.NewDataKey("client1")
	if err != nil {
		t.Fatal(err)
	}
	dek.Wipe()
	mustPropose(t, s, &bookingv1.Command{ProposedAtMs: st.At(-time.Hour), Op: &bookingv1.Command_PutClientKey{PutClientKey: &bookingv1.PutClientKey{Key: ck}}})
	file = filepath.Join(t.TempDir(), "ar.bpbackup")
	if _, err := s.BackupToFile(context.Background(), file); err != nil {
		t.Fatal(err)
	}
	// The live ledger was changed after the backup (an erasure of another client).
	if err := kek.RecordErasure("someone-else", "key_x"); err != nil {
		t.Fatal(err)
	}
	return file, kekPath, kek, ck
}

// withBody returns a copy of the backup raw whose body is passed through
// edit, with the checksum trailer recomputed (a well-formed file whose body
// is not a store).
func withBody(t *testing.T, raw []byte, edit func(body []byte)) []byte {
	t.Helper()
	out := append([]byte(nil), raw...)
	hl := int(binary.BigEndian.Uint32(out[10:14]))
	off := 14 + hl + 8
	edit(out[off : len(out)-sha256.Size])
	sum := sha256.Sum256(out[:len(out)-sha256.Size])
	copy(out[len(out)-sha256.Size:], sum[:])
	return out
}

// TestRestore_FailureLeavesTheDataDirAsItWas: a restore that fails — a cut or
// corrupted file, a body that is not a store (checksum fine: fails after
// fsm.db was written), a missing KEK (fails after fsm.db was written) —
// leaves an absent data dir absent and an empty one empty; a leftover of a
// crashed restore (.restore-tmp) does not block the next one.
func TestRestore_FailureLeavesTheDataDirAsItWas(t *testing.T) {
	file, kekPath, _, _ := sealedBackup(t)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cut := write("cut", raw[:len(raw)/2])
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-100] ^= 1
	notStore := write("notstore", withBody(t, raw, func(b []byte) { clear(b[:min(len(b), 8192)]) }))
	ok := storage.RestoreOptions{Jurisdiction: "ar", KEKFile: kekPath}
	for _, c := range []struct {
		name string
		file string
		opt  storage.RestoreOptions
		want error
	}{
		{"cut", cut, ok, storage.ErrBadBackup},
		{"flipped", write("flipped", flipped), ok, storage.ErrBadBackup},
		{"not a store", notStore, ok, nil},
		{"no kek", file, storage.RestoreOptions{Jurisdiction: "ar"}, storage.ErrKEKRequired},
	} {
		absent := filepath.Join(t.TempDir(), "absent")
		_, err := storage.RestoreBackup(c.file, absent, c.opt)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if _, serr := os.Stat(absent); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%s: the absent data dir exists after a failed restore (%v)", c.name, serr)
		}
		empty := t.TempDir()
		if _, err := storage.RestoreBackup(c.file, empty, c.opt); err == nil {
			t.Errorf("%s: restore into an empty dir succeeded", c.name)
		}
		if left, _ := os.ReadDir(empty); len(left) != 0 {
			t.Errorf("%s: the empty data dir holds %v after a failed restore", c.name, left)
		}
	}
	crashed := t.TempDir()
	if err := os.MkdirAll(filepath.Join(crashed, ".restore-tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(crashed, ".restore-tmp", storage.FSMFile), []byte("half"), 0o600)
	if _, err := storage.RestoreBackup(file, crashed, ok); err != nil {
		t.Fatalf("restore over a crashed restore's leftover: %v", err)
	}
	if _, err := os.Stat(filepath.Join(crashed, ".restore-tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the temporary dir is left: %v", err)
	}
}

// TestRestore_JurisdictionIsChecked: a backup of another jurisdiction is
// refused before its body is read, and a restored data dir does not open on
// a node of another jurisdiction (ErrWrongJurisdiction both).
func TestRestore_JurisdictionIsChecked(t *testing.T) {
	file, kekPath, _, _ := sealedBackup(t)
	dir := filepath.Join(t.TempDir(), "d")
	if _, err := storage.RestoreBackup(file, dir, storage.RestoreOptions{Jurisdiction: "us", KEKFile: kekPath}); !errors.Is(err, storage.ErrWrongJurisdiction) {
		t.Fatalf("restore of an ar backup for a us node: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data dir left: %v", err)
	}
	if _, err := storage.RestoreBackup(file, dir, storage.RestoreOptions{Jurisdiction: "ar", KEKFile: kekPath}); err != nil {
		t.Fatal(err)
	}
	cfg := st.Config(t)
	cfg.DataDir, cfg.Bootstrap, cfg.Jurisdiction = dir, false, "us"
	if s, err := storage.Open(cfg); !errors.Is(err, storage.ErrWrongJurisdiction) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open of a restored ar dir on a us node: %v", err)
	}
	cfg.Jurisdiction = "ar"
	st.MustWaitLeader(t, st.MustOpen(t, cfg))
}

// TestRestore_NeedsTheErasureLedger: a backup holding a wrapped client key
// restores only with the jurisdiction's KEK file and its erasure ledger
// present, the KEK that wrapped the keys, and a ledger not older than the
// backup (unless AllowOldLedger); a client erased after the backup is
// counted as such (its key stays unusable).
func TestRestore_NeedsTheErasureLedger(t *testing.T) {
	file, kekPath, kek, ck := sealedBackup(t)
	try := func(opt storage.RestoreOptions) (storage.RestoreResult, error) {
		opt.Jurisdiction = "ar"
		return storage.RestoreBackup(file, filepath.Join(t.TempDir(), "d"), opt)
	}
	if _, err := try(storage.RestoreOptions{}); !errors.Is(err, storage.ErrKEKRequired) {
		t.Fatalf("without a KEK file: %v", err)
	}
	noLedger := filepath.Join(t.TempDir(), "ar.kek")
	if _, err := seal.InitKEK(noLedger); err != nil {
		t.Fatal(err)
	}
	if _, err := try(storage.RestoreOptions{KEKFile: noLedger}); !errors.Is(err, storage.ErrKEKRequired) {
		t.Fatalf("a KEK without its ledger: %v", err)
	}
	if _, err := os.Stat(noLedger + seal.LedgerSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the restore made the missing ledger: %v", err)
	}
	other, _ := newKEK(t)
	if _, err := try(storage.RestoreOptions{KEKFile: other}); !errors.Is(err, seal.ErrWrongKEK) {
		t.Fatalf("another KEK: %v", err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(kekPath+seal.LedgerSuffix, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := try(storage.RestoreOptions{KEKFile: kekPath}); !errors.Is(err, storage.ErrLedgerOutdated) {
		t.Fatalf("a ledger older than the backup: %v", err)
	}
	if _, err := try(storage.RestoreOptions{KEKFile: kekPath, AllowOldLedger: true}); err != nil {
		t.Fatalf("an old ledger, allowed: %v", err)
	}
	if err := kek.RecordErasure(ck.ClientId, ck.KeyId); err != nil { // erased after the backup
		t.Fatal(err)
	}
	res, err := try(storage.RestoreOptions{KEKFile: kekPath})
	if err != nil || res.ClientKeys != 1 || res.ErasedKeys != 1 {
		t.Fatalf("restore after an erasure: %+v %v", res, err)
	}
}
