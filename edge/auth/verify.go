package auth

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// MaxTokenLen bounds the length of a token, in bytes, that Verify parses at all.
const MaxTokenLen = 8 << 10

// DefaultLeeway is the clock skew allowed around exp and iat.
const DefaultLeeway = 30 * time.Second

// VerifierOptions tunes a Verifier. The zero value accepts any issuer, tokens
// living up to DefaultMaxTTL, with DefaultLeeway and time.Now.
type VerifierOptions struct {
	// Issuer, when set, is the only iss accepted (ErrWrongIssuer otherwise):
	// DefaultIssuer for tokens of `barberpro token issue`, an outside identity
	// provider's own name for its tokens. Empty: any non-empty iss.
	Issuer string
	// MaxTTL is the longest lifetime (exp − iat) a token may have; a longer one
	// is refused (ErrLifetime) even before it expires, so a stolen token cannot
	// have been made to last. DefaultMaxTTL when 0; negative is an error.
	MaxTTL time.Duration
	// Leeway is the clock skew allowed around exp and iat (DefaultLeeway when 0).
	Leeway time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// CacheSize bounds how many verified tokens are remembered, so that a token
	// sent again is not verified again (an Ed25519 verification costs about as
	// much as the rest of a request's handling). A token is remembered by its
	// exact text, with its principal and expiry, only once it verified; exp is
	// still checked on every use. Default DefaultCacheSize; negative: no cache.
	CacheSize int
}

// DefaultCacheSize is the default VerifierOptions.CacheSize.
const DefaultCacheSize = 10_000

// Verifier checks tokens against a set of Ed25519 public keys, chosen by kid. It
// is safe for concurrent use.
type Verifier struct {
	keys  map[string]ed25519.PublicKey
	opts  VerifierOptions
	cache *tokenCache
	// checked counts the tokens verify parsed and checked (Verifications).
	checked atomic.Uint64
}

// verified is a token that verified: whom it speaks for and when it expires.
type verified struct {
	p   Principal
	exp time.Time
}

// tokenCache remembers verified tokens in two generations of at most max/2
// each: a full current generation becomes the previous one, whose tokens move
// back to current when used again, and the previous previous is dropped. So it
// holds at most max tokens and keeps the ones in use.
type tokenCache struct {
	mu         sync.Mutex
	max        int
	cur, older map[string]verified
}

func (c *tokenCache) get(tok string) (verified, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[tok]; ok {
		return v, true
	}
	v, ok := c.older[tok]
	if ok {
		c.putLocked(tok, v)
	}
	return v, ok
}

func (c *tokenCache) put(tok string, v verified) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(tok, v)
}

func (c *tokenCache) putLocked(tok string, v verified) {
	if len(c.cur) >= max(1, c.max/2) {
		c.older, c.cur = c.cur, make(map[string]verified, c.max/2)
	}
	c.cur[tok] = v
}

// LoadKeySet reads a JSON Web Key Set (the file of node start --token-keys) and
// returns a Verifier for its keys with the zero VerifierOptions. Every key must
// be a public Ed25519 (OKP) key with a kid, the kids distinct; anything else is
// an error wrapping ErrBadKeySet.
func LoadKeySet(path string) (*Verifier, error) {
	return LoadKeySetWith(path, VerifierOptions{})
}

// LoadKeySetWith is LoadKeySet with opts (a node pins its issuer and the
// longest lifetime it accepts: node start --token-issuer, --token-max-ttl).
func LoadKeySetWith(path string, opts VerifierOptions) (*Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKeySet, path, err)
	}
	set, err := parseKeySet(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return NewVerifier(set, opts)
}

// readKeySet reads and parses a JWKS file.
func readKeySet(path string) (jose.JSONWebKeySet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("%w: %s: %v", ErrBadKeySet, path, err)
	}
	set, err := parseKeySet(b)
	if err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("%s: %w", path, err)
	}
	return set, nil
}

// parseKeySet decodes a JWKS, refusing private key material.
func parseKeySet(b []byte) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return jose.JSONWebKeySet{}, fmt.Errorf("%w: %v", ErrBadKeySet, err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return jose.JSONWebKeySet{}, fmt.Errorf("%w: key %q holds private material", ErrBadKeySet, k.KeyID)
		}
	}
	return set, nil
}

// NewVerifier returns a Verifier for the keys of set (see LoadKeySet for what a
// key must be).
func NewVerifier(set jose.JSONWebKeySet, opts VerifierOptions) (*Verifier, error) {
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("%w: the key set holds no key", ErrBadKeySet)
	}
	if opts.MaxTTL < 0 {
		return nil, fmt.Errorf("auth: VerifierOptions.MaxTTL %v is negative", opts.MaxTTL)
	}
	if opts.MaxTTL == 0 {
		opts.MaxTTL = DefaultMaxTTL
	}
	if opts.Leeway == 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	v := &Verifier{keys: make(map[string]ed25519.PublicKey, len(set.Keys)), opts: opts}
	if opts.CacheSize > 0 {
		v.cache = &tokenCache{max: opts.CacheSize, cur: map[string]verified{}, older: map[string]verified{}}
	}
	for i, k := range set.Keys {
		if k.KeyID == "" {
			return nil, fmt.Errorf("%w: key %d has no kid", ErrBadKeySet, i)
		}
		pub, ok := k.Key.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: key %q is %T, not an Ed25519 public key", ErrBadKeySet, k.KeyID, k.Key)
		}
		if k.Algorithm != "" && k.Algorithm != string(jose.EdDSA) {
			return nil, fmt.Errorf("%w: key %q is for alg %q, not EdDSA", ErrBadKeySet, k.KeyID, k.Algorithm)
		}
		if _, dup := v.keys[k.KeyID]; dup {
			return nil, fmt.Errorf("%w: kid %q appears twice", ErrBadKeySet, k.KeyID)
		}
		v.keys[k.KeyID] = pub
	}
	return v, nil
}

