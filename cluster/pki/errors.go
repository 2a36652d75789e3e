package pki

import "errors"

// Sentinel errors of the package; every error it returns about one of these wraps it.
var (
	// ErrExists: InitCA or Issue would overwrite a key or certificate.
	ErrExists = errors.New("pki: file exists, refusing to overwrite")
	// ErrBadIdentity: an identity, or a URI SAN, is malformed.
	ErrBadIdentity = errors.New("pki: bad identity")
	// ErrNoIdentity: a certificate names no node identity (none, or several).
	ErrNoIdentity = errors.New("pki: no node identity in certificate")
	// ErrBadMaterial: a CA or node directory is missing a file, holds something that
	// does not parse, or a certificate the CA did not sign, or that is expired.
	ErrBadMaterial = errors.New("pki: bad certificate material")
	// ErrNotAllowed: the peer's certificate is valid but its identity may not use the
	// channel (wrapped by the checks SameJurisdiction returns).
	ErrNotAllowed = errors.New("pki: peer not allowed")
)
