package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Material is a node's certificate, key and cluster CA, loaded by Load. It is
// immutable and safe for concurrent use.
type Material struct {
	// Identity is what the node certificate asserts.
	Identity Identity
	// Leaf is the parsed node certificate.
	Leaf *x509.Certificate

	cert  tls.Certificate
	roots *x509.CertPool
}

// Load reads dir/ca.crt, dir/node.crt and dir/node.key, and checks that the key
// belongs to the certificate, that the certificate names one node identity and IP
// addresses, and that the CA bundle verifies it now (not expired, not yet valid or of
// another CA all fail with ErrBadMaterial, saying which).
func Load(dir string) (*Material, error) { return loadAt(dir, time.Now()) }

func loadAt(dir string, now time.Time) (*Material, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMaterial, err)
		}
		return b, nil
	}
	caPEM, err := read(CACertFile)
	if err != nil {
		return nil, err
	}
	certPEM, err := read(NodeCertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read(NodeKeyFile)
	if err != nil {
		return nil, err
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadMaterial, filepath.Join(dir, CACertFile), err)
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s and %s: %v", ErrBadMaterial, NodeCertFile, NodeKeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadMaterial, NodeCertFile, err)
		}
		cert.Leaf = leaf
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("%w: %s does not verify against %s: %v", ErrBadMaterial,
			filepath.Join(dir, NodeCertFile), CACertFile, err)
	}
	id, err := CertIdentity(leaf)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadMaterial, filepath.Join(dir, NodeCertFile), err)
	}
	if len(leaf.IPAddresses) == 0 {
		return nil, fmt.Errorf("%w: %s names no IP address", ErrBadMaterial, filepath.Join(dir, NodeCertFile))
	}
	return &Material{Identity: id, Leaf: leaf, cert: cert, roots: roots}, nil
}

// IPs returns the IP addresses the node certificate is valid for.
func (m *Material) IPs() []net.IP { return slices.Clone(m.Leaf.IPAddresses) }

// HasIP reports whether the node certificate is valid for ip.
func (m *Material) HasIP(ip net.IP) bool {
	return slices.ContainsFunc(m.Leaf.IPAddresses, func(x net.IP) bool { return x.Equal(ip) })
}

// Roots returns the cluster CA pool (a copy).
func (m *Material) Roots() *x509.CertPool { return m.roots.Clone() }

// ServerTLS returns the configuration of a node-to-node listener: TLS 1.3 only, the
// node certificate, and a client certificate required and verified against the
// cluster CA; the handshake then fails unless allow accepts the client certificate's
// Identity. allow must be safe for concurrent use; nil means AnyNode.
func (m *Material) ServerTLS(allow func(Identity) error) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{m.cert},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        m.roots,
		VerifyConnection: verifyWith(allow),
		// Every connection proves its certificate afresh: no resumption from tickets.
		SessionTicketsDisabled: true,
	}
}

// ClientTLS returns the configuration of a node-to-node dial: TLS 1.3 only, the node
// certificate as client certificate, and the server's certificate verified against the
// cluster CA and against ServerName — set it to the dialed IP (tls.Dial, net/http and
// gRPC do so from the address) so the server must hold a certificate for the IP it was
// dialed at. Then allow must accept the server certificate's Identity. nil allow means
// AnyNode.
func (m *Material) ClientTLS(allow func(Identity) error) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{m.cert},
		RootCAs:          m.roots,
		VerifyConnection: verifyWith(allow),
	}
}

// APITLS returns the configuration of the public API listener (--api-tls): TLS 1.3
// only, the node certificate, no client certificate asked for. Clients verify it with
// ca.crt and the node's IP.
func (m *Material) APITLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.cert},
	}
}

// verifyWith runs after the standard chain and name checks (crypto/tls calls
// VerifyConnection last), so the identity it reads is one the cluster CA signed.
func verifyWith(allow func(Identity) error) func(tls.ConnectionState) error {
	if allow == nil {
		allow = AnyNode
	}
	return func(cs tls.ConnectionState) error {
		id, err := PeerIdentity(cs)
		if err != nil {
			return err
		}
		return allow(id)
	}
}

// PeerTLS returns one configuration for a channel whose ends both accept and dial
// (Raft's transport): as a server it is ServerTLS(allow), as a client ClientTLS(allow)
// (set ServerName to the dialed IP on a clone before dialing).
func (m *Material) PeerTLS(allow func(Identity) error) *tls.Config {
	c := m.ServerTLS(allow)
	c.RootCAs = m.roots
	return c
}
