package seal

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
)

// newKEK writes a fresh KEK into a temporary directory and loads it.
func newKEK(t *testing.T) (*KEK, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kek.json")
	id, err := InitKEK(path)
	if err != nil {
		t.Fatalf("InitKEK: %v", err)
	}
	k, err := LoadKEK(path)
	if err != nil {
		t.Fatalf("LoadKEK: %v", err)
	}
	if k.ID() != id || !strings.HasPrefix(id, KEKPrefix) {
		t.Fatalf("KEK id %q, InitKEK said %q", k.ID(), id)
	}
	return k, path
}

func TestSeal_RoundTrip(t *testing.T) {
	k, _ := newKEK(t)
	dk, ck, err := k.NewDataKey("cli-ana")
	if err != nil {
		t.Fatal(err)
	}
	if ck.GetClientId() != "cli-ana" || ck.GetKekId() != k.ID() || !strings.HasPrefix(ck.GetKeyId(), KeyPrefix) || ck.GetKeyId() != dk.KeyID() || ck.GetCreatedAtMs() != 0 {
		t.Fatalf("client key %v", ck)
	}
	if bytes.Contains(ck.GetWrapped(), dk.key) {
		t.Fatal("wrapped key holds the plain key")
	}
	text := []byte("the session's notes: marker-7f3a")
	n, err := dk.SealNote("bkg_ba_1", "cli-ana", text)
	if err != nil {
		t.Fatal(err)
	}
	if n.GetBookingId() != "bkg_ba_1" || n.GetClientId() != "cli-ana" || n.GetKeyId() != ck.GetKeyId() || len(n.GetNonce()) != 12 {
		t.Fatalf("sealed note %v", n)
	}
	if bytes.Contains(n.GetCiphertext(), []byte("marker-7f3a")) {
		t.Fatal("ciphertext holds the plain text")
	}
	// A second seal of the same text uses a fresh nonce.
	n2, err := dk.SealNote("bkg_ba_1", "cli-ana", text)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(n.GetNonce(), n2.GetNonce()) || bytes.Equal(n.GetCiphertext(), n2.GetCiphertext()) {
		t.Fatal("two seals share a nonce")
	}

	// Through the wire form, unwrapped by a freshly loaded copy of the KEK.
	wire, err := proto.Marshal(ck)
	if err != nil {
		t.Fatal(err)
	}
	var ck2 bookingv1.ClientKey
	if err := proto.Unmarshal(wire, &ck2); err != nil {
		t.Fatal(err)
	}
	dk2, err := k.Unwrap(&ck2)
	if err != nil {
		t.Fatalf("Unwrap: %v", err)
	}
	got, err := dk2.OpenNote(n)
	if err != nil || !bytes.Equal(got, text) {
		t.Fatalf("OpenNote = %q, %v", got, err)
	}
	// Empty notes round-trip too.
	e, err := dk2.SealNote("bkg_ba_2", "cli-ana", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := dk.OpenNote(e); err != nil || len(got) != 0 {
		t.Fatalf("empty note: %q, %v", got, err)
	}
	dk2.Wipe()
	if _, err := dk2.OpenNote(n); !errors.Is(err, ErrOpen) {
		t.Fatalf("wiped key opened a note: %v", err)
	}
	if _, err := dk.SealNote("bkg_ba_1", "cli-bob", text); !errors.Is(err, ErrInvalid) {
		t.Fatalf("sealing for another client: %v", err)
	}
}

func TestSeal_TamperedNotesDoNotOpen(t *testing.T) {
	k, _ := newKEK(t)
	dk, _, err := k.NewDataKey("cli-ana")
	if err != nil {
		t.Fatal(err)
	}
	n, err := dk.SealNote("bkg_ba_1", "cli-ana", []byte("notes"))
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := k.NewDataKey("cli-ana")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(n *bookingv1.SealedNote){
		"ciphertext bit":  func(n *bookingv1.SealedNote) { n.Ciphertext[0] ^= 1 },
		"tag bit":         func(n *bookingv1.SealedNote) { n.Ciphertext[len(n.Ciphertext)-1] ^= 0x80 },
		"truncated":       func(n *bookingv1.SealedNote) { n.Ciphertext = n.Ciphertext[:len(n.Ciphertext)-1] },
		"nonce bit":       func(n *bookingv1.SealedNote) { n.Nonce[3] ^= 1 },
		"short nonce":     func(n *bookingv1.SealedNote) { n.Nonce = n.Nonce[:8] },
		"other booking":   func(n *bookingv1.SealedNote) { n.BookingId = "bkg_ba_2" },
		"other client":    func(n *bookingv1.SealedNote) { n.ClientId = "cli-bob" },
		"other key id":    func(n *bookingv1.SealedNote) { n.KeyId = other.KeyID() },
		"empty":           func(n *bookingv1.SealedNote) { n.Ciphertext = nil },
		"provider is not": nil, // provider_id is not bound: the control below
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			c := proto.Clone(n).(*bookingv1.SealedNote)
			if tamper == nil {
				c.ProviderId = "prv_ba_x"
				if _, err := dk.OpenNote(c); err != nil {
					t.Fatalf("untampered note: %v", err)
				}
				return
			}
			tamper(c)
			if _, err := dk.OpenNote(c); !errors.Is(err, ErrOpen) {
				t.Fatalf("OpenNote = %v, want ErrOpen", err)
			}
		})
	}
	// Another client's key with the note's client and key id forged in.
	bob, _, err := k.NewDataKey("cli-bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.OpenNote(n); !errors.Is(err, ErrOpen) {
		t.Fatalf("another client's key: %v", err)
	}
	bob.clientID, bob.keyID = dk.clientID, dk.keyID
	if _, err := bob.OpenNote(n); !errors.Is(err, ErrOpen) {
		t.Fatalf("another key under forged ids: %v", err)
	}
	if _, err := dk.OpenNote(nil); !errors.Is(err, ErrOpen) {
		t.Fatalf("nil note: %v", err)
	}
}

