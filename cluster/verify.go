package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/pki"
)

// Timing of the prober.
const (
	// probeTimeout bounds one probe (TCP connect and TLS handshake).
	probeTimeout = 2 * time.Second
	// probeRetry is how long a member whose probe failed waits before the next.
	probeRetry = time.Second
	// probeInterval is how often the prober looks for members to probe besides
	// on every gossip event.
	probeInterval = 500 * time.Millisecond
	// probeMinGap bounds the probes of one member: gossip that keeps changing
	// (a process re-gossiping a member's meta) costs at most one probe per gap.
	probeMinGap = 250 * time.Millisecond
)

// prober learns each gossip member's certificate identity and metadata: a TLS
// handshake to the member's peer listener (PeerAddr), verified against the
// cluster CA and the IP dialed, then, on that connection, the member's own Meta
// (GET /_peer/meta). A member is verified when its certificate names the node
// id, city and jurisdiction it gossips, every address it gossips is on an IP its
// certificate holds, and what gossip says of it agrees in every field with what
// it says of itself (boot and disk ids, cluster id, founded, leaving, kinds,
// every address with its port): holding the gossip key lets a process say
// anything about any member, but only the member's certificate answers there.
// Gossip alone decides nothing: Raft admission (groupKeeper), actor placement
// (verifiedMembers feeds placement's Provider and Lookup) and the router use only
// verified members. A result holds for the whole Meta it was probed for: any
// change of it is probed again, at most once per probeMinGap per member.
type prober struct {
	members *membership.Membership
	tls     *tls.Config // ClientTLS(AnyNode): identity checked here, per member
	dialer  *net.Dialer
	self    string // this node's id: always verified (its own certificate)
	log     *slog.Logger
	changed chan struct{}

	mu     sync.Mutex
	result map[string]probeResult // by node id
}

type probeResult struct {
	key      string // the gossiped Meta the result is for (incarnation)
	verified bool
	err      error
	at       time.Time
}

// incarnation is what a probe result holds for: the member's whole gossiped
// Meta (its gossip encoding). Any change — a restart, a new disk, a claimed
// identity, address, cluster id, flag or kind — needs a new probe.
func incarnation(m membership.Member) string {
	b, err := m.Meta.MarshalBinary()
	if err != nil {
		return fmt.Sprint("unencodable|", m.NodeID, "|", err)
	}
	return string(b)
}

func newProber(members *membership.Membership, m *pki.Material, dialer *net.Dialer, self string, log *slog.Logger) *prober {
	return &prober{members: members, tls: m.ClientTLS(pki.AnyNode), dialer: dialer, self: self, log: log,
		changed: make(chan struct{}, 1), result: map[string]probeResult{}}
}

// Verified reports whether m's certificate identity matches what it gossips.
func (p *prober) Verified(m membership.Member) bool {
	if m.NodeID == p.self {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.result[m.NodeID]
	return ok && r.verified && r.key == incarnation(m)
}

// Changed is signalled (without blocking) when a member's verdict changed.
func (p *prober) Changed() <-chan struct{} { return p.changed }

// run probes members on every gossip event and every probeInterval until ctx ends.
func (p *prober) run(ctx context.Context) {
	events, unsub := p.members.Subscribe()
	defer unsub()
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		p.probeDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-events:
		case <-tick.C:
		}
	}
}

// probeDue probes, concurrently, the live members without a current result, and
// those whose last probe failed more than probeRetry ago.
func (p *prober) probeDue(ctx context.Context) {
	var due []membership.Member
	p.mu.Lock()
	for _, m := range p.members.Members() {
		if m.NodeID == p.self {
			continue
		}
		r, ok := p.result[m.NodeID]
		if ok && r.key == incarnation(m) && (r.verified || time.Since(r.at) < probeRetry) {
			continue
		}
		if ok && time.Since(r.at) < probeMinGap {
			continue
		}
		due = append(due, m)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.probe(ctx, m)
			p.record(m, err)
		}()
	}
	wg.Wait()
}

