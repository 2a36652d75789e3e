package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/pki"
)

type staticMembers []membership.Member

func (s staticMembers) Members() []membership.Member    { return s }
func (s staticMembers) AllMembers() []membership.Member { return s }

// TestMemberCreds_DialReachesOnlyTheMemberDialed: the actor remote's dial
// completes its handshake only with the verified member whose actor address it
// dialed, and only if the server's certificate names that member's node id and
// jurisdiction (review 8, finding 5: any node of the CA holding the IP was
// accepted).
func TestMemberCreds_DialReachesOnlyTheMemberDialed(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if err := pki.InitCA(ca); err != nil {
		t.Fatal(err)
	}
	issue := func(id pki.Identity, ip string) *pki.Material {
		out := filepath.Join(dir, id.NodeID)
		if err := pki.Issue(ca, id, []net.IP{net.ParseIP(ip)}, out); err != nil {
			t.Fatal(err)
		}
		m, err := pki.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	self := issue(pki.Identity{Jurisdiction: "ar", City: "buenos-aires", NodeID: "ba-1"}, "127.0.0.1")
	// A node of the CA at 127.0.0.1, but cba-1 of ar.
	server := issue(pki.Identity{Jurisdiction: "ar", City: "cordoba", NodeID: "cba-1"}, "127.0.0.1")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server.ServerTLS(pki.AnyNode))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = c.Read(make([]byte, 1))
			}()
		}
	}()
	addr := ln.Addr().String()
	dial := func(members ...membership.Member) error {
		creds := &memberCreds{tls: self, members: staticMembers(members)}
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, _, err = creds.ClientHandshake(ctx, addr, raw)
		return err
	}
	member := func(id, city, jur string) membership.Member {
		return membership.Member{Meta: membership.Meta{NodeID: id, City: city, Jurisdiction: jur, ActorAddr: addr}}
	}
	if err := dial(member("cba-1", "cordoba", "ar")); err != nil {
		t.Fatalf("dial to the member whose certificate it is: %v", err)
	}
	if err := dial(member("ba-2", "buenos-aires", "ar")); err == nil {
		t.Fatal("dial to ba-2 accepted cba-1's certificate")
	}
	if err := dial(member("cba-1", "cordoba", "us")); err == nil {
		t.Fatal("dial to a us member accepted an ar certificate")
	}
	if err := dial(); !errors.Is(err, errNotAMember) {
		t.Fatalf("dial to an address no verified member gossips: %v", err)
	}
}