func TestSeal_TamperedWrappedKeysDoNotUnwrap(t *testing.T) {
	k, _ := newKEK(t)
	_, ck, err := k.NewDataKey("cli-ana")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(c *bookingv1.ClientKey){
		"wrapped bit":  func(c *bookingv1.ClientKey) { c.Wrapped[20] ^= 1 },
		"nonce bit":    func(c *bookingv1.ClientKey) { c.Wrapped[0] ^= 1 },
		"truncated":    func(c *bookingv1.ClientKey) { c.Wrapped = c.Wrapped[:len(c.Wrapped)-1] },
		"other client": func(c *bookingv1.ClientKey) { c.ClientId = "cli-bob" },
		"other key id": func(c *bookingv1.ClientKey) { c.KeyId = "key_other" },
		"no key id":    func(c *bookingv1.ClientKey) { c.KeyId = "" },
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			c := proto.Clone(ck).(*bookingv1.ClientKey)
			tamper(c)
			if _, err := k.Unwrap(c); !errors.Is(err, ErrUnwrap) {
				t.Fatalf("Unwrap = %v, want ErrUnwrap", err)
			}
		})
	}
	if _, err := k.Unwrap(nil); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("nil key: %v", err)
	}
}

func TestSeal_OtherKEKIsWrong(t *testing.T) {
	a, _ := newKEK(t)
	b, _ := newKEK(t)
	_, ck, err := a.NewDataKey("cli-ana")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unwrap(ck); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("Unwrap by another KEK = %v, want ErrWrongKEK", err)
	}
	// Forging the KEK id does not help: the wrap does not open.
	c := proto.Clone(ck).(*bookingv1.ClientKey)
	c.KekId = b.ID()
	if _, err := b.Unwrap(c); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Unwrap under a forged KEK id = %v, want ErrUnwrap", err)
	}
}

