package storage

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestTransportDialsFromItsOwnIP: a Raft connection carries the node's own IP as
// its source (what iptables partitions in the simulations match on), not the
// kernel's pick (127.0.0.1 for any loopback destination).
func TestTransportDialsFromItsOwnIP(t *testing.T) {
	peer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	stream, err := listenBound("127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	defer stream.Close()
	accepted := make(chan net.Addr, 1)
	go func() {
		if c, err := peer.Accept(); err == nil {
			accepted <- c.RemoteAddr()
			c.Close()
		}
	}()
	c, err := stream.Dial(raft.ServerAddress(peer.Addr().String()), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := (<-accepted).(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
		t.Fatalf("raft connection from %s, want 127.0.0.2 (the transport's own IP)", got)
	}
}

// selfSignedTLS is a config that trusts only its own certificate (for 127.0.0.1),
// usable as both server and client: mutual TLS as cluster builds it.
func selfSignedTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, RootCAs: pool,
	}
}

// TestTransport_TLSHandshakeNeverBlocksAccept: with RaftTLS, a peer that connects
// and says nothing, or speaks plain TCP, holds up no other connection: Accept
// returns at once and the handshake runs on the connection's first read, where a
// failure is an error; a proper TLS peer is served meanwhile.
func TestTransport_TLSHandshakeNeverBlocksAccept(t *testing.T) {
	conf := selfSignedTLS(t)
	srv, err := listenBound("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.tls = conf
	readErrs := make(chan error, 8)
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 5)
				_, err := io.ReadFull(c, b)
				if err == nil && string(b) != "hello" {
					err = fmt.Errorf("read %q", b)
				}
				readErrs <- err
			}()
		}
	}()
	silent, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	plain, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.Write([]byte("hello, plain raft\r\n"))
	if err := <-readErrs; err == nil {
		t.Fatal("a plain TCP peer's bytes reached the reader")
	}

	cli, err := listenBound("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	cli.tls = conf
	start := time.Now()
	c, err := cli.Dial(raft.ServerAddress(srv.Addr().String()), time.Second)
	if err != nil {
		t.Fatalf("TLS dial while a silent peer is connected: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := <-readErrs; err != nil {
		t.Fatalf("the TLS peer was not served: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the TLS peer waited %v behind the silent one", d)
	}
}
