package pki

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var (
	arBA  = Identity{Jurisdiction: "ar", City: "buenos-aires", NodeID: "ba-1"}
	arBA2 = Identity{Jurisdiction: "ar", City: "buenos-aires", NodeID: "ba-2"}
	usNY  = Identity{Jurisdiction: "us", City: "new-york", NodeID: "ny-1"}
	ip1   = net.ParseIP("127.0.0.11")
	ip2   = net.ParseIP("127.0.0.12")
)

func mustCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := InitCA(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustNode(t *testing.T, ca string, id Identity, o IssueOptions, ips ...net.IP) *Material {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id.NodeID)
	if err := IssueWith(ca, id, ips, dir, o); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if !o.NotBefore.IsZero() {
		at = o.NotBefore.Add(time.Minute)
	}
	m, err := loadAt(dir, at)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// handshake runs a TLS handshake over an in-memory pipe and returns both sides'
// errors and the identity each saw.
func handshake(t *testing.T, client, server *tls.Config) (clientErr, serverErr error, sawServer, sawClient Identity) {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tc := tls.Server(s, server)
		serverErr = tc.Handshake()
		if serverErr == nil {
			sawClient, _ = PeerIdentity(tc.ConnectionState())
		}
		s.Close()
	}()
	tc := tls.Client(c, client)
	clientErr = tc.Handshake()
	if clientErr == nil {
		// In TLS 1.3 the server verifies the client's certificate after the client
		// finished: read to learn the server's verdict.
		tc.SetReadDeadline(time.Now().Add(2 * time.Second))
		var b [1]byte
		if _, err := tc.Read(b[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "closed pipe") {
			clientErr = err
		}
		sawServer, _ = PeerIdentity(tc.ConnectionState())
	}
	c.Close()
	<-done
	return
}

func withName(c *tls.Config, ip net.IP) *tls.Config {
	c = c.Clone()
	c.ServerName = ip.String()
	return c
}

func TestIdentity_URIRoundTrip(t *testing.T) {
	u := arBA.URI()
	if u != "barberpro://node/ar/buenos-aires/ba-1" {
		t.Fatalf("URI = %q", u)
	}
	got, err := ParseIdentity(u)
	if err != nil || got != arBA {
		t.Fatalf("ParseIdentity(%q) = %+v, %v", u, got, err)
	}
	for _, bad := range []string{
		"https://node/ar/buenos-aires/ba-1", "barberpro://ca/ar/buenos-aires/ba-1",
		"barberpro://node/ar/buenos-aires", "barberpro://node/ar/buenos-aires/ba-1/x",
		"barberpro://node/AR/buenos-aires/ba-1", "barberpro://node/ar//ba-1",
		"barberpro://node/ar/buenos-aires/ba-1?x=1",
	} {
		if _, err := ParseIdentity(bad); !errors.Is(err, ErrBadIdentity) {
			t.Errorf("ParseIdentity(%q) = %v, want ErrBadIdentity", bad, err)
		}
	}
}

func TestInitCA_RefusesToOverwrite(t *testing.T) {
	ca := mustCA(t)
	if err := InitCA(ca); !errors.Is(err, ErrExists) {
		t.Fatalf("second InitCA = %v, want ErrExists", err)
	}
	if fi, err := os.Stat(filepath.Join(ca, CAKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode: %v %v", fi.Mode(), err)
	}
	out := t.TempDir()
	if err := Issue(ca, arBA, []net.IP{ip1}, out); err != nil {
		t.Fatal(err)
	}
	if err := Issue(ca, arBA, []net.IP{ip1}, out); !errors.Is(err, ErrExists) {
		t.Fatalf("second Issue = %v, want ErrExists", err)
	}
	if fi, err := os.Stat(filepath.Join(out, NodeKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("node.key mode: %v %v", fi.Mode(), err)
	}
}

func TestIssue_LoadNamesIdentityAndIPs(t *testing.T) {
	ca := mustCA(t)
	out := t.TempDir()
	if err := Issue(ca, arBA, []net.IP{ip1, ip2}, out); err != nil {
		t.Fatal(err)
	}
	m, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Identity != arBA || !m.HasIP(ip1) || !m.HasIP(ip2) || m.HasIP(net.ParseIP("127.0.0.13")) {
		t.Fatalf("loaded %+v ips %v", m.Identity, m.IPs())
	}
	if err := Issue(ca, arBA, nil, t.TempDir()); !errors.Is(err, ErrBadIdentity) {
		t.Fatalf("Issue without IP = %v", err)
	}
	if err := Issue(ca, Identity{Jurisdiction: "ar", NodeID: "x"}, []net.IP{ip1}, t.TempDir()); !errors.Is(err, ErrBadIdentity) {
		t.Fatalf("Issue without city = %v", err)
	}
}

func TestLoad_RefusesExpiredAndOtherCA(t *testing.T) {
	ca, other := mustCA(t), mustCA(t)
	expired := t.TempDir()
	past := time.Now().Add(-48 * time.Hour)
	if err := IssueWith(ca, arBA, []net.IP{ip1}, expired, IssueOptions{NotBefore: past, NotAfter: past.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(expired); !errors.Is(err, ErrBadMaterial) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Load(expired) = %v", err)
	}
	mixed := t.TempDir()
	if err := Issue(ca, arBA, []net.IP{ip1}, mixed); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(other, CACertFile))
	os.WriteFile(filepath.Join(mixed, CACertFile), b, 0o644)
	if _, err := Load(mixed); !errors.Is(err, ErrBadMaterial) {
		t.Fatalf("Load(cert of another CA) = %v", err)
	}
}

func TestTLS_MutualHandshake(t *testing.T) {
	ca := mustCA(t)
	srv := mustNode(t, ca, arBA, IssueOptions{}, ip1)
	cli := mustNode(t, ca, arBA2, IssueOptions{}, ip2)
	ce, se, sawServer, sawClient := handshake(t, withName(cli.ClientTLS(SameJurisdiction("ar")), ip1), srv.ServerTLS(SameJurisdiction("ar")))
	if ce != nil || se != nil {
		t.Fatalf("client %v, server %v", ce, se)
	}
	if sawServer != arBA || sawClient != arBA2 {
		t.Fatalf("saw server %+v, client %+v", sawServer, sawClient)
	}
	if cs := srv.ServerTLS(nil); cs.MinVersion != tls.VersionTLS13 || cli.ClientTLS(nil).MinVersion != tls.VersionTLS13 || srv.APITLS().MinVersion != tls.VersionTLS13 {
		t.Fatal("configs must be TLS 1.3 only")
	}
}

func TestTLS_RefusesExpiredCertificate(t *testing.T) {
	ca := mustCA(t)
	// Within the CA's validity (it starts 5 minutes before now), expired a minute ago.
	past := time.Now().Add(-4 * time.Minute)
	old := IssueOptions{NotBefore: past, NotAfter: past.Add(3 * time.Minute)}
	srv := mustNode(t, ca, arBA, IssueOptions{}, ip1)
	cli := mustNode(t, ca, arBA2, IssueOptions{}, ip2)
	expiredCli := mustNode(t, ca, arBA2, old, ip2)
	expiredSrv := mustNode(t, ca, arBA, old, ip1)
	if _, se, _, _ := handshake(t, withName(expiredCli.ClientTLS(nil), ip1), srv.ServerTLS(nil)); se == nil || !strings.Contains(se.Error(), "expired") {
		t.Fatalf("server accepted an expired client certificate: %v", se)
	}
	if ce, _, _, _ := handshake(t, withName(cli.ClientTLS(nil), ip1), expiredSrv.ServerTLS(nil)); ce == nil || !strings.Contains(ce.Error(), "expired") {
		t.Fatalf("client accepted an expired server certificate: %v", ce)
	}
}

func TestTLS_RefusesOtherCA(t *testing.T) {
	ca, other := mustCA(t), mustCA(t)
	srv := mustNode(t, ca, arBA, IssueOptions{}, ip1)
	cli := mustNode(t, ca, arBA2, IssueOptions{}, ip2)
	foreignCli := mustNode(t, other, arBA2, IssueOptions{}, ip2)
	foreignSrv := mustNode(t, other, arBA, IssueOptions{}, ip1)
	if _, se, _, _ := handshake(t, withName(foreignCli.ClientTLS(nil), ip1), srv.ServerTLS(nil)); se == nil {
		t.Fatal("server accepted a client certificate of another CA")
	}
	if ce, _, _, _ := handshake(t, withName(cli.ClientTLS(nil), ip1), foreignSrv.ServerTLS(nil)); ce == nil {
		t.Fatal("client accepted a server certificate of another CA")
	}
	// No client certificate at all.
	bare := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: cli.Roots(), ServerName: ip1.String()}
	if _, se, _, _ := handshake(t, bare, srv.ServerTLS(nil)); se == nil {
		t.Fatal("server accepted a client without a certificate")
	}
}

func TestTLS_ClientChecksDialedIP(t *testing.T) {
	ca := mustCA(t)
	srv := mustNode(t, ca, arBA, IssueOptions{}, ip1)
	cli := mustNode(t, ca, arBA2, IssueOptions{}, ip2)
	ce, _, _, _ := handshake(t, withName(cli.ClientTLS(nil), ip2), srv.ServerTLS(nil))
	if ce == nil || !strings.Contains(ce.Error(), "127.0.0.12") {
		t.Fatalf("client accepted a server certificate for another IP: %v", ce)
	}
	if ce, _, _, _ := handshake(t, cli.ClientTLS(nil), srv.ServerTLS(nil)); ce == nil {
		t.Fatal("client without ServerName accepted the server")
	}
}

func TestTLS_AllowRefusesOtherJurisdiction(t *testing.T) {
	ca := mustCA(t)
	ar := mustNode(t, ca, arBA, IssueOptions{}, ip1)
	us := mustNode(t, ca, usNY, IssueOptions{}, ip2)
	// A us client at an ar server.
	if _, se, _, _ := handshake(t, withName(us.ClientTLS(nil), ip1), ar.ServerTLS(SameJurisdiction("ar"))); !errors.Is(se, ErrNotAllowed) {
		t.Fatalf("ar server accepted a us client: %v", se)
	}
	// An ar client dialing what it expects to be an ar server, which is us.
	if ce, _, _, _ := handshake(t, withName(ar.ClientTLS(SameJurisdiction("ar")), ip2), us.ServerTLS(nil)); !errors.Is(ce, ErrNotAllowed) {
		t.Fatalf("ar client accepted a us server: %v", ce)
	}
}

func TestTLS_PeerTLSServesBothRoles(t *testing.T) {
	ca := mustCA(t)
	a := mustNode(t, ca, arBA, IssueOptions{}, ip1)
	b := mustNode(t, ca, arBA2, IssueOptions{}, ip2)
	us := mustNode(t, ca, usNY, IssueOptions{}, ip2)
	allow := SameJurisdiction("ar")
	if ce, se, _, _ := handshake(t, withName(b.PeerTLS(allow), ip1), a.PeerTLS(allow)); ce != nil || se != nil {
		t.Fatalf("client %v, server %v", ce, se)
	}
	if _, se, _, _ := handshake(t, withName(us.PeerTLS(nil), ip1), a.PeerTLS(allow)); !errors.Is(se, ErrNotAllowed) {
		t.Fatalf("ar peer accepted a us peer: %v", se)
	}
}
