package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/barberpro/edge/cluster/membership"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	clusterv1 "github.com/barberpro/edge/protos/cluster/v1"
	"github.com/barberpro/edge/storage"
)

// raftActorName is the name of the actor every node runs to serve its Raft
// group's forwarded requests (proposals, read index, removals, status).
const raftActorName = "barberpro-raft"

// ErrNoSuchNode means a node id is not a live member of the cluster.
var ErrNoSuchNode = errors.New("cluster: no live member with that node id")

// raftActor serves forwarded requests with the node's store. Each request runs
// in its own goroutine so the mailbox never waits on Raft; the answer goes to
// the request's sender.
type raftActor struct {
	store  *storage.Store
	node   string
	events *eventLog
}

func (a *raftActor) Receive(ctx actor.Context) {
	sender := ctx.Sender()
	if sender == nil {
		return
	}
	root := ctx.ActorSystem().Root
	reply := func(m proto.Message) { root.Send(sender, m) }
	switch m := ctx.Message().(type) {
	case *clusterv1.ProposeRequest:
		go func() {
			c, cancel := context.WithTimeout(context.Background(), msDuration(m.TimeoutMs))
			defer cancel()
			res, err := a.store.ProposeLocal(c, m.Command)
			reply(&clusterv1.ProposeReply{Result: res, ErrorKinds: storage.ErrorKinds(err), Detail: errDetail(err)})
		}()
	case *clusterv1.ProposeBatchRequest:
		go func() {
			c, cancel := context.WithTimeout(context.Background(), msDuration(m.TimeoutMs))
			defer cancel()
			outs := a.store.ProposeBatchLocal(c, m.Commands)
			replies := make([]*clusterv1.ProposeReply, len(outs))
			for i, o := range outs {
				replies[i] = &clusterv1.ProposeReply{Result: o.Result, ErrorKinds: storage.ErrorKinds(o.Err), Detail: errDetail(o.Err)}
			}
			reply(&clusterv1.ProposeBatchReply{Replies: replies})
		}()
	case *clusterv1.ReadIndexRequest:
		go func() {
			c, cancel := context.WithTimeout(context.Background(), msDuration(m.TimeoutMs))
			defer cancel()
			idx, err := a.store.ReadIndexLocal(c)
			reply(&clusterv1.ReadIndexReply{Index: idx, ErrorKinds: storage.ErrorKinds(err), Detail: errDetail(err)})
		}()
	case *clusterv1.RemoveServerRequest:
		go func() {
			c, cancel := context.WithTimeout(context.Background(), msDuration(m.TimeoutMs))
			defer cancel()
			err := a.removeNode(c, m.NodeId)
			reply(&clusterv1.RemoveServerReply{ErrorKinds: storage.ErrorKinds(err), Detail: errDetail(err)})
		}()
	case *clusterv1.NodeStatusRequest:
		st := a.store.Stats()
		self := string(a.store.ID())
		voter := false
		for _, s := range st.Servers {
			voter = voter || (s.ID == self && s.Voter)
		}
		disk := membership.DiskOf(self)
		ctx.Respond(&clusterv1.NodeStatusReply{
			NodeId: a.node, State: st.State, LeaderId: membership.NodeOf(st.LeaderID), Term: st.Term,
			AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex, LastLogIndex: st.LastLogIndex,
			Voter: voter, ClusterId: a.store.ClusterID(), DiskId: disk, Events: a.events.all(),
			StorageFault: errDetail(a.store.WriteFault()),
		})
	}
}

