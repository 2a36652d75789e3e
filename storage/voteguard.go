package storage

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// voteGuard wraps the Raft transport so that a server votes only while its own
// latest configuration lists it as a voter. hashicorp/raft grants any vote (and
// pre-vote) when its configuration is empty, so a server whose disk was wiped —
// same address, nothing on disk — would hand its vote to a candidate lacking
// committed entries, and a non-voter still catching up would grant votes with
// a partial log. Behind the guard such a server answers "not granted" until
// the leader has added it (as a new server, disk ids differ) and promoted it
// once caught up. TimeoutNow (leadership transfer) is refused the same way.
type voteGuard struct {
	raft.Transport
	consumer chan raft.RPC
	stop     chan struct{}
	stopOnce sync.Once
	// mayVote reports whether this server votes in its latest configuration;
	// nil until raft runs (no vote is granted before).
	mayVote atomic.Pointer[func() bool]
	refused atomic.Uint64
	// contact is when each server last answered one of our AppendEntries
	// (heartbeats included): raft.ServerID -> time.Time.
	contact sync.Map
	// onAppend, if set, sees the term of every AppendEntries that comes in
	// through the consumer (not heartbeats, which raft's transport hands to
	// raft directly: they carry no entries and raft does not count their
	// answer toward a commit) before raft does: the log's fence
	// (segmentlog_async.go). An error answers the request instead of raft.
	onAppend func(term uint64) error
}

// AppendEntries sends raft's AppendEntries (heartbeats too) and notes when
// the target answered as server id: Store.LastContact. An answer from another
// server id at the address (a wiped disk's new server) ends id's contact.
func (g *voteGuard) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := g.Transport.AppendEntries(id, target, args, resp)
	switch {
	case err != nil:
	case len(resp.ID) == 0 || raft.ServerID(resp.ID) == id:
		g.contact.Store(id, time.Now())
	default:
		// Another server answers at id's address: id's disk is gone (wiped,
		// replaced), so id has no contact any more — its group may replace it
		// now, not only once it has been silent for the dead-server timeout.
		g.contact.Delete(id)
	}
	return err
}

// errNotAVoter answers a TimeoutNow sent to a server that may not vote.
var errNotAVoter = errors.New("storage: this server is not a voter in its configuration")

func newVoteGuard(t raft.Transport, onAppend func(term uint64) error) *voteGuard {
	g := &voteGuard{Transport: t, consumer: make(chan raft.RPC), stop: make(chan struct{}), onAppend: onAppend}
	go g.run()
	return g
}

// Consumer is what raft reads incoming RPCs from.
func (g *voteGuard) Consumer() <-chan raft.RPC { return g.consumer }

// RequestPreVote forwards raft's pre-vote RPC (raft enables pre-vote only on
// transports that have it).
func (g *voteGuard) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return requestPreVote(g.Transport, id, target, args, resp)
}

// requestPreVote sends a pre-vote RPC through t, if t has them.
func requestPreVote(t raft.Transport, id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	pv, ok := t.(raft.WithPreVote)
	if !ok {
		return errors.New("storage: transport has no pre-vote")
	}
	return pv.RequestPreVote(id, target, args, resp)
}

// closeTransport closes t if it can be closed.
func closeTransport(t raft.Transport) error {
	if c, ok := t.(raft.WithClose); ok {
		return c.Close()
	}
	return nil
}

// Close stops the guard and closes the wrapped transport if it can be closed,
// as raft does with a transport at shutdown.
func (g *voteGuard) Close() error {
	g.stopOnce.Do(func() { close(g.stop) })
	return closeTransport(g.Transport)
}

func (g *voteGuard) voter() bool {
	f := g.mayVote.Load()
	return f != nil && (*f)()
}

func (g *voteGuard) run() {
	in := g.Transport.Consumer()
	for {
		select {
		case <-g.stop:
			return
		case rpc := <-in:
			if g.intercept(rpc) || g.fenced(rpc) {
				continue
			}
			select {
			case g.consumer <- rpc:
			case <-g.stop:
				return
			}
		}
	}
}

// intercept answers a vote, pre-vote or TimeoutNow itself when this server may
// not vote; it reports whether it did.
func (g *voteGuard) intercept(rpc raft.RPC) bool {
	switch req := rpc.Command.(type) {
	case *raft.RequestVoteRequest:
		if g.voter() {
			return false
		}
		g.refused.Add(1)
		rpc.Respond(&raft.RequestVoteResponse{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}, Term: req.Term, Granted: false}, nil)
	case *raft.RequestPreVoteRequest:
		if g.voter() {
			return false
		}
		g.refused.Add(1)
		rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}, Term: req.Term, Granted: false}, nil)
	case *raft.TimeoutNowRequest:
		if g.voter() {
			return false
		}
		g.refused.Add(1)
		rpc.Respond(nil, errNotAVoter)
	default:
		return false
	}
	return true
}

// fenced passes an AppendEntries' term to onAppend before raft sees the
// request, and answers the request with onAppend's error itself if there is
// one (raft must not ack what this server's log cannot vouch for); it
// reports whether it answered.
func (g *voteGuard) fenced(rpc raft.RPC) bool {
	req, ok := rpc.Command.(*raft.AppendEntriesRequest)
	if !ok || g.onAppend == nil {
		return false
	}
	if err := g.onAppend(req.Term); err != nil {
		rpc.Respond(nil, err)
		return true
	}
	return false
}

// hasVote reports whether id is a voter in c.
func hasVote(c raft.Configuration, id raft.ServerID) bool {
	for _, s := range c.Servers {
		if s.ID == id {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}
