package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/pki"
	"github.com/barberpro/edge/edge"
	"github.com/barberpro/edge/storage"
)

// ErrCertificateMismatch is wrapped by the error Start returns when the node's
// flags (ID, City, City's jurisdiction, Bind) disagree with its certificate.
var ErrCertificateMismatch = errors.New("cluster: node certificate disagrees with its configuration")

// loadMaterial loads the node's certificate material from dir and checks that it
// names this node: node id, city, the city's jurisdiction, and the bind IP.
func loadMaterial(dir, id, city, jurisdiction, bind string) (*pki.Material, error) {
	m, err := pki.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("cluster: tls dir: %w", err)
	}
	got := m.Identity
	switch {
	case got.Jurisdiction != jurisdiction:
		return nil, fmt.Errorf("%w: city %q is in jurisdiction %q but the certificate in %s names jurisdiction %q (%s)",
			ErrCertificateMismatch, city, jurisdiction, dir, got.Jurisdiction, got.URI())
	case got.City != city:
		return nil, fmt.Errorf("%w: --city is %q but the certificate in %s names city %q (%s)",
			ErrCertificateMismatch, city, dir, got.City, got.URI())
	case got.NodeID != id:
		return nil, fmt.Errorf("%w: --id is %q but the certificate in %s names node %q (%s)",
			ErrCertificateMismatch, id, dir, got.NodeID, got.URI())
	case !m.HasIP(net.ParseIP(bind)):
		return nil, fmt.Errorf("%w: --bind is %s but the certificate in %s holds IPs %v",
			ErrCertificateMismatch, bind, dir, m.IPs())
	}
	return m, nil
}

// dialPeer opens a relay connection to the peer listener at addr: from this node's
// IP, mutual TLS, and only to a verified member listening there whose certificate
// names the node and jurisdiction the member gossips (the router chose it for that
// jurisdiction). A request is never written to any other.
func (n *Node) dialPeer(ctx context.Context, network, addr string) (net.Conn, error) {
	var target *membership.Member
	for _, m := range n.verified.Members() {
		if m.PeerAddr == addr {
			target = &m
			break
		}
	}
	if target == nil {
		return nil, fmt.Errorf("cluster: relay to %s: no verified member listens there", addr)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	want := *target
	conf := n.tls.ClientTLS(func(id pki.Identity) error {
		if id.NodeID != want.NodeID || id.Jurisdiction != want.Jurisdiction {
			return fmt.Errorf("%w: relay to %s (%s) answered by %s", pki.ErrNotAllowed, want.NodeID, want.Jurisdiction, id.URI())
		}
		return nil
	})
	conf.ServerName = host
	raw, err := n.dialer().DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, conf)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("cluster: relay to %s: %w", addr, err)
	}
	return c, nil
}

// removeElsewhere relays `cluster remove id` to a verified node of jurisdiction j,
// over the peer listener (mutual TLS): that node reaches its own group's leader.
// The operator's token goes along (the far node checks it again), and so does
// force (the far node checks liveness again, by its own gossip view).
func (n *Node) removeElsewhere(ctx context.Context, j, id string, force bool) error {
	var errs []error
	for _, m := range n.verified.Members() {
		if m.Jurisdiction != j || m.PeerAddr == "" || m.Leaving {
			continue
		}
		u := "https://" + m.PeerAddr + "/v1/cluster/members/" + url.PathEscape(id) + "/remove"
		if force {
			u += "?force=true"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader([]byte("{}")))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(edge.ForwardedByHeader, n.cfg.ID)
		req.Header.Set("Authorization", edge.Authorization(ctx))
		resp, err := n.relayClient().Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 2:
			return nil
		case resp.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: %q (per %s)", edge.ErrUnknownMember, id, m.NodeID)
		case resp.StatusCode == http.StatusConflict && bytes.Contains(body, []byte(`"member_alive"`)):
			return fmt.Errorf("cluster: %q (per %s): %w", id, m.NodeID, edge.ErrMemberAlive)
		case resp.StatusCode == http.StatusServiceUnavailable:
			errs = append(errs, fmt.Errorf("%w: %s: %s", storage.ErrNotLeader, m.NodeID, bytes.TrimSpace(body)))
		default:
			return fmt.Errorf("cluster: remove %s through %s: %s: %s", id, m.NodeID, resp.Status, bytes.TrimSpace(body))
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: no verified live node of %q", storage.ErrNotLeader, j)
	}
	return errors.Join(errs...)
}

// relayClient is an HTTP client over the node's relay transport (mutual TLS to
// verified peers).
func (n *Node) relayClient() *http.Client {
	return &http.Client{Transport: n.relayBase, Timeout: n.cfg.ForwardTimeout}
}

// peerNode is edge.Config.PeerNode: the node id the peer certificate of a
// connection to the peer listener names. That listener's configuration
// (ServerTLS) verified the chain against the cluster CA in the handshake.
func peerNode(cs *tls.ConnectionState) (string, error) {
	id, err := pki.PeerIdentity(*cs)
	if err != nil {
		return "", err
	}
	return id.NodeID, nil
}
