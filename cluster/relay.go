package cluster

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
)

// relayTransport carries the edge's relayed requests to other nodes. When the
// chosen node refuses the connection (it died or left a moment ago and gossip
// has not caught up), nothing was sent, so the request goes to another serving
// node of the same jurisdiction instead of failing.
type relayTransport struct {
	base    http.RoundTripper
	members memberLister
	// tries bounds the other nodes attempted after the first refusal.
	tries int
}

// maxRelayBody bounds the request body a relay buffers (the edge refuses more).
const maxRelayBody = 1 << 20

// RoundTrip implements http.RoundTripper.
func (t *relayTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	// Make the request replayable, so that a pooled connection the other node
	// closed (it is stopping) costs a transparent resend, not an error.
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxRelayBody+1))
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		r.ContentLength = int64(len(b))
	}
	resp, err := t.base.RoundTrip(r)
	tried := []string{r.URL.Host}
	for i := 0; i < t.tries && err != nil && neverSent(err) && r.Context().Err() == nil; i++ {
		alt := t.another(tried)
		if alt == "" {
			break
		}
		tried = append(tried, alt)
		r2 := r.Clone(r.Context())
		r2.URL.Host, r2.Host = alt, alt
		if r.GetBody != nil {
			if r2.Body, err = r.GetBody(); err != nil {
				return nil, err
			}
		}
		resp, err = t.base.RoundTrip(r2)
	}
	return resp, err
}

// another picks a serving node of the jurisdiction of tried[0] not yet tried.
func (t *relayTransport) another(tried []string) string {
	var jur string
	for _, m := range t.members.AllMembers() {
		if m.PeerAddr == tried[0] {
			jur = m.Jurisdiction
		}
	}
	if jur == "" {
		return ""
	}
	for _, m := range t.members.Members() {
		if m.Jurisdiction == jur && len(m.Kinds) > 0 && !m.Leaving && m.PeerAddr != "" && !slices.Contains(tried, m.PeerAddr) {
			return m.PeerAddr
		}
	}
	return ""
}

// neverSent reports whether err is a failure to connect: the request did not
// leave this node.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
