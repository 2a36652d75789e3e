package edgetest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/barberpro/edge/edge/auth"
)

// Tokens is a token key directory made for one test (auth.Init in a temp dir):
// the Verifier a Server checks tokens with, and tokens of any role and subject
// signed with its key.
type Tokens struct {
	// Dir is the key directory (signing.jwk, keys.json).
	Dir string
	// Verifier checks tokens against Dir/keys.json (edge.Config.Auth).
	Verifier *auth.Verifier
	signer   *auth.Signer
}

// NewTokens makes a key directory in t.TempDir().
func NewTokens(t testing.TB) *Tokens {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tokens")
	if err := auth.Init(dir); err != nil {
		t.Fatalf("edgetest: token keys: %v", err)
	}
	v, err := auth.LoadKeySet(filepath.Join(dir, auth.KeySetFile))
	if err != nil {
		t.Fatalf("edgetest: token keys: %v", err)
	}
	s, err := auth.LoadSigner(dir)
	if err != nil {
		t.Fatalf("edgetest: token keys: %v", err)
	}
	return &Tokens{Dir: dir, Verifier: v, signer: s}
}

// Token returns a token for sub in role, valid for an hour.
func (k *Tokens) Token(t testing.TB, role auth.Role, sub string) string {
	t.Helper()
	tok, err := k.signer.Issue(role, sub, time.Hour)
	if err != nil {
		t.Fatalf("edgetest: token: %v", err)
	}
	return tok
}

// Bearer returns the Authorization header value of Token(t, role, sub).
func (k *Tokens) Bearer(t testing.TB, role auth.Role, sub string) string {
	t.Helper()
	return "Bearer " + k.Token(t, role, sub)
}
