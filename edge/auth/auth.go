// Package auth makes and checks the bearer tokens of people (security.md, "People:
// bearer tokens"): JSON Web Tokens signed with EdDSA (Ed25519) through go-jose,
// carrying the claims sub, role, iss, iat and exp, with the signing key's kid in
// the header.
//
// Nodes verify tokens against a JSON Web Key Set of public keys (LoadKeySet), so an
// outside identity provider can issue tokens instead of Issue, and keys rotate by
// kid: a set may hold several keys, a token names the one that signed it, and a
// key removed from the set stops every token it signed.
//
// Init writes a key directory (the private signing key and the public key set),
// Issue signs a token with it, Rotate replaces the signing key and keeps the old
// public key in the set until the operator removes it.
//
// Errors are values: ErrNoToken (no Authorization header) and ErrBadToken
// (everything else that makes a token unacceptable: malformed, badly signed,
// expired, unknown kid, missing or wrong claims) answer 401; the finer sentinels
// ErrExpired and ErrUnknownKey wrap ErrBadToken.
package auth

import (
	"errors"
	"fmt"
)

// Role is what a token's holder is to the engine: the "role" claim.
type Role string

// The roles of security.md.
const (
	// RoleClient is a person who books; the token's sub is their client id.
	RoleClient Role = "client"
	// RoleProvider is a person whose calendar takes bookings; sub is the provider id.
	RoleProvider Role = "provider"
	// RoleOperator runs the cluster; sub names the operator.
	RoleOperator Role = "operator"
)

// Roles lists every role, in the order of security.md's table.
var Roles = []Role{RoleClient, RoleProvider, RoleOperator}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool {
	switch r {
	case RoleClient, RoleProvider, RoleOperator:
		return true
	}
	return false
}

// ParseRole returns the role named s, or an error wrapping ErrBadRole.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("%w: %q (want client, provider or operator)", ErrBadRole, s)
	}
	return r, nil
}

// Principal is who a verified token speaks for.
type Principal struct {
	// Subject is the token's sub: a client id, a provider id or an operator's name.
	Subject string
	// Role is the token's role claim.
	Role Role
}

// Sentinel errors. Wrapped with %w; test them with errors.Is.
var (
	// ErrNoToken: the request carries no Authorization header. Answer 401.
	ErrNoToken = errors.New("auth: no bearer token")
	// ErrBadToken: the token cannot be accepted (malformed, not Bearer, badly
	// signed, expired, unknown kid, missing or invalid claims). Answer 401.
	ErrBadToken = errors.New("auth: invalid bearer token")
	// ErrExpired: the token's exp has passed. It wraps ErrBadToken.
	ErrExpired = fmt.Errorf("%w: expired", ErrBadToken)
	// ErrUnknownKey: the token's kid names no key of the set. It wraps ErrBadToken.
	ErrUnknownKey = fmt.Errorf("%w: unknown key id", ErrBadToken)
	// ErrWrongIssuer: the token's iss is not the issuer the verifier pins. It
	// wraps ErrBadToken.
	ErrWrongIssuer = fmt.Errorf("%w: not of the accepted issuer", ErrBadToken)
	// ErrLifetime: the token lives (exp − iat) longer than the verifier accepts.
	// It wraps ErrBadToken.
	ErrLifetime = fmt.Errorf("%w: lifetime over the maximum", ErrBadToken)
	// ErrBadTTL: Issue was asked for a lifetime over the signer's MaxTTL.
	ErrBadTTL = errors.New("auth: token lifetime over the maximum")
	// ErrBadRole: a role that is not one of Roles.
	ErrBadRole = errors.New("auth: unknown role")
	// ErrBadSubject: an empty, too long or non-printable subject.
	ErrBadSubject = errors.New("auth: invalid subject")
	// ErrKeyExists: Init found a key directory already made; it overwrites nothing.
	ErrKeyExists = errors.New("auth: key directory already initialised")
	// ErrBadKeySet: a key set or signing key file that cannot be used (unreadable,
	// not JSON, a key that is not Ed25519, a key without kid, private material in
	// the public set, no key at all).
	ErrBadKeySet = errors.New("auth: unusable key file")
)

// MaxSubjectLen bounds a subject's length in bytes.
const MaxSubjectLen = 256

// validSubject reports an error wrapping ErrBadSubject unless sub is 1..MaxSubjectLen
// printable ASCII characters without spaces.
func validSubject(sub string) error {
	if sub == "" || len(sub) > MaxSubjectLen {
		return fmt.Errorf("%w: length %d (want 1..%d)", ErrBadSubject, len(sub), MaxSubjectLen)
	}
	for i := 0; i < len(sub); i++ {
		if c := sub[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%w: byte %d is not printable ASCII", ErrBadSubject, i)
		}
	}
	return nil
}
