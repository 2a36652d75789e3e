package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/barberpro/edge/storage/seal"
)

// TestCLI_KeysInit writes a KEK with the CLI: the file is 0600 and loads, the
// output names its id and not its key, a second init is bad usage and overwrites
// nothing.
func TestCLI_KeysInit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.json")
	out, err := runCLI(t, "keys", "init", "--out", path)
	if err != nil {
		t.Fatalf("keys init: %v\n%s", err, out)
	}
	k, err := seal.LoadKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, k.ID()) {
		t.Fatalf("output %q does not name the KEK id %s", out, k.ID())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := strings.Cut(string(raw), `"key":"`)
	key, _, _ = strings.Cut(key, `"`)
	if len(key) < 40 || strings.Contains(out, key) {
		t.Fatalf("output %q carries the key", out)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file: %v, %v", info, err)
	}
	var u usageError
	if _, err := runCLI(t, "keys", "init", "--out", path); !errors.As(err, &u) || !errors.Is(err, seal.ErrKEKExists) {
		t.Fatalf("second keys init: %v, want bad usage wrapping ErrKEKExists", err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(raw) {
		t.Fatal("second keys init overwrote the key")
	}
	if _, err := runCLI(t, "keys", "init"); !errors.As(err, &u) {
		t.Fatalf("keys init without --out: %v, want bad usage", err)
	}
}
