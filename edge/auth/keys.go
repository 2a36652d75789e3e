package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/barberpro/edge/storage/durable"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Files of a key directory.
const (
	// SigningKeyFile holds the private signing key, a JWK with kid (mode 0600).
	SigningKeyFile = "signing.jwk"
	// KeySetFile holds the public key set, a JWKS: what nodes verify against
	// (node start --token-keys DIR/keys.json).
	KeySetFile = "keys.json"
)

// DefaultIssuer is the iss claim of tokens made by Issue.
const DefaultIssuer = "barberpro"

// DefaultTTL is the lifetime of a token when the caller gives none.
const DefaultTTL = 24 * time.Hour

// DefaultMaxTTL is the longest lifetime (exp − iat) of a token: Issue makes
// none longer, and a Verifier accepts none longer unless configured otherwise
// (VerifierOptions.MaxTTL, node start --token-max-ttl).
const DefaultMaxTTL = 30 * 24 * time.Hour

// Init makes a key directory: dir/signing.jwk, a new Ed25519 private key (0600),
// and dir/keys.json, the public key set holding its public half. dir is created
// (0700) when missing. Init overwrites nothing: when either file exists it
// returns an error wrapping ErrKeyExists.
func Init(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("auth: init %s: %w", dir, err)
	}
	for _, name := range []string{SigningKeyFile, KeySetFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%w: %s exists", ErrKeyExists, filepath.Join(dir, name))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("auth: init %s: %w", dir, err)
		}
	}
	priv, err := newKey()
	if err != nil {
		return err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{priv.Public()}}
	if err := writeJSON(filepath.Join(dir, KeySetFile), set, 0o644, true); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, SigningKeyFile), priv, 0o600, true)
}

// Rotate replaces dir/signing.jwk with a new key and adds its public half to
// dir/keys.json, keeping the keys already there: tokens signed by the old key stay
// valid wherever the set is deployed until the operator removes that key from it.
// It returns the new kid.
func Rotate(dir string) (string, error) {
	set, err := readKeySet(filepath.Join(dir, KeySetFile))
	if err != nil {
		return "", err
	}
	if _, err := LoadSigner(dir); err != nil {
		return "", err
	}
	priv, err := newKey()
	if err != nil {
		return "", err
	}
	set.Keys = append(set.Keys, priv.Public())
	if err := writeJSON(filepath.Join(dir, KeySetFile), set, 0o644, false); err != nil {
		return "", err
	}
	if err := writeJSON(filepath.Join(dir, SigningKeyFile), priv, 0o600, false); err != nil {
		return "", err
	}
	return priv.KeyID, nil
}

// newKey makes an Ed25519 private JWK whose kid is its RFC 7638 thumbprint.
func newKey() (jose.JSONWebKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("auth: generate key: %w", err)
	}
	k := jose.JSONWebKey{Key: priv, Algorithm: string(jose.EdDSA), Use: "sig"}
	pub := k.Public()
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("auth: key thumbprint: %w", err)
	}
	k.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return k, nil
}

// writeJSON writes v to path with mode perm. With exclusive it fails when path
// exists; otherwise it replaces path atomically (write a temporary file, rename).
func writeJSON(path string, v any, perm fs.FileMode, exclusive bool) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: encode %s: %w", path, err)
	}
	b = append(b, '\n')
	if exclusive {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s exists", ErrKeyExists, path)
		}
		if err != nil {
			return fmt.Errorf("auth: write %s: %w", path, err)
		}
		if _, err := f.Write(b); err != nil {
			f.Close()
			return fmt.Errorf("auth: write %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("auth: write %s: %w", path, err)
		}
		return nil
	}
	if err := durable.WriteBytes(path, perm, b); err != nil {
		return fmt.Errorf("auth: write %s: %w", path, err)
	}
	return nil
}

// Signer issues tokens with one private key. It is safe for concurrent use.
type Signer struct {
	kid    string
	signer jose.Signer
	// Issuer is the iss claim of the tokens it makes (DefaultIssuer from LoadSigner).
	Issuer string
	// Now is the clock of iat and exp (time.Now from LoadSigner).
	Now func() time.Time
	// MaxTTL is the longest lifetime Issue gives a token (DefaultMaxTTL from
	// LoadSigner): nodes refuse longer ones by default.
	MaxTTL time.Duration
}

// LoadSigner reads dir/signing.jwk.
func LoadSigner(dir string) (*Signer, error) {
	path := filepath.Join(dir, SigningKeyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKeySet, path, err)
	}
	var k jose.JSONWebKey
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKeySet, path, err)
	}
	return NewSigner(k)
}

// NewSigner makes a Signer from a private Ed25519 JWK that has a kid.
func NewSigner(k jose.JSONWebKey) (*Signer, error) {
	priv, ok := k.Key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: signing key is %T, not an Ed25519 private key", ErrBadKeySet, k.Key)
	}
	if k.KeyID == "" {
		return nil, fmt.Errorf("%w: signing key has no kid", ErrBadKeySet)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), k.KeyID)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv}, opts)
	if err != nil {
		return nil, fmt.Errorf("auth: signer: %w", err)
	}
	return &Signer{kid: k.KeyID, signer: sig, Issuer: DefaultIssuer, Now: time.Now, MaxTTL: DefaultMaxTTL}, nil
}

// KeyID returns the kid the signer writes in every token's header.
func (s *Signer) KeyID() string { return s.kid }

// claims is the payload of a token.
type claims struct {
	jwt.Claims
	Role Role `json:"role"`
}

// Issue makes a token for sub in role that expires after ttl (DefaultTTL when
// ttl <= 0). A ttl over s.MaxTTL is an error wrapping ErrBadTTL.
func (s *Signer) Issue(role Role, sub string, ttl time.Duration) (string, error) {
	if !role.Valid() {
		return "", fmt.Errorf("%w: %q", ErrBadRole, role)
	}
	if s.MaxTTL > 0 && ttl > s.MaxTTL {
		return "", fmt.Errorf("%w: %v is over %v (nodes refuse tokens living longer than their --token-max-ttl)", ErrBadTTL, ttl, s.MaxTTL)
	}
	if err := validSubject(sub); err != nil {
		return "", err
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	now := s.Now()
	c := claims{
		Claims: jwt.Claims{
			Subject:  sub,
			Issuer:   s.Issuer,
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(ttl)),
		},
		Role: role,
	}
	tok, err := jwt.Signed(s.signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return tok, nil
}

// Issue signs a token for sub in role with dir/signing.jwk, valid for ttl
// (DefaultTTL when ttl <= 0).
func Issue(dir string, role Role, sub string, ttl time.Duration) (string, error) {
	s, err := LoadSigner(dir)
	if err != nil {
		return "", err
	}
	return s.Issue(role, sub, ttl)
}
