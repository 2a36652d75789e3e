package storage

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The Raft group check. A group's id (meta cluster_id, kept in raft.db too:
// groupid.go) is data; hashicorp/raft's RPCs carry the sender's server id and address, nothing of
// its group. A server of group X that still runs would otherwise drive a
// server of group Y at an address X's configuration lists — typically a node
// restored from a backup (a NEW group) at the address of one of X's old
// servers: X's leader, at a higher term, sends it AppendEntries or
// InstallSnapshot and the restored node adopts X's history.
//
// So every Raft connection says, inside its TLS handshake, which group its
// dialer belongs to: the dialer offers the ALPN protocol groupALPNPrefix+id
// (nothing while it has no id). The acceptor compares it with its own id in
// GetConfigForClient, before any Raft byte: if both are set and differ it
// answers with a protocol list of its own group only, so the handshake fails
// with TLS's no_application_protocol alert on both sides, counts it
// (barberpro_raft_foreign_group_refused_total) and logs it. Every RPC
// (AppendEntries, InstallSnapshot, RequestVote, pre-vote, TimeoutNow) travels
// on such a connection, and both ends of a pair accept connections, so no
// server of one group that knows its id reaches a server of another that
// knows its own. The check runs at the handshake only: a connection pooled
// or accepted while the local id was still empty (a fresh joiner) keeps
// working after the id is set (storage/DESIGN.md, known limitations).
//
// A server with no id yet (a fresh joiner, before it applied FoundGroup or
// got a snapshot) accepts every dialer and offers none: it must be able to
// join. A dialer without the ALPN offer (an older build) is accepted, and an
// older build ignores the offer (a server without NextProtos skips ALPN), so
// a rolling upgrade keeps working. The check needs TLS (Config.RaftTLS), which
// cluster always sets; plain TCP (storage's own tests) has none.
const groupALPNPrefix = "barberpro-raft-group/"

// groupToken is the ALPN protocol naming group id: the id itself, or its
// SHA-256 when it would not fit ALPN's 255 bytes.
func groupToken(id string) string {
	t := groupALPNPrefix + id
	if len(t) > 255 {
		sum := sha256.Sum256([]byte(id))
		t = groupALPNPrefix + "sha256:" + hex.EncodeToString(sum[:])
	}
	return t
}

// groupCheck carries this server's group id on Raft connections and refuses
// connections from servers of another group (see groupALPNPrefix).
type groupCheck struct {
	local   func() string // this server's group id, "" while it has none
	refused prometheus.Counter
	logger  *slog.Logger
	logged  atomic.Int64 // unix nanos of the last log line
}

// newForeignGroupCounter makes the counter of Store.Collectors.
func newForeignGroupCounter() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "barberpro", Subsystem: "raft", Name: "foreign_group_refused_total",
		Help: "Raft connections this node refused because the dialing server belongs to another " +
			"Raft group (another cluster id), e.g. a surviving node of the group a restored one replaced.",
	})
}

// clientProtos is the ALPN offer of a dial: this server's group, if it has one.
func (g *groupCheck) clientProtos() []string {
	if id := g.local(); id != "" {
		return []string{groupToken(id)}
	}
	return nil
}

// serverConfig returns base with the group check run on every client hello.
func (g *groupCheck) serverConfig(base *tls.Config) *tls.Config {
	conf := base.Clone()
	next := base.GetConfigForClient
	conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if peer, ok := offeredGroup(hello.SupportedProtos); ok {
			if own := g.local(); own != "" && peer != groupToken(own) {
				g.refuse(hello, peer, own)
				// No protocol in common: crypto/tls fails the handshake with
				// no_application_protocol before any Raft byte is read.
				refuse := base.Clone()
				refuse.NextProtos = []string{groupToken(own)}
				return refuse, nil
			}
		}
		if next != nil {
			return next(hello)
		}
		return nil, nil
	}
	return conf
}

// offeredGroup returns the group token a client offered, if any.
func offeredGroup(protos []string) (string, bool) {
	for _, p := range protos {
		if strings.HasPrefix(p, groupALPNPrefix) {
			return p, true
		}
	}
	return "", false
}

func (g *groupCheck) refuse(hello *tls.ClientHelloInfo, peer, own string) {
	g.refused.Inc()
	now := time.Now().UnixNano()
	last := g.logged.Load()
	if now-last < int64(10*time.Second) || !g.logged.CompareAndSwap(last, now) {
		return
	}
	from := ""
	if hello.Conn != nil {
		from = hello.Conn.RemoteAddr().String()
	}
	g.logger.Warn("refused a raft connection from a server of another group (at most one such line per 10s; see barberpro_raft_foreign_group_refused_total)",
		"from", from, "its_cluster_id", strings.TrimPrefix(peer, groupALPNPrefix), "cluster_id", own)
}