// KeyIDs returns the kids the verifier accepts, in no particular order.
func (v *Verifier) KeyIDs() []string {
	ids := make([]string, 0, len(v.keys))
	for id := range v.keys {
		ids = append(ids, id)
	}
	return ids
}

// Verify checks token (the compact JWS, without "Bearer ") and returns whom it
// speaks for. The signature must be EdDSA by the key its kid names; sub, role,
// iss, iat and exp must be present and valid, exp not passed, iss the pinned
// issuer (VerifierOptions.Issuer), exp − iat at most VerifierOptions.MaxTTL.
// Every failure wraps ErrBadToken (ErrExpired, ErrUnknownKey, ErrWrongIssuer,
// ErrLifetime for those cases); the error text never repeats the token.
func (v *Verifier) Verify(token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoToken
	}
	if len(token) > MaxTokenLen {
		return Principal{}, fmt.Errorf("%w: longer than %d bytes", ErrBadToken, MaxTokenLen)
	}
	if v.cache != nil {
		if c, ok := v.cache.get(token); ok {
			if v.opts.Now().Add(-v.opts.Leeway).After(c.exp) {
				return Principal{}, ErrExpired
			}
			return c.p, nil
		}
	}
	p, exp, err := v.verify(token)
	if err != nil {
		return Principal{}, err
	}
	if v.cache != nil {
		v.cache.put(token, verified{p: p, exp: exp})
	}
	return p, nil
}

// Cached returns the principal of token when it verified before and is still
// remembered and unexpired, without any signature work; ok is false otherwise
// (Verify then decides). A caller that must bound the cost of new tokens (the
// edge charges the client's IP first) asks Cached before Verify.
func (v *Verifier) Cached(token string) (p Principal, ok bool) {
	if v.cache == nil || token == "" || len(token) > MaxTokenLen {
		return Principal{}, false
	}
	c, ok := v.cache.get(token)
	if !ok || v.opts.Now().Add(-v.opts.Leeway).After(c.exp) {
		return Principal{}, false
	}
	return c.p, true
}

// Verifications returns how many tokens Verify has checked (parsed and, unless
// malformed, checked the signature of) rather than found in its cache.
func (v *Verifier) Verifications() uint64 { return v.checked.Load() }

// verify checks the signature and claims of token; see Verify.
func (v *Verifier) verify(token string) (Principal, time.Time, error) {
	v.checked.Add(1)
	fail := func(err error) (Principal, time.Time, error) { return Principal{}, time.Time{}, err }
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return fail(fmt.Errorf("%w: malformed", ErrBadToken))
	}
	if len(tok.Headers) != 1 {
		return fail(fmt.Errorf("%w: want one signature", ErrBadToken))
	}
	kid := tok.Headers[0].KeyID
	if kid == "" {
		return fail(fmt.Errorf("%w: no kid in the header", ErrBadToken))
	}
	key, ok := v.keys[kid]
	if !ok {
		return fail(ErrUnknownKey)
	}
	var c claims
	if err := tok.Claims(key, &c); err != nil {
		return fail(fmt.Errorf("%w: bad signature or claims", ErrBadToken))
	}
	switch {
	case c.Expiry == nil:
		return fail(fmt.Errorf("%w: no exp", ErrBadToken))
	case c.IssuedAt == nil:
		return fail(fmt.Errorf("%w: no iat", ErrBadToken))
	case c.Issuer == "":
		return fail(fmt.Errorf("%w: no iss", ErrBadToken))
	}
	err = c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: v.opts.Issuer, Time: v.opts.Now()}, v.opts.Leeway)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return fail(ErrExpired)
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return fail(ErrWrongIssuer)
	case err != nil:
		return fail(fmt.Errorf("%w: %v", ErrBadToken, err))
	}
	if life := c.Expiry.Time().Sub(c.IssuedAt.Time()); life > v.opts.MaxTTL {
		return fail(fmt.Errorf("%w: %v, over %v", ErrLifetime, life, v.opts.MaxTTL))
	}
	if !c.Role.Valid() {
		return fail(fmt.Errorf("%w: role claim %q", ErrBadToken, c.Role))
	}
	if err := validSubject(c.Subject); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrBadToken, err))
	}
	return Principal{Subject: c.Subject, Role: c.Role}, c.Expiry.Time(), nil
}

// BearerToken returns the token of an Authorization header: ErrNoToken when h
// has none, an error wrapping ErrBadToken when it is not one "Bearer TOKEN"
// (the scheme is case-insensitive, RFC 9110 section 11.1).
func BearerToken(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", ErrNoToken
	case 1:
	default:
		return "", fmt.Errorf("%w: more than one Authorization header", ErrBadToken)
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: not a Bearer credential", ErrBadToken)
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", fmt.Errorf("%w: not a Bearer credential", ErrBadToken)
	}
	return tok, nil
}

// Authenticate returns the principal of a request's Authorization header.
func (v *Verifier) Authenticate(h http.Header) (Principal, error) {
	tok, err := BearerToken(h)
	if err != nil {
		return Principal{}, err
	}
	return v.Verify(tok)
}