func TestSeal_ErasureIsPermanent(t *testing.T) {
	k, path := newKEK(t)
	_, ana, err := k.NewDataKey("cli-ana")
	if err != nil {
		t.Fatal(err)
	}
	_, bob, err := k.NewDataKey("cli-bob")
	if err != nil {
		t.Fatal(err)
	}
	if k.Erased("cli-ana", ana.KeyId) {
		t.Fatal("erased before RecordErasure")
	}
	if err := k.RecordErasure("cli-ana", ana.KeyId); err != nil {
		t.Fatal(err)
	}
	if err := k.RecordErasure("cli-ana", ana.KeyId); err != nil { // idempotent
		t.Fatal(err)
	}
	if !k.Erased("cli-ana", ana.KeyId) || k.Erased("cli-bob", bob.KeyId) || k.Erased("cli-bob", ana.KeyId) {
		t.Fatal("Erased wrong after RecordErasure")
	}
	if _, err := k.Unwrap(ana); !errors.Is(err, ErrErased) {
		t.Fatalf("Unwrap after erasure = %v, want ErrErased", err)
	}
	// The erasure covers the key that existed, not the client forever (the
	// integrator's decision on R1 finding 8): a returning client gets a new
	// key, which unwraps.
	_, again, err := k.NewDataKey("cli-ana")
	if err != nil {
		t.Fatalf("NewDataKey after erasure = %v, want a new key", err)
	}
	if again.KeyId == ana.KeyId || k.Erased("cli-ana", again.KeyId) {
		t.Fatal("the returning client's new key is the erased one, or erased")
	}
	if _, err := k.Unwrap(again); err != nil {
		t.Fatalf("the returning client's new key: %v", err)
	}
	if _, err := k.Unwrap(bob); err != nil {
		t.Fatalf("another client: %v", err)
	}

	// The ledger outlives the process: a KEK loaded afresh refuses too.
	k2, err := LoadKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Unwrap(ana); !errors.Is(err, ErrErased) {
		t.Fatalf("fresh KEK: Unwrap = %v, want ErrErased", err)
	}
	if _, err := k2.Unwrap(bob); err != nil {
		t.Fatalf("fresh KEK, another client: %v", err)
	}

	// The ledger is one line per erased key, HMAC-SHA256(ledger subkey,
	// "erased|"+client+"|"+key id), the subkey HKDF-derived from the KEK, and
	// names no client.
	raw, err := os.ReadFile(path + LedgerSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("cli-ana")) {
		t.Fatal("ledger names the client")
	}
	kf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, kek, err := parseKEK(kf)
	if err != nil {
		t.Fatal(err)
	}
	ledgerKey, err := hkdf.Key(sha256.New, kek, nil, "barberpro-kek|erasure-ledger|v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, ledgerKey)
	m.Write([]byte("erased|cli-ana|" + ana.KeyId))
	if want := hex.EncodeToString(m.Sum(nil)) + "\n"; string(raw) != want {
		t.Fatalf("ledger = %q, want %q", raw, want)
	}
	info, err := os.Stat(path + LedgerSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("ledger mode %v, want 0600", info.Mode().Perm())
	}
}

func TestSeal_KEKFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek.json")
	id, err := InitKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file mode %v, want 0600", info.Mode().Perm())
	}
	before, _ := os.ReadFile(path)
	_, err = InitKEK(path)
	if !errors.Is(err, ErrKEKExists) {
		t.Fatalf("second InitKEK = %v, want ErrKEKExists", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("InitKEK overwrote the key")
	}
	if strings.Contains(err.Error(), string(before)) {
		t.Fatal("error carries the key")
	}
	if _, err := os.Stat(path + LedgerSuffix); err == nil {
		t.Fatal("InitKEK made the ledger")
	}
	k, err := LoadKEK(path)
	if err != nil || k.ID() != id {
		t.Fatalf("LoadKEK = %v, %v", k, err)
	}
	if info, err := os.Stat(path + LedgerSuffix); err != nil || info.Mode().Perm() != 0o600 || info.Size() != 0 {
		t.Fatalf("ledger after LoadKEK: %v, %v", info, err)
	}
	if _, err := LoadKEK(filepath.Join(dir, "missing.json")); err == nil || errors.Is(err, ErrBadKEKFile) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestSeal_BadKEKFiles(t *testing.T) {
	good := `{"id":"kek_abc","key":"` + strings.Repeat("A", 43) + `="}`
	bad := map[string]string{
		"empty":         "",
		"not json":      "kek",
		"no id":         `{"key":"` + strings.Repeat("A", 43) + `="}`,
		"bad id":        `{"id":"key_abc","key":"` + strings.Repeat("A", 43) + `="}`,
		"id with slash": `{"id":"kek_a/b","key":"` + strings.Repeat("A", 43) + `="}`,
		"short key":     `{"id":"kek_abc","key":"AAAA"}`,
		"not base64":    `{"id":"kek_abc","key":"` + strings.Repeat("!", 44) + `"}`,
		"extra field":   `{"id":"kek_abc","key":"` + strings.Repeat("A", 43) + `=","x":1}`,
		"trailing":      good + "{}",
		"huge":          good + strings.Repeat(" ", maxKEKFile),
	}
	dir := t.TempDir()
	for name, content := range bad {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadKEK(path); !errors.Is(err, ErrBadKEKFile) {
				t.Fatalf("LoadKEK = %v, want ErrBadKEKFile", err)
			}
		})
	}
	path := filepath.Join(dir, "good")
	if err := os.WriteFile(path, []byte(good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKEK(path); err != nil {
		t.Fatalf("good file: %v", err)
	}
}

func TestSeal_Ledger(t *testing.T) {
	mac := strings.Repeat("ab", 32)
	cases := []struct {
		name, ledger, want string // want: "" loads; else the error contains it
		repaired           string // the ledger after a successful load
	}{
		{name: "empty", ledger: "", repaired: ""},
		{name: "two", ledger: mac + "\n" + strings.ToUpper(mac) + "\n", repaired: mac + "\n" + strings.ToUpper(mac) + "\n"},
		{name: "torn tail", ledger: mac + "\n" + mac[:10], repaired: mac + "\n"},
		{name: "lost newline", ledger: mac + "\n" + mac, repaired: mac + "\n" + mac + "\n"},
		{name: "short line", ledger: mac + "\n" + mac[:10] + "\n", want: "line 2"},
		{name: "not hex", ledger: mac + "\n" + mac + "\n" + strings.Repeat("zz", 32) + "\n", want: "line 3"},
		{name: "blank line", ledger: "\n" + mac + "\n", want: "line 1"},
		{name: "long line", ledger: mac + mac + "\n", want: "line 1"},
		{name: "very long line", ledger: strings.Repeat("a", 10000), want: "line 1"},
		{name: "junk tail", ledger: mac + "\nxy", want: "line 2"},
		{name: "crlf", ledger: mac + "\r\n", want: "line 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kek.json")
			if _, err := InitKEK(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+LedgerSuffix, []byte(c.ledger), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := LoadKEK(path)
			if c.want != "" {
				if !errors.Is(err, ErrBadKEKFile) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("LoadKEK = %v, want ErrBadKEKFile naming %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadKEK: %v", err)
			}
			got, _ := os.ReadFile(path + LedgerSuffix)
			if string(got) != c.repaired {
				t.Fatalf("ledger after load = %q, want %q", got, c.repaired)
			}
			// An append after the repair lands on a line of its own and reloads.
			if err := k.RecordErasure("cli-x", "key_x"); err != nil {
				t.Fatal(err)
			}
			k2, err := LoadKEK(path)
			if err != nil {
				t.Fatalf("reload after append: %v", err)
			}
			if !k2.Erased("cli-x", "key_x") {
				t.Fatal("appended erasure lost")
			}
		})
	}
}
