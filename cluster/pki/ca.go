package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// File names in a CA directory (CACertFile, CAKeyFile) and a node directory
// (CACertFile, NodeCertFile, NodeKeyFile).
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

// Default validity periods.
const (
	// CAValidity is how long a CA made by InitCA is valid: 10 years.
	CAValidity = 10 * 365 * 24 * time.Hour
	// NodeValidity is how long a certificate made by Issue is valid: 1 year.
	NodeValidity = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so a node whose clock runs a little behind the
	// issuer's accepts a fresh certificate.
	clockSkew = 5 * time.Minute
)

// InitCA makes a cluster CA in dir (created 0700 if missing): ca.crt and ca.key (0600,
// PKCS #8), an ECDSA P-256 key valid for CAValidity. It refuses to overwrite either file
// (ErrExists).
func InitCA(dir string) error {
	if err := refuseExisting(dir, CACertFile, CAKeyFile); err != nil {
		return err
	}
	key, serial, err := newKey()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"BarberPro"}, CommonName: "BarberPro cluster CA"},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	return writePair(dir, CAKeyFile, CACertFile, key, der)
}

// writePair writes key (0600) and certificate der (0644) as new files in dir,
// created 0700 if missing.
func writePair(dir, keyFile, certFile string, key crypto.Signer, der []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, keyFile), key); err != nil {
		return err
	}
	return writeNew(filepath.Join(dir, certFile), pemBlock("CERTIFICATE", der), 0o644)
}

// IssueOptions tunes Issue; the zero value gives the defaults.
type IssueOptions struct {
	// NotBefore is when the certificate becomes valid. Default: now minus 5 minutes.
	NotBefore time.Time
	// NotAfter is when it expires. Default: NotBefore plus NodeValidity.
	NotAfter time.Time
}

// Issue makes a node certificate for id, signed by the CA in caDir, valid for the IP
// addresses ips (at least one: the address the node binds), and writes outDir/ca.crt
// (the CA bundle), outDir/node.crt and outDir/node.key (0600). It refuses to overwrite
// a node certificate or key (ErrExists).
func Issue(caDir string, id Identity, ips []net.IP, outDir string) error {
	return IssueWith(caDir, id, ips, outDir, IssueOptions{})
}

// IssueWith is Issue with options (tests issue expired or not-yet-valid certificates
// with it).
func IssueWith(caDir string, id Identity, ips []net.IP, outDir string, o IssueOptions) error {
	if err := id.Validate(); err != nil {
		return err
	}
	if len(ips) == 0 {
		return fmt.Errorf("%w: a node certificate needs at least one IP address", ErrBadIdentity)
	}
	for _, ip := range ips {
		if ip == nil || ip.IsUnspecified() {
			return fmt.Errorf("%w: %v is not an address a node can be dialed at", ErrBadIdentity, ip)
		}
	}
	caPEM, caCert, caKey, err := loadCA(caDir)
	if err != nil {
		return err
	}
	if err := refuseExisting(outDir, NodeCertFile, NodeKeyFile); err != nil {
		return err
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-clockSkew)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = o.NotBefore.Add(NodeValidity)
	}
	if !o.NotAfter.After(o.NotBefore) {
		return fmt.Errorf("%w: NotAfter %v is not after NotBefore %v", ErrBadMaterial, o.NotAfter, o.NotBefore)
	}
	key, serial, err := newKey()
	if err != nil {
		return err
	}
	uri, err := url.Parse(id.URI())
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization:       []string{"BarberPro"},
			OrganizationalUnit: []string{id.Jurisdiction},
			Locality:           []string{id.City},
			CommonName:         id.NodeID,
		},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{uri},
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return err
	}
	if err := writePair(outDir, NodeKeyFile, NodeCertFile, key, der); err != nil {
		return err
	}
	// The CA bundle may already be there (a directory reissued after expiry): it is
	// public, so replace it with the issuing CA's.
	return os.WriteFile(filepath.Join(outDir, CACertFile), caPEM, 0o644)
}

// loadCA reads caDir's bundle and key; the bundle's first certificate is the one the
// key belongs to.
func loadCA(caDir string) (bundle []byte, cert *x509.Certificate, key crypto.Signer, err error) {
	bundle, err = os.ReadFile(filepath.Join(caDir, CACertFile))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrBadMaterial, err)
	}
	certs, err := parseCerts(bundle)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %s: %v", ErrBadMaterial, CACertFile, err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(caDir, CAKeyFile))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrBadMaterial, err)
	}
	key, err = parseKey(keyPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %s: %v", ErrBadMaterial, CAKeyFile, err)
	}
	cert = certs[0]
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, nil, nil, fmt.Errorf("%w: %s does not belong to the first certificate of %s", ErrBadMaterial, CAKeyFile, CACertFile)
	}
	if !cert.IsCA {
		return nil, nil, nil, fmt.Errorf("%w: the first certificate of %s is not a CA", ErrBadMaterial, CACertFile)
	}
	return bundle, cert, key, nil
}

func parseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

func parseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PRIVATE KEY (PKCS #8)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", k)
	}
	return s, nil
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeNew(path, pemBlock("PRIVATE KEY", der), 0o600)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writeNew creates path with mode perm; it fails with ErrExists if path exists.
func writeNew(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s", ErrExists, path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func refuseExisting(dir string, names ...string) error {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// newKey returns a new ECDSA P-256 key and a random 127-bit serial number for its
// certificate.
func newKey() (*ecdsa.PrivateKey, *big.Int, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	return key, serial, nil
}
