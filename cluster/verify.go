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

	mu     sync.Mutex
	result map[string]probeResult // by node id; pruned when gossip forgets the node
	// inflight holds the node ids being probed: a member's probe runs on its
	// own, so one unreachable member (a 2 s timeout) delays no other.
	inflight map[string]bool
	// subs are signalled (without blocking) when a member's verdict changes.
	subs map[int]chan struct{}
	next int
	wg   sync.WaitGroup
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
		result: map[string]probeResult{}, inflight: map[string]bool{}, subs: map[int]chan struct{}{}}
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

// subscribe returns a channel signalled (without blocking, capacity 1) each time
// a member's verdict changes, and the function that ends the subscription.
func (p *prober) subscribe() (<-chan struct{}, func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := p.next
	p.next++
	ch := make(chan struct{}, 1)
	p.subs[id] = ch
	return ch, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.subs, id)
	}
}

// run probes members on every gossip event and every probeInterval until ctx
// ends, then waits for the probes in flight.
func (p *prober) run(ctx context.Context) {
	defer p.wg.Wait()
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

// probeDue starts a probe of each live member without a current result, or
// whose last probe failed more than probeRetry ago, unless one is in flight. It
// does not wait for them: each records its own verdict. It also forgets the
// results of nodes gossip no longer knows.
func (p *prober) probeDue(ctx context.Context) {
	var due []membership.Member
	p.mu.Lock()
	known := map[string]bool{}
	for _, m := range p.members.AllMembers() {
		known[m.NodeID] = true
	}
	for id := range p.result {
		if !known[id] {
			delete(p.result, id)
		}
	}
	for _, m := range p.members.Members() {
		if m.NodeID == p.self || p.inflight[m.NodeID] {
			continue
		}
		r, ok := p.result[m.NodeID]
		if ok && r.key == incarnation(m) && (r.verified || time.Since(r.at) < probeRetry) {
			continue
		}
		if ok && time.Since(r.at) < probeMinGap {
			continue
		}
		p.inflight[m.NodeID] = true
		due = append(due, m)
	}
	p.mu.Unlock()
	for _, m := range due {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			err := p.probe(ctx, m)
			p.record(m, err)
		}()
	}
}

func (p *prober) record(m membership.Member, err error) {
	p.mu.Lock()
	delete(p.inflight, m.NodeID)
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
		p.mu.Lock()
		for _, ch := range p.subs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
		p.mu.Unlock()
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

// Subscribe returns gossip's events and, as an EventUpdate of the member, each
// change of a member's verdict: a member whose Meta changed drops out of
// Members until its new Meta is probed, and its subscribers (placement) learn
// at once when it is back, not at their next periodic resync.
func (v *verifiedMembers) Subscribe() (<-chan membership.Event, func()) {
	events, unsubGossip := v.Membership.Subscribe()
	verdicts, unsubVerdicts := v.prober.subscribe()
	out := make(chan membership.Event, cap(events)+1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for {
			var ev membership.Event
			select {
			case <-stop:
				return
			case e, ok := <-events:
				if !ok {
					return
				}
				ev = e
			case <-verdicts:
				ev = membership.Event{Type: membership.EventUpdate}
			}
			select {
			case out <- ev:
			case <-stop:
				return
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			unsubVerdicts()
			unsubGossip()
			close(stop)
			<-done
		})
	}
}

// MemberByActorID resolves a verified member by actor-cluster member id.
func (v *verifiedMembers) MemberByActorID(id string) (membership.Member, bool) {
	m, ok := v.Membership.MemberByActorID(id)
	if !ok || !v.prober.Verified(m) {
		return membership.Member{}, false
	}
	return m, true
}
