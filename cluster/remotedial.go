package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/pki"
)

// memberCreds are the gRPC client credentials of the actor remote's dials: mutual
// TLS 1.3 against the cluster CA from the node certificate, to a verified member
// only — the one whose ActorAddr is the address dialed — and the server's
// certificate must name that member's node id and jurisdiction (as dialPeer does
// for relays), not merely be a node of the CA at the dialed IP. protoactor dials
// a PID's address as gRPC's target, so the authority is that address.
type memberCreds struct {
	tls     *pki.Material
	members memberLister
}

var _ credentials.TransportCredentials = (*memberCreds)(nil)

// errNotAMember: the actor remote dialed an address no verified member gossips.
var errNotAMember = errors.New("cluster: actor remote: no verified member at that address")

// member is the verified member whose actor address is addr.
func (c *memberCreds) member(addr string) (membership.Member, error) {
	for _, m := range c.members.Members() {
		if m.ActorAddr == addr {
			return m, nil
		}
	}
	return membership.Member{}, fmt.Errorf("%w: %s", errNotAMember, addr)
}

// allowFor accepts only the certificate of m.
func allowFor(m membership.Member, what string) func(pki.Identity) error {
	return func(id pki.Identity) error {
		if id.NodeID != m.NodeID || id.Jurisdiction != m.Jurisdiction {
			return fmt.Errorf("%w: %s to %s (%s) answered by %s", pki.ErrNotAllowed, what, m.NodeID, m.Jurisdiction, id.URI())
		}
		return nil
	}
}

func (c *memberCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	m, err := c.member(authority)
	if err != nil {
		return nil, nil, err
	}
	return credentials.NewTLS(c.tls.ClientTLS(allowFor(m, "actor remote"))).ClientHandshake(ctx, authority, raw)
}

// ServerHandshake is not used: these are dial options (the server's credentials
// are remoteGuard.serverOptions).
func (c *memberCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("cluster: memberCreds dial only")
}

func (c *memberCreds) Info() credentials.ProtocolInfo {
	return credentials.NewTLS(c.tls.ClientTLS(pki.AnyNode)).Info()
}

func (c *memberCreds) Clone() credentials.TransportCredentials {
	return &memberCreds{tls: c.tls, members: c.members}
}

// OverrideServerName is deprecated in gRPC and unused by protoactor: the
// server name is always the dialed host.
func (c *memberCreds) OverrideServerName(string) error { return nil }
