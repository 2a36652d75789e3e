package storage

import (
	"github.com/hashicorp/raft"
)

// commitCap wraps the Raft transport so that the commit index a leader tells
// its followers (AppendEntriesRequest.LeaderCommitIndex) never passes the
// last index its own log holds on disk (durable). A leader's appends
// fdatasync in the background, and raft counts the leader's copy before that
// fdatasync ends (segmentlog_async.go); capped, a follower applies an entry
// only once the leader and a majority with it hold it on disk. Heartbeats
// carry no commit index and pass unchanged.
type commitCap struct {
	raft.Transport
	durable func() uint64
}

// capCommit lowers args' commit index to durable.
func (c *commitCap) capCommit(args *raft.AppendEntriesRequest) {
	if d := c.durable(); args.LeaderCommitIndex > d {
		args.LeaderCommitIndex = d
	}
}

// AppendEntries sends raft's AppendEntries with its commit index capped.
func (c *commitCap) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	c.capCommit(args)
	return c.Transport.AppendEntries(id, target, args, resp)
}

// AppendEntriesPipeline returns the wrapped transport's pipeline, each
// request's commit index capped.
func (c *commitCap) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := c.Transport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return &cappedPipeline{AppendPipeline: p, c: c}, nil
}

// RequestPreVote forwards raft's pre-vote RPC (raft enables pre-vote only on
// transports that have it).
func (c *commitCap) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return requestPreVote(c.Transport, id, target, args, resp)
}

// Close closes the wrapped transport if it can be closed.
func (c *commitCap) Close() error { return closeTransport(c.Transport) }

// cappedPipeline is a raft.AppendPipeline whose requests' commit index
// commitCap caps.
type cappedPipeline struct {
	raft.AppendPipeline
	c *commitCap
}

// AppendEntries sends args down the pipeline with its commit index capped.
func (p *cappedPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	p.c.capCommit(args)
	return p.AppendPipeline.AppendEntries(args, resp)
}
