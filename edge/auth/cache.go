package auth

import (
	"sync"
	"time"
)

// TokenCache hands out one token per role and subject, signed once by its
// Signer and reused until a quarter of its TTL is left: load tools and test
// harnesses that speak as many subjects call Token on every request.
// Safe for concurrent use.
type TokenCache struct {
	signer *Signer
	ttl    time.Duration

	mu     sync.Mutex
	tokens map[string]cachedToken
}

type cachedToken struct {
	token string
	renew time.Time
}

// NewTokenCache returns a cache of tokens signed by s, valid for ttl
// (DefaultTTL when ttl <= 0).
func NewTokenCache(s *Signer, ttl time.Duration) *TokenCache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &TokenCache{signer: s, ttl: ttl, tokens: map[string]cachedToken{}}
}

// Token returns a valid token for sub in role.
func (c *TokenCache) Token(role Role, sub string) (string, error) {
	k := string(role) + "\x00" + sub
	now := c.signer.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.tokens[k]; ok && now.Before(t.renew) {
		return t.token, nil
	}
	tok, err := c.signer.Issue(role, sub, c.ttl)
	if err != nil {
		return "", err
	}
	c.tokens[k] = cachedToken{token: tok, renew: now.Add(c.ttl * 3 / 4)}
	return tok, nil
}
