package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/edge/edgetest"
)

// mustInit makes a key directory in a temp dir and returns it with its verifier.
func mustInit(t *testing.T) (string, *auth.Verifier) {
	t.Helper()
	k := edgetest.NewTokens(t)
	return k.Dir, k.Verifier
}

// sign signs arbitrary claims with priv, putting kid in the header when not empty.
func sign(t *testing.T, priv ed25519.PrivateKey, kid string, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signingKey reads dir's private key.
func signingKey(t *testing.T, dir string) (ed25519.PrivateKey, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, auth.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	return k.Key.(ed25519.PrivateKey), k.KeyID
}

func TestInit_WritesPrivateKeyOwnerOnlyAndPublicSet(t *testing.T) {
	dir, _ := mustInit(t)
	st, err := os.Stat(filepath.Join(dir, auth.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("signing key mode = %v, want 0600", st.Mode().Perm())
	}
	b, err := os.ReadFile(filepath.Join(dir, auth.KeySetFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"d"`) {
		t.Errorf("public key set holds private material: %s", b)
	}
}

func TestInit_RefusesToOverwrite(t *testing.T) {
	dir, _ := mustInit(t)
	before, _ := os.ReadFile(filepath.Join(dir, auth.SigningKeyFile))
	if err := auth.Init(dir); !errors.Is(err, auth.ErrKeyExists) {
		t.Fatalf("second Init = %v, want ErrKeyExists", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, auth.SigningKeyFile))
	if string(before) != string(after) {
		t.Fatal("second Init changed the signing key")
	}
}

func TestVerifier_AcceptsIssuedToken(t *testing.T) {
	dir, v := mustInit(t)
	for _, role := range auth.Roles {
		tok, err := auth.Issue(dir, role, "cli-ana", time.Hour)
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		p, err := v.Verify(tok)
		if err != nil {
			t.Fatalf("Verify(%s): %v", role, err)
		}
		if p != (auth.Principal{Subject: "cli-ana", Role: role}) {
			t.Fatalf("Verify = %+v", p)
		}
	}
}

func TestIssue_RefusesBadRoleAndSubject(t *testing.T) {
	dir, _ := mustInit(t)
	if _, err := auth.Issue(dir, "admin", "x", time.Hour); !errors.Is(err, auth.ErrBadRole) {
		t.Errorf("role admin: %v, want ErrBadRole", err)
	}
	for _, sub := range []string{"", "a b", strings.Repeat("x", auth.MaxSubjectLen+1), "ñ"} {
		if _, err := auth.Issue(dir, auth.RoleClient, sub, time.Hour); !errors.Is(err, auth.ErrBadSubject) {
			t.Errorf("sub %q: %v, want ErrBadSubject", sub, err)
		}
	}
}

func TestVerifier_RejectsBadTokens(t *testing.T) {
	dir, v := mustInit(t)
	priv, kid := signingKey(t, dir)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	good := map[string]any{"sub": "cli-ana", "role": "client", "iss": "barberpro",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	with := func(k string, val any) map[string]any {
		c := map[string]any{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	valid := sign(t, priv, kid, good)
	if _, err := v.Verify(valid); err != nil {
		t.Fatalf("control token rejected: %v", err)
	}
	parts := strings.Split(valid, ".")
	hs := jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}
	hsSigner, _ := jose.NewSigner(hs, (&jose.SignerOptions{}).WithHeader("kid", kid))
	hsTok, _ := jwt.Signed(hsSigner).Claims(good).Serialize()
	noneTok := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+kid+`"}`)) + "." + parts[1] + "."

	cases := []struct {
		name string
		tok  string
		want error
	}{
		{"empty", "", auth.ErrNoToken},
		{"garbage", "not-a-jwt", auth.ErrBadToken},
		{"expired", sign(t, priv, kid, with("exp", now.Add(-time.Hour).Unix())), auth.ErrExpired},
		{"forged by another key under our kid", sign(t, other, kid, good), auth.ErrBadToken},
		{"unknown kid", sign(t, other, "someone-else", good), auth.ErrUnknownKey},
		{"no kid", sign(t, priv, "", good), auth.ErrBadToken},
		{"alg none", noneTok, auth.ErrBadToken},
		{"alg HS256", hsTok, auth.ErrBadToken},
		{"payload swapped", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"cli-bob","role":"operator","iss":"x","iat":1,"exp":99999999999}`)) + "." + parts[2], auth.ErrBadToken},
		{"no exp", sign(t, priv, kid, with("exp", nil)), auth.ErrBadToken},
		{"no iat", sign(t, priv, kid, with("iat", nil)), auth.ErrBadToken},
		{"iat in the future", sign(t, priv, kid, with("iat", now.Add(time.Hour).Unix())), auth.ErrBadToken},
		{"no iss", sign(t, priv, kid, with("iss", nil)), auth.ErrBadToken},
		{"no sub", sign(t, priv, kid, with("sub", nil)), auth.ErrBadToken},
		{"no role", sign(t, priv, kid, with("role", nil)), auth.ErrBadToken},
		{"unknown role", sign(t, priv, kid, with("role", "admin")), auth.ErrBadToken},
		{"role not a string", sign(t, priv, kid, with("role", 7)), auth.ErrBadToken},
		{"too long", strings.Repeat("a", auth.MaxTokenLen+1), auth.ErrBadToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := v.Verify(c.tok)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %+v, %v; want %v", p, err, c.want)
			}
			if c.tok != "" && strings.Contains(err.Error(), c.tok) {
				t.Fatalf("error repeats the token: %v", err)
			}
		})
	}
}

func TestVerifier_IssuerOption(t *testing.T) {
	dir, _ := mustInit(t)
	set := readSet(t, filepath.Join(dir, auth.KeySetFile))
	v, err := auth.NewVerifier(set, auth.VerifierOptions{Issuer: "idp.example"})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := auth.Issue(dir, auth.RoleClient, "cli-ana", time.Hour)
	if _, err := v.Verify(tok); !errors.Is(err, auth.ErrBadToken) {
		t.Fatalf("token of issuer barberpro under Issuer idp.example: %v", err)
	}
}

func readSet(t *testing.T, path string) jose.JSONWebKeySet {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	return set
}

func TestRotate_OldAndNewKeysVerifyUntilOldRemoved(t *testing.T) {
	dir, _ := mustInit(t)
	old, err := auth.Issue(dir, auth.RoleClient, "cli-ana", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, oldKid := signingKey(t, dir)
	newKid, err := auth.Rotate(dir)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if newKid == oldKid {
		t.Fatal("Rotate kept the kid")
	}
	fresh, _ := auth.Issue(dir, auth.RoleClient, "cli-ana", time.Hour)
	v, err := auth.LoadKeySet(filepath.Join(dir, auth.KeySetFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("%s token after rotation: %v", name, err)
		}
	}
	set := readSet(t, filepath.Join(dir, auth.KeySetFile))
	var kept jose.JSONWebKeySet
	for _, k := range set.Keys {
		if k.KeyID != oldKid {
			kept.Keys = append(kept.Keys, k)
		}
	}
	v2, err := auth.NewVerifier(kept, auth.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Verify(old); !errors.Is(err, auth.ErrUnknownKey) {
		t.Errorf("old token after its key left the set: %v, want ErrUnknownKey", err)
	}
	if _, err := v2.Verify(fresh); err != nil {
		t.Errorf("new token: %v", err)
	}
}

func TestLoadKeySet_RefusesUnusableSets(t *testing.T) {
	dir, _ := mustInit(t)
	priv, _ := os.ReadFile(filepath.Join(dir, auth.SigningKeyFile))
	pubSet, _ := os.ReadFile(filepath.Join(dir, auth.KeySetFile))
	noKid := strings.Replace(string(pubSet), `"kid"`, `"x-kid"`, 1)
	cases := map[string]string{
		"not json":       "{",
		"empty":          `{"keys":[]}`,
		"private in set": `{"keys":[` + string(priv) + `]}`,
		"no kid":         noKid,
		"symmetric key":  `{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0"}]}`,
		"duplicate kid":  dupSet(t, pubSet),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "keys.json")
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := auth.LoadKeySet(p); !errors.Is(err, auth.ErrBadKeySet) {
				t.Fatalf("LoadKeySet = %v, want ErrBadKeySet", err)
			}
		})
	}
	if _, err := auth.LoadKeySet(filepath.Join(dir, "missing.json")); !errors.Is(err, auth.ErrBadKeySet) {
		t.Fatalf("missing file: %v", err)
	}
}

// dupSet returns the key set set with its one key twice.
func dupSet(t *testing.T, set []byte) string {
	t.Helper()
	var ks jose.JSONWebKeySet
	if err := json.Unmarshal(set, &ks); err != nil {
		t.Fatal(err)
	}
	ks.Keys = append(ks.Keys, ks.Keys[0])
	b, err := json.Marshal(ks)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBearerToken_ParsesAuthorizationHeader(t *testing.T) {
	cases := []struct {
		name string
		vals []string
		tok  string
		err  error
	}{
		{"none", nil, "", auth.ErrNoToken},
		{"bearer", []string{"Bearer abc.def.ghi"}, "abc.def.ghi", nil},
		{"case-insensitive scheme", []string{"bearer abc"}, "abc", nil},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, "", auth.ErrBadToken},
		{"scheme only", []string{"Bearer"}, "", auth.ErrBadToken},
		{"scheme and space", []string{"Bearer "}, "", auth.ErrBadToken},
		{"two tokens", []string{"Bearer a b"}, "", auth.ErrBadToken},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", auth.ErrBadToken},
		{"empty header", []string{""}, "", auth.ErrBadToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range c.vals {
				h.Add("Authorization", v)
			}
			tok, err := auth.BearerToken(h)
			if tok != c.tok || !errors.Is(err, c.err) || (c.err == nil && err != nil) {
				t.Fatalf("BearerToken = %q, %v; want %q, %v", tok, err, c.tok, c.err)
			}
		})
	}
}

// TestVerifier_CacheKeepsEveryCheckThatMatters verifies tokens through the cache
// of verified tokens: a remembered token still expires, a token that differs by
// one character from a remembered one is verified (and refused) on its own, and
// the cache stays within its size.
func TestVerifier_CacheKeepsEveryCheckThatMatters(t *testing.T) {
	dir, _ := mustInit(t)
	now := time.Now()
	v, err := auth.NewVerifier(readSet(t, filepath.Join(dir, auth.KeySetFile)),
		auth.VerifierOptions{Now: func() time.Time { return now }, CacheSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	s, err := auth.LoadSigner(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Now = func() time.Time { return now }
	tok, _ := s.Issue(auth.RoleClient, "cli-ana", time.Hour)
	for range 2 {
		if p, err := v.Verify(tok); err != nil || p.Subject != "cli-ana" {
			t.Fatalf("Verify = %+v, %v", p, err)
		}
	}
	if auth.CacheLen(v) != 1 {
		t.Fatalf("cache holds %d tokens, want 1", auth.CacheLen(v))
	}
	// One character of the signature changed: not the remembered token.
	b := []byte(tok)
	if b[len(b)-2] == 'A' {
		b[len(b)-2] = 'B'
	} else {
		b[len(b)-2] = 'A'
	}
	if _, err := v.Verify(string(b)); !errors.Is(err, auth.ErrBadToken) {
		t.Fatalf("tampered copy of a remembered token: %v", err)
	}
	for i := range 10 {
		other, _ := s.Issue(auth.RoleClient, fmt.Sprintf("cli-%d", i), time.Hour)
		if _, err := v.Verify(other); err != nil {
			t.Fatal(err)
		}
	}
	if n := auth.CacheLen(v); n > 4 {
		t.Fatalf("cache holds %d tokens, more than its size 4", n)
	}
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("a token dropped from the cache is verified again: %v", err)
	}
	now = now.Add(2 * time.Hour)
	if _, err := v.Verify(tok); !errors.Is(err, auth.ErrExpired) {
		t.Fatalf("a remembered token past its exp: %v, want ErrExpired", err)
	}
}

// TestVerifier_PinnedIssuerAndMaxLifetime (review8 finding 6): a verifier that
// pins its issuer refuses another issuer's token (ErrWrongIssuer), and none
// accepts a token whose exp − iat is over its MaxTTL (DefaultMaxTTL by default),
// valid signature and unexpired or not.
func TestVerifier_PinnedIssuerAndMaxLifetime(t *testing.T) {
	dir, _ := mustInit(t)
	priv, kid := signingKey(t, dir)
	set := readSet(t, filepath.Join(dir, auth.KeySetFile))
	now := time.Now()
	claims := func(iss string, life time.Duration) map[string]any {
		return map[string]any{"sub": "cli-ana", "role": "client", "iss": iss,
			"iat": now.Unix(), "exp": now.Add(life).Unix()}
	}
	pinned, err := auth.NewVerifier(set, auth.VerifierOptions{Issuer: auth.DefaultIssuer, MaxTTL: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pinned.Verify(sign(t, priv, kid, claims(auth.DefaultIssuer, 48*time.Hour))); err != nil {
		t.Fatalf("a token of the pinned issuer living MaxTTL: %v", err)
	}
	if _, err := pinned.Verify(sign(t, priv, kid, claims("idp.example", time.Hour))); !errors.Is(err, auth.ErrWrongIssuer) || !errors.Is(err, auth.ErrBadToken) {
		t.Errorf("a token of another issuer: %v, want ErrWrongIssuer", err)
	}
	if _, err := pinned.Verify(sign(t, priv, kid, claims(auth.DefaultIssuer, 49*time.Hour))); !errors.Is(err, auth.ErrLifetime) || !errors.Is(err, auth.ErrBadToken) {
		t.Errorf("a token living 49h under MaxTTL 48h: %v, want ErrLifetime", err)
	}
	def, err := auth.NewVerifier(set, auth.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := def.Verify(sign(t, priv, kid, claims("idp.example", auth.DefaultMaxTTL))); err != nil {
		t.Errorf("default verifier, any issuer, lifetime DefaultMaxTTL: %v", err)
	}
	if _, err := def.Verify(sign(t, priv, kid, claims(auth.DefaultIssuer, 10*365*24*time.Hour))); !errors.Is(err, auth.ErrLifetime) {
		t.Errorf("default verifier, a ten-year token: %v, want ErrLifetime", err)
	}
	if _, err := auth.NewVerifier(set, auth.VerifierOptions{MaxTTL: -time.Hour}); err == nil {
		t.Error("a negative MaxTTL was accepted")
	}
}

// TestIssue_RefusesTTLOverMax: the signer makes no token nodes would refuse for
// its lifetime.
func TestIssue_RefusesTTLOverMax(t *testing.T) {
	dir, v := mustInit(t)
	if _, err := auth.Issue(dir, auth.RoleClient, "cli-ana", auth.DefaultMaxTTL+time.Second); !errors.Is(err, auth.ErrBadTTL) {
		t.Fatalf("Issue over DefaultMaxTTL: %v, want ErrBadTTL", err)
	}
	tok, err := auth.Issue(dir, auth.RoleClient, "cli-ana", auth.DefaultMaxTTL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("a token of DefaultMaxTTL: %v", err)
	}
}
