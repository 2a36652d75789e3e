package edge

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/barberpro/edge/edge/auth"
)

// Regression tests of the second reader's findings on issue 8 (review8, findings
// 4 and 6): each failed before its fix.

// TestRateLimit_IPv6ByPrefix64 (review8 finding 4): the per-IP bucket of an IPv6
// client is its /64, so one host with a /64 does not get 2^64 buckets.
func TestRateLimit_IPv6ByPrefix64(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) {
		c.Limits = Limits{PerSubject: 0.001, SubjectBurst: 2, PerIP: 0.001, IPBurst: 2}
	})
	limited := 0
	for i := range 50 {
		req := h.request(call{method: "GET", path: "/healthz", anon: true})
		req.RemoteAddr = fmt.Sprintf("[2001:db8::%x]:4000", i+1)
		rec := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(rec, req)
		if rec.Code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 48 {
		t.Errorf("50 anonymous requests from one /64 (burst 2): %d limited, want 48", limited)
	}
}

// TestIPKey_IPv4ByAddressIPv6By64 checks the bucket key of client addresses.
func TestIPKey_IPv4ByAddressIPv6By64(t *testing.T) {
	for _, c := range []struct{ remote, want string }{
		{"192.0.2.7:4000", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:4000", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:4000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::9]:80", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"not-an-ip", "not-an-ip"},
	} {
		if got := ipKey(c.remote); got != c.want {
			t.Errorf("ipKey(%q) = %q, want %q", c.remote, got, c.want)
		}
	}
}

// TestRateLimit_IPChurnCannotEvictSubject (review8 finding 4): anonymous requests
// from MaxKeys new networks do not push a throttled subject's bucket out (it
// would come back full): subjects and IPs have separate LRUs.
func TestRateLimit_IPChurnCannotEvictSubject(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) {
		c.Limits = Limits{PerSubject: 0.001, SubjectBurst: 2, PerIP: 0.001, IPBurst: 2, MaxKeys: 50}
	})
	ana := h.as(auth.RoleClient, "cli-ana")
	ok := 0
	for round := range 5 {
		for range 3 {
			if h.do(call{method: "GET", path: "/v1/clients/cli-ana/bookings", header: ana}).Code == http.StatusOK {
				ok++
			}
		}
		for i := range 50 {
			req := h.request(call{method: "GET", path: "/healthz", anon: true})
			req.RemoteAddr = fmt.Sprintf("[2001:db8:%x:%x::1]:4000", round+1, i+1)
			h.srv.Handler().ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	if ok != 2 {
		t.Errorf("subject with burst 2 and ~0 rate got %d requests through by churning networks, want 2", ok)
	}
}

// forged returns tok with its signature altered.
func forged(t *testing.T, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.') + 1
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// TestRateLimit_BadTokensChargeTheIPBeforeAnySignatureCheck (review8 finding
// 4): a token the verifier has not seen is charged to the client's IP before
// its signature is checked, so a flood of bad tokens costs no Ed25519 work past
// the IP's burst. A token verified before is charged to its subject alone: the
// flood does not lock out the subjects calling from that IP; a new one is
// charged to the IP first.
func TestRateLimit_BadTokensChargeTheIPBeforeAnySignatureCheck(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) {
		c.Limits = Limits{PerSubject: 0.001, SubjectBurst: 5, PerIP: 0.001, IPBurst: 3}
	})
	ana := h.as(auth.RoleClient, "cli-ana")
	// Verified once (charged to the IP and to cli-ana), then remembered.
	wantStatus(t, h.do(call{method: "GET", path: "/v1/clients/cli-ana/bookings", header: ana}), http.StatusOK)

	bad := map[string]string{"Authorization": "Bearer " + forged(t, h.tokens.Token(t, auth.RoleClient, "cli-ana"))}
	before := h.tokens.Verifier.Verifications()
	codes := map[int]int{}
	for range 20 {
		codes[h.do(call{method: "GET", path: "/v1/clients/cli-ana/bookings", header: bad}).Code]++
	}
	if n := h.tokens.Verifier.Verifications() - before; n != 2 {
		t.Errorf("20 bad tokens from an IP with 2 requests left: %d signature checks, want 2", n)
	}
	if codes[http.StatusUnauthorized] != 2 || codes[http.StatusTooManyRequests] != 18 {
		t.Errorf("answers %v, want 2× 401 and 18× 429", codes)
	}
	wantStatus(t, h.do(call{method: "GET", path: "/v1/clients/cli-ana/bookings", header: ana}), http.StatusOK)
	bob := h.as(auth.RoleClient, "cli-bob")
	wantStatus(t, h.do(call{method: "GET", path: "/v1/clients/cli-bob/bookings", header: bob}), http.StatusTooManyRequests)
}

// TestAccess_ForwardedByMustNameThePeerCertificate (review8 finding 6): the peer
// handler honours ForwardedByHeader only when it names the node of the peer
// certificate the request came over; without a way to tell (no TLS, no
// Config.PeerNode) it honours none.
func TestAccess_ForwardedByMustNameThePeerCertificate(t *testing.T) {
	h := newHarness(t)
	p := h.mustCreateProvider()
	path := "/v1/providers/" + p.ID
	fw := map[string]string{ForwardedByHeader: "ba-2"}
	wantStatus(t, h.do(call{method: "GET", path: path, header: fw, peer: true, valid: true}), http.StatusOK)
	rec := h.do(call{method: "GET", path: path, header: fw, peer: true, from: "us-1", valid: true})
	wantStatus(t, rec, http.StatusForbidden)
	if pb := checkProblem(t, rec); pb.Code != CodeForbidden {
		t.Errorf("code %s", pb.Code)
	}
	// No mutual TLS: nothing to compare with.
	req := h.request(call{method: "GET", path: path, header: fw})
	rec = httptest.NewRecorder()
	h.srv.PeerHandler().ServeHTTP(rec, req)
	wantStatus(t, rec, http.StatusForbidden)
	// Without the header the peer handler serves the request as its own.
	wantStatus(t, h.do(call{method: "GET", path: path, peer: true, from: "us-1", valid: true}), http.StatusOK)

	nocheck := newHarnessWith(t, func(c *Config) { c.PeerNode = nil })
	wantStatus(t, nocheck.do(call{method: "GET", path: "/healthz", header: fw, peer: true, valid: true}), http.StatusForbidden)
}

// TestLimits_InfIsRateInf: an infinite rate (node start --ip-rate-limit inf, as
// the simulations run) is rate.Inf: no bucket is kept at all.
func TestLimits_InfIsRateInf(t *testing.T) {
	l := Limits{PerSubject: rate.Limit(math.Inf(1)), PerIP: rate.Limit(math.Inf(1))}.withDefaults()
	if l.PerSubject != rate.Inf || l.PerIP != rate.Inf {
		t.Fatalf("+Inf read as %v, %v", l.PerSubject, l.PerIP)
	}
}