func (p *prober) record(m membership.Member, err error) {
	p.mu.Lock()
	old, had := p.result[m.NodeID]
	r := probeResult{key: incarnation(m), verified: err == nil, err: err, at: time.Now()}
	p.result[m.NodeID] = r
	p.mu.Unlock()
	changed := !had || old.verified != r.verified || old.key != r.key
	sameErr := had && old.err != nil && err != nil && old.err.Error() == err.Error() && old.key == r.key
	switch {
	case err == nil && changed:
		p.log.Info("member certificate verified", "member", m.NodeID, "jurisdiction", m.Jurisdiction, "city", m.City)
	case err != nil && !sameErr:
		p.log.Warn("member not verified: its gossip is not trusted", "member", m.NodeID, "err", err)
	}
	if changed {
		select {
		case p.changed <- struct{}{}:
		default:
		}
	}
}

// probe handshakes with m's peer listener, checks its certificate against what m
// gossips, then asks m for its own Meta on that connection and checks that gossip
// agrees with it.
func (p *prober) probe(ctx context.Context, m membership.Member) error {
	if m.PeerAddr == "" {
		return fmt.Errorf("%s gossips no peer address (an older build): cannot verify its certificate", m.NodeID)
	}
	host, _, err := net.SplitHostPort(m.PeerAddr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	raw, err := p.dialer.DialContext(ctx, "tcp", m.PeerAddr)
	if err != nil {
		return err
	}
	defer raw.Close()
	conf := p.tls.Clone()
	conf.ServerName = host
	c := tls.Client(raw, conf)
	if err := c.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake with %s: %w", m.PeerAddr, err)
	}
	cs := c.ConnectionState()
	id, err := pki.PeerIdentity(cs)
	if err != nil {
		return err
	}
	if err := matchIdentity(m, id, cs.PeerCertificates[0].IPAddresses); err != nil {
		return err
	}
	own, err := fetchMeta(ctx, c, m.PeerAddr)
	if err != nil {
		return err
	}
	if d := metaDiff(m.Meta, own); len(d) > 0 {
		return fmt.Errorf("%w: what gossip says of %s differs from what it says over mutual TLS in %v", pki.ErrNotAllowed, m.NodeID, d)
	}
	return nil
}

// matchIdentity checks the certificate identity id (valid for ips) against what m
// gossips.
func matchIdentity(m membership.Member, id pki.Identity, ips []net.IP) error {
	if id.NodeID != m.NodeID || id.Jurisdiction != m.Jurisdiction || id.City != m.City {
		return fmt.Errorf("%w: %s gossips jurisdiction %q, city %q but its certificate names %s", pki.ErrNotAllowed,
			m.NodeID, m.Jurisdiction, m.City, id.URI())
	}
	for _, a := range []string{m.RaftAddr, m.ActorAddr, m.HTTPAddr, m.PeerAddr} {
		if a == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("%w: %s gossips a bad address %q", pki.ErrNotAllowed, m.NodeID, a)
		}
		ip := net.ParseIP(host)
		if ip == nil || !slices.ContainsFunc(ips, ip.Equal) {
			return fmt.Errorf("%w: %s gossips address %s, which its certificate does not hold", pki.ErrNotAllowed, m.NodeID, a)
		}
	}
	return nil
}

// verifiedMembers is the node's membership as placement and the router see it:
// only members whose certificate identity the prober verified. It implements
// placement.MemberSource and placement.Directory (and LocalMeta, which placement's
// activator reads).
type verifiedMembers struct {
	*membership.Membership
	prober *prober
}

// Members returns the alive members whose certificates are verified.
func (v *verifiedMembers) Members() []membership.Member {
	return slices.DeleteFunc(v.Membership.Members(), func(m membership.Member) bool { return !v.prober.Verified(m) })
}

// AllMembers returns the members, in any state, whose certificates are verified.
func (v *verifiedMembers) AllMembers() []membership.Member {
	return slices.DeleteFunc(v.Membership.AllMembers(), func(m membership.Member) bool { return !v.prober.Verified(m) })
}

// MemberByActorID resolves a verified member by actor-cluster member id.
func (v *verifiedMembers) MemberByActorID(id string) (membership.Member, bool) {
	m, ok := v.Membership.MemberByActorID(id)
	if !ok || !v.prober.Verified(m) {
		return membership.Member{}, false
	}
	return m, true
}
