package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// URIScheme and uriHost form the URI SAN of a node certificate:
// barberpro://node/<jurisdiction>/<city>/<node-id>.
const (
	URIScheme = "barberpro"
	uriHost   = "node"
)

// Identity is what a node certificate asserts about its node.
type Identity struct {
	// Jurisdiction is the legal area whose data the node may hold ("ar", "us").
	Jurisdiction string
	// City is the edge location the node serves ("buenos-aires").
	City string
	// NodeID is the node's id, also its Raft server id ("ba-1").
	NodeID string
}

// namePart is what each of the three parts may hold: lower-case letters, digits, '-',
// '_' and '.', starting with a letter or digit.
var namePart = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Validate reports whether every part of id is present and well formed.
func (id Identity) Validate() error {
	for _, p := range []struct{ name, v string }{
		{"jurisdiction", id.Jurisdiction}, {"city", id.City}, {"node id", id.NodeID},
	} {
		if !namePart.MatchString(p.v) {
			return fmt.Errorf("%w: %s %q must be 1-63 of [a-z0-9._-], starting with a letter or digit",
				ErrBadIdentity, p.name, p.v)
		}
	}
	return nil
}

// URI returns the certificate's URI SAN for id: barberpro://node/ar/buenos-aires/ba-1.
func (id Identity) URI() string {
	return URIScheme + "://" + uriHost + "/" + id.Jurisdiction + "/" + id.City + "/" + id.NodeID
}

// String returns id.URI().
func (id Identity) String() string { return id.URI() }

// ParseIdentity parses a URI SAN made by Identity.URI.
func ParseIdentity(uri string) (Identity, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrBadIdentity, err)
	}
	return identityOf(u)
}

func identityOf(u *url.URL) (Identity, error) {
	if u.Scheme != URIScheme || u.Host != uriHost || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Identity{}, fmt.Errorf("%w: %q is not a %s://%s/ URI", ErrBadIdentity, u.String(), URIScheme, uriHost)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 3 {
		return Identity{}, fmt.Errorf("%w: %q must name jurisdiction/city/node-id", ErrBadIdentity, u.String())
	}
	id := Identity{Jurisdiction: parts[0], City: parts[1], NodeID: parts[2]}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// CertIdentity returns the Identity named by cert's one barberpro URI SAN. A certificate
// with none, or more than one, names no identity (ErrNoIdentity).
func CertIdentity(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != URIScheme {
			continue
		}
		id, err := identityOf(u)
		if err != nil {
			return Identity{}, err
		}
		found = append(found, id)
	}
	if len(found) != 1 {
		return Identity{}, fmt.Errorf("%w: certificate has %d %s URI SANs, want 1", ErrNoIdentity, len(found), URIScheme)
	}
	return found[0], nil
}

// PeerIdentity returns the Identity of the peer of a completed handshake, from its
// verified leaf certificate. Configurations from ServerTLS and ClientTLS verify the
// chain against the cluster CA before allow sees it; cs from any other configuration
// proves nothing.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, fmt.Errorf("%w: the peer sent no certificate", ErrNoIdentity)
	}
	return CertIdentity(cs.PeerCertificates[0])
}

// SameJurisdiction returns an allow check that accepts peers whose certificate names
// jurisdiction j.
func SameJurisdiction(j string) func(Identity) error {
	return func(id Identity) error {
		if id.Jurisdiction != j {
			return fmt.Errorf("%w: peer %s is of jurisdiction %q, not %q", ErrNotAllowed, id.NodeID, id.Jurisdiction, j)
		}
		return nil
	}
}

// AnyNode is an allow check that accepts every peer with a valid certificate of the
// cluster CA.
func AnyNode(Identity) error { return nil }
