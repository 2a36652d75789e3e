package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadKEK feeds arbitrary KEK files and ledgers to LoadKEK: it never panics,
// fails only with ErrBadKEKFile, and a KEK it loads works (wraps, unwraps, erases)
// and reloads with the same erasures. Seeds live in testdata/fuzz/FuzzLoadKEK too.
func FuzzLoadKEK(f *testing.F) {
	good := []byte(`{"id":"kek_abc","key":"` + strings.Repeat("A", 43) + `="}`)
	mac := strings.Repeat("0f", 32)
	f.Add(good, []byte(""))
	f.Add(good, []byte(mac+"\n"))
	f.Add(good, []byte(mac+"\n"+mac[:7]))
	f.Add(good, []byte(mac))
	f.Add(good, []byte("\n"))
	f.Add(good, []byte(mac+"\r\n"))
	f.Add([]byte(`{"id":"kek_","key":""}`), []byte(""))
	f.Add([]byte(`{"id":"kek_x","key":"AAAA"}`), []byte(""))
	f.Add([]byte("null"), []byte(""))
	f.Fuzz(func(t *testing.T, kekFile, ledger []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "kek.json")
		if err := os.WriteFile(path, kekFile, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+LedgerSuffix, ledger, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := LoadKEK(path)
		if err != nil {
			if !errors.Is(err, ErrBadKEKFile) {
				t.Fatalf("LoadKEK = %v, want ErrBadKEKFile", err)
			}
			return
		}
		if !strings.HasPrefix(k.ID(), KEKPrefix) {
			t.Fatalf("id %q", k.ID())
		}
		n := len(k.erased)
		dk, ck, err := k.NewDataKey("cli-fuzz")
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := dk.SealNote("bkg_x_1", "cli-fuzz", ledger)
		if err != nil {
			t.Fatal(err)
		}
		dk2, err := k.Unwrap(ck)
		if errors.Is(err, ErrErased) {
			return // the fuzzer found the MAC of cli-fuzz's random key id: fine
		}
		if err != nil {
			t.Fatal(err)
		}
		if text, err := dk2.OpenNote(sealed); err != nil || !bytes.Equal(text, ledger) {
			t.Fatalf("OpenNote = %q, %v", text, err)
		}
		if err := k.RecordErasure("cli-fuzz", ck.KeyId); err != nil {
			t.Fatal(err)
		}
		k2, err := LoadKEK(path)
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
		if len(k2.erased) != n+1 || !k2.Erased("cli-fuzz", ck.KeyId) {
			t.Fatalf("reload has %d erasures, want %d", len(k2.erased), n+1)
		}
		if _, err := k2.Unwrap(ck); !errors.Is(err, ErrErased) {
			t.Fatalf("Unwrap after erasure = %v", err)
		}
	})
}
