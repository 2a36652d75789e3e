package seal_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage/seal"
)

// TestUnwrap_Review9_RelabelledKeyBypassesLedger: the additional data
// "barberpro-dek|" + client_id + "|" + key_id is not injective when a client id
// holds "|" (the edge's checkID allows it). An erased client "ana|x" has its
// wrapped key, as read from a backup taken before the erasure, relabelled
// client "ana", key id "x|"+key_id: same AAD, so it unwraps, and the ledger,
// which is asked about "ana", does not stop it. The client's note relabelled
// the same way then opens.
func TestUnwrap_Review9_RelabelledKeyBypassesLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.json")
	if _, err := seal.InitKEK(path); err != nil {
		t.Fatal(err)
	}
	k, err := seal.LoadKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	const victim = "ana|x"
	dk, ck, err := k.NewDataKey(victim)
	if err != nil {
		t.Fatal(err)
	}
	n, err := dk.SealNote("bk_1", victim, []byte("private"))
	if err != nil {
		t.Fatal(err)
	}
	dk.Wipe()
	if err := k.RecordErasure(victim, ck.KeyId); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Unwrap(ck); err == nil {
		t.Fatal("control: the erased client's key unwraps")
	}
	before, after, _ := strings.Cut(victim, "|")
	forged := &bookingv1.ClientKey{ClientId: before, KeyId: after + "|" + ck.KeyId, Wrapped: ck.Wrapped, KekId: ck.KekId}
	fk, err := k.Unwrap(forged)
	if err != nil {
		return // refused: what we want
	}
	defer fk.Wipe()
	fn := &bookingv1.SealedNote{BookingId: n.BookingId, ClientId: before, KeyId: forged.KeyId, Nonce: n.Nonce, Ciphertext: n.Ciphertext}
	text, err := fk.OpenNote(fn)
	t.Fatalf("an erased client's wrapped key, relabelled (client %q, key id %q), unwraps past the ledger; its note opens: %q (%v)",
		forged.ClientId, forged.KeyId, text, err)
}

// TestLoadKEK_Review9_RefusesGroupOrWorldReadableFile: the KEK is the one
// secret that turns every backup's wrapped keys back into data keys; InitKEK
// writes it 0600, but LoadKEK loads a copy that anyone on the host can read
// (0644, as cp or a config-management tool may leave it) without a word.
func TestLoadKEK_Review9_RefusesGroupOrWorldReadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.json")
	if _, err := seal.InitKEK(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := seal.LoadKEK(path); err == nil {
		t.Fatal("LoadKEK loaded a world-readable key-encryption key file (mode 0644)")
	}
}