// removeNode removes every server of node (any of its disks) from the group
// (leader only).
func (a *raftActor) removeNode(ctx context.Context, node string) error {
	servers, err := a.store.Servers()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if membership.NodeOf(s.ID) == node {
			if err := a.store.RemoveServer(ctx, s.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func errDetail(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// msDuration is a forwarded request's TimeoutMs as a duration; 0 or less
// (none given) is 5 s.
func msDuration(ms int64) time.Duration {
	if ms <= 0 {
		return 5 * time.Second
	}
	return time.Duration(ms) * time.Millisecond
}

// remoteErr rebuilds a far side's error from its kinds and detail; nil if none.
func remoteErr(kinds []string, detail string) error {
	if len(kinds) == 0 && detail == "" {
		return nil
	}
	return storage.ErrorFromKinds(kinds, detail)
}

// raftPeers reaches the raft actor of other nodes over the actor remote. It is
// the storage.Forwarder of a node, and the way `cluster remove` and `cluster
// status` reach a group's leader and members.
type raftPeers struct {
	system *actor.ActorSystem
	// members are the verified members (verifiedMembers): requests, which carry
	// commands, go only to a node whose certificate names what it gossips.
	members memberLister
	timeout time.Duration
	// jurisdiction is this node's; a request to a node of another one is
	// recorded in cross while it waits, so the actor remote lets that node's
	// reply (of the expected type) reach its future and nothing else.
	jurisdiction string
	cross        *crossFutures
}

// crossFutures are the futures of requests this node sent to nodes of other
// jurisdictions (only raftPeers.Status is ever asked across): future id -> the
// node whose certificate may answer and the type of the answer. remoteGuard lets
// a peer of another jurisdiction reach a future only through this table.
type crossFutures struct {
	mu sync.Mutex
	m  map[string]crossFuture
}

type crossFuture struct {
	node, reply string
}

func newCrossFutures() *crossFutures { return &crossFutures{m: map[string]crossFuture{}} }

func (c *crossFutures) open(id, node, reply string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[id] = crossFuture{node: node, reply: reply}
}

func (c *crossFutures) close(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

// expects reports whether future id waits for a reply of type reply from node.
func (c *crossFutures) expects(id, node, reply string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.m[id]
	return ok && f.node == node && f.reply == reply
}

var _ storage.BatchForwarder = (*raftPeers)(nil)

// pid is the raft actor of the live, verified member whose node id is nodeID,
// and that member's jurisdiction.
func (p *raftPeers) pid(nodeID string) (*actor.PID, string, error) {
	for _, m := range p.members.Members() {
		if m.NodeID == nodeID && m.ActorAddr != "" {
			return actor.NewPID(m.ActorAddr, raftActorName), m.Jurisdiction, nil
		}
	}
	return nil, "", fmt.Errorf("%w: %q", ErrNoSuchNode, nodeID)
}

// request sends msg to nodeID's raft actor and waits for the answer (of the
// type of reply), bounded by ctx and p.timeout. To a node of another
// jurisdiction, the future is recorded in p.cross while it waits.
func (p *raftPeers) request(ctx context.Context, nodeID string, msg, reply proto.Message) (any, error) {
	pid, jur, err := p.pid(nodeID)
	if err != nil {
		return nil, err
	}
	timeout := p.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	f := actor.NewFuture(p.system, timeout)
	if jur != p.jurisdiction {
		if p.cross == nil {
			return nil, fmt.Errorf("cluster: request to %s: another jurisdiction", nodeID)
		}
		id := f.PID().Id
		p.cross.open(id, nodeID, string(proto.MessageName(reply)))
		defer p.cross.close(id)
	}
	p.system.Root.RequestWithCustomSender(pid, msg, f.PID())
	type answer struct {
		v   any
		err error
	}
	ch := make(chan answer, 1)
	go func() { v, err := f.Result(); ch <- answer{v, err} }()
	select {
	case a := <-ch:
		if a.err != nil {
			return nil, fmt.Errorf("cluster: request to %s: %w", nodeID, a.err)
		}
		return a.v, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("cluster: request to %s: %w", nodeID, ctx.Err())
	}
}

// deadlineMs is the time ctx leaves, in whole milliseconds, for the far
// side's own deadline (def when ctx has none). It is at least 1: the far side
// reads 0 or less as "none given" and takes its 5 s default (msDuration), so
// a request sent with under a millisecond left would otherwise run there for
// 5 s after its caller gave up.
func deadlineMs(ctx context.Context, def time.Duration) int64 {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl).Milliseconds(), 1)
	}
	return def.Milliseconds()
}

// Propose forwards cmd to the leader; see storage.Forwarder.
func (p *raftPeers) Propose(ctx context.Context, leader raft.ServerID, _ raft.ServerAddress, cmd *bookingv1.Command) (*bookingv1.CommandResult, error) {
	res, err := p.request(ctx, membership.NodeOf(string(leader)), &clusterv1.ProposeRequest{Command: cmd, TimeoutMs: deadlineMs(ctx, p.timeout)}, &clusterv1.ProposeReply{})
	if err != nil {
		return nil, err
	}
	r, ok := res.(*clusterv1.ProposeReply)
	if !ok {
		return nil, fmt.Errorf("cluster: unexpected answer %T to a proposal", res)
	}
	return r.Result, remoteErr(r.ErrorKinds, r.Detail)
}

// ProposeBatch forwards cmds to the leader in one message; see
// storage.BatchForwarder.
func (p *raftPeers) ProposeBatch(ctx context.Context, leader raft.ServerID, _ raft.ServerAddress, cmds []*bookingv1.Command) ([]storage.Outcome, error) {
	res, err := p.request(ctx, membership.NodeOf(string(leader)), &clusterv1.ProposeBatchRequest{Commands: cmds, TimeoutMs: deadlineMs(ctx, p.timeout)}, &clusterv1.ProposeBatchReply{})
	if err != nil {
		return nil, err
	}
	r, ok := res.(*clusterv1.ProposeBatchReply)
	if !ok {
		return nil, fmt.Errorf("cluster: unexpected answer %T to a batch of proposals", res)
	}
	outs := make([]storage.Outcome, len(r.Replies))
	for i, rep := range r.Replies {
		outs[i] = storage.Outcome{Result: rep.GetResult(), Err: remoteErr(rep.GetErrorKinds(), rep.GetDetail())}
	}
	return outs, nil
}

// ReadIndex asks the leader for a safe read index; see storage.Forwarder.
func (p *raftPeers) ReadIndex(ctx context.Context, leader raft.ServerID, _ raft.ServerAddress) (uint64, error) {
	res, err := p.request(ctx, membership.NodeOf(string(leader)), &clusterv1.ReadIndexRequest{TimeoutMs: deadlineMs(ctx, p.timeout)}, &clusterv1.ReadIndexReply{})
	if err != nil {
		return 0, err
	}
	r, ok := res.(*clusterv1.ReadIndexReply)
	if !ok {
		return 0, fmt.Errorf("cluster: unexpected answer %T to a read index", res)
	}
	return r.Index, remoteErr(r.ErrorKinds, r.Detail)
}

// RemoveNode asks the node leader (the group's leader) to remove every server
// of node from its group.
func (p *raftPeers) RemoveNode(ctx context.Context, leader, node string) error {
	res, err := p.request(ctx, leader, &clusterv1.RemoveServerRequest{NodeId: node, TimeoutMs: deadlineMs(ctx, p.timeout)}, &clusterv1.RemoveServerReply{})
	if err != nil {
		return err
	}
	r, ok := res.(*clusterv1.RemoveServerReply)
	if !ok {
		return fmt.Errorf("cluster: unexpected answer %T to a removal", res)
	}
	return remoteErr(r.ErrorKinds, r.Detail)
}

// Status asks nodeID for its view of its Raft group.
func (p *raftPeers) Status(ctx context.Context, nodeID string) (*clusterv1.NodeStatusReply, error) {
	res, err := p.request(ctx, nodeID, &clusterv1.NodeStatusRequest{}, &clusterv1.NodeStatusReply{})
	if err != nil {
		return nil, err
	}
	r, ok := res.(*clusterv1.NodeStatusReply)
	if !ok {
		return nil, fmt.Errorf("cluster: unexpected answer %T to a status request", res)
	}
	return r, nil
}
