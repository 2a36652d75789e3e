package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/barberpro/edge/cluster/membership"
)

// peerMetaPath is where a node's peer listener (mutual TLS, nodes of the CA only)
// answers its own current gossip Meta as JSON: what the prober compares with
// what gossip says of it, over a channel only that node's certificate can answer.
const peerMetaPath = "/_peer/meta"

// peerMetaMax bounds the answer a prober reads (a Meta is at most 512 bytes in
// gossip).
const peerMetaMax = 16 << 10

// peerMux is the peer listener's handler: GET peerMetaPath answers the node's
// current Meta; everything else goes to the edge's peer handler once the API is
// up (503 until then). It serves from the first gossip message on, so other
// nodes verify this one before its API is up.
type peerMux struct {
	meta func() membership.Meta
	edge atomic.Pointer[http.Handler]
}

func (p *peerMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == peerMetaPath {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p.meta())
		return
	}
	h := p.edge.Load()
	if h == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

// fetchMeta asks, over the established TLS connection c to m's peer listener,
// for the Meta m says of itself.
func fetchMeta(ctx context.Context, c *tls.Conn, peerAddr string) (membership.Meta, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(probeTimeout))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+peerAddr+peerMetaPath, nil)
	if err != nil {
		return membership.Meta{}, err
	}
	req.Close = true
	if err := req.Write(c); err != nil {
		return membership.Meta{}, fmt.Errorf("ask %s for its meta: %w", peerAddr, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return membership.Meta{}, fmt.Errorf("ask %s for its meta: %w", peerAddr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return membership.Meta{}, fmt.Errorf("ask %s for its meta: %s", peerAddr, resp.Status)
	}
	var meta membership.Meta
	if err := json.NewDecoder(io.LimitReader(resp.Body, peerMetaMax)).Decode(&meta); err != nil {
		return membership.Meta{}, fmt.Errorf("ask %s for its meta: %w", peerAddr, err)
	}
	return meta, nil
}

// metaDiff names the fields in which what gossip says of a node (g) differs
// from what the node says of itself over mutual TLS (own); none if they agree.
// Every field of Meta counts: identity, boot and disk, group, flags, kinds and
// every address with its port.
func metaDiff(g, own membership.Meta) []string {
	var d []string
	for _, f := range []struct {
		name string
		same bool
	}{
		{"NodeID", g.NodeID == own.NodeID},
		{"BootID", g.BootID == own.BootID},
		{"City", g.City == own.City},
		{"Jurisdiction", g.Jurisdiction == own.Jurisdiction},
		{"RaftAddr", g.RaftAddr == own.RaftAddr},
		{"ActorAddr", g.ActorAddr == own.ActorAddr},
		{"HTTPAddr", g.HTTPAddr == own.HTTPAddr},
		{"PeerAddr", g.PeerAddr == own.PeerAddr},
		{"Kinds", slices.Equal(g.Kinds, own.Kinds)},
		{"Leaving", g.Leaving == own.Leaving},
		{"Founded", g.Founded == own.Founded},
		{"ClusterID", g.ClusterID == own.ClusterID},
		{"DiskID", g.DiskID == own.DiskID},
	} {
		if !f.same {
			d = append(d, f.name)
		}
	}
	return d
}
