package procs

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestKEKFilePerJurisdiction(t *testing.T) {
	sec, err := NewSecrets(filepath.Join(t.TempDir(), "secrets"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ar, err := sec.KEKFile("ar")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := sec.KEKFile("ar")
	us, _ := sec.KEKFile("us")
	if again != ar || us == ar {
		t.Fatalf("ar %s, again %s, us %s", ar, again, us)
	}
	fi, err := os.Stat(ar)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file mode: %v %v", fi, err)
	}
	var k struct{ ID, Key string }
	b, _ := os.ReadFile(ar)
	if err := json.Unmarshal(b, &k); err != nil || !strings.HasPrefix(k.ID, "kek_") {
		t.Fatalf("KEK file %s: %+v %v", b, k, err)
	}
	if key, err := base64.StdEncoding.DecodeString(k.Key); err != nil || len(key) != 32 {
		t.Fatalf("KEK key: %d bytes, %v", len(key), err)
	}
	c, err := FiveCities("/bin/true", t.TempDir(), sec, 11)
	if err != nil {
		t.Fatal(err)
	}
	arKey, _ := os.ReadFile(ar)
	usKey, _ := os.ReadFile(us)
	for _, p := range c.Procs {
		want := arKey
		if p.Spec.City == "us-east" {
			want = usKey
		}
		i := slices.Index(p.Spec.Args(), "--kek-file")
		if i < 0 {
			t.Fatalf("%s: no --kek-file in %q", p.Spec.ID, p.Spec.Args())
		}
		// Each node its own copy (its own erasure ledger beside it) of its
		// jurisdiction's key.
		file := p.Spec.Args()[i+1]
		if got, err := os.ReadFile(file); err != nil || string(got) != string(want) || file == ar || file == us {
			t.Errorf("%s: --kek-file %s holds %s (%v), want its own copy of its jurisdiction's key", p.Spec.ID, file, got, err)
		}
		if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: KEK copy mode %v %v", p.Spec.ID, fi, err)
		}
	}
}
