package storagetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
)

// Router is a test double of the cluster layer's storage.BatchForwarder: it
// delivers a forwarded request straight to the target store's ProposeLocal,
// ProposeBatchLocal or ReadIndexLocal, found by server ID. It copies the command and carries
// errors through storage.ErrorKinds/ErrorFromKinds, as a wire would. A node
// marked down (SetDown) is unreachable: requests to or from it fail with a
// transport error after Latency.
type Router struct {
	mu     sync.Mutex
	stores map[raft.ServerID]*storage.Store
	down   map[raft.ServerID]bool
	// Latency is added to every forwarded request (default none).
	Latency time.Duration
	// largest is the most commands one ProposeBatch carried.
	largest int
}

// LargestBatch is the most commands one forwarded batch (ProposeBatch) has
// carried so far.
func (r *Router) LargestBatch() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.largest
}

// NewRouter returns a Router that knows stores and installs itself as their
// Forwarder.
func NewRouter(stores ...*storage.Store) *Router {
	r := &Router{stores: map[raft.ServerID]*storage.Store{}, down: map[raft.ServerID]bool{}}
	for _, s := range stores {
		r.Add(s)
	}
	return r
}

// Add registers s and makes r its Forwarder.
func (r *Router) Add(s *storage.Store) {
	r.mu.Lock()
	r.stores[s.ID()] = s
	r.mu.Unlock()
	s.SetForwarder(&routerFrom{r: r, from: s.ID()})
}

// SetDown marks id unreachable (true) or reachable again (false).
func (r *Router) SetDown(id raft.ServerID, down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down[id] = down
}

func (r *Router) target(ctx context.Context, from, to raft.ServerID) (*storage.Store, error) {
	r.mu.Lock()
	s, ok := r.stores[to]
	unreachable := r.down[to] || r.down[from]
	lat := r.Latency
	r.mu.Unlock()
	if lat > 0 {
		select {
		case <-time.After(lat):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !ok || unreachable {
		return nil, fmt.Errorf("router: %s -> %s: connection refused", from, to)
	}
	return s, nil
}

type routerFrom struct {
	r    *Router
	from raft.ServerID
}

func (f *routerFrom) Propose(ctx context.Context, leader raft.ServerID, _ raft.ServerAddress, cmd *bookingv1.Command) (*bookingv1.CommandResult, error) {
	s, err := f.r.target(ctx, f.from, leader)
	if err != nil {
		return nil, err
	}
	res, err := s.ProposeLocal(ctx, proto.Clone(cmd).(*bookingv1.Command))
	if res != nil {
		return proto.Clone(res).(*bookingv1.CommandResult), nil
	}
	return nil, wire(err)
}

// ProposeBatch makes routerFrom a storage.BatchForwarder: the batch goes to
// the target's ProposeBatchLocal, each outcome carried as Propose's.
func (f *routerFrom) ProposeBatch(ctx context.Context, leader raft.ServerID, _ raft.ServerAddress, cmds []*bookingv1.Command) ([]storage.Outcome, error) {
	f.r.mu.Lock()
	f.r.largest = max(f.r.largest, len(cmds))
	f.r.mu.Unlock()
	s, err := f.r.target(ctx, f.from, leader)
	if err != nil {
		return nil, err
	}
	sent := make([]*bookingv1.Command, len(cmds))
	for i, c := range cmds {
		sent[i] = proto.Clone(c).(*bookingv1.Command)
	}
	outs := s.ProposeBatchLocal(ctx, sent)
	for i, o := range outs {
		if o.Result != nil {
			outs[i] = storage.Outcome{Result: proto.Clone(o.Result).(*bookingv1.CommandResult)}
		} else {
			outs[i].Err = wire(o.Err)
		}
	}
	return outs, nil
}

func (f *routerFrom) ReadIndex(ctx context.Context, leader raft.ServerID, _ raft.ServerAddress) (uint64, error) {
	s, err := f.r.target(ctx, f.from, leader)
	if err != nil {
		return 0, err
	}
	idx, err := s.ReadIndexLocal(ctx)
	return idx, wire(err)
}

func wire(err error) error {
	if err == nil {
		return nil
	}
	return storage.ErrorFromKinds(storage.ErrorKinds(err), "remote: "+err.Error())
}

// MustOpenTCPCluster starts n stores (ids node1..nodeN) with real TCP
// transports on 127.0.0.1 (port 0), bootstraps node1 and adds the others
// with AddServer (voters up to MaxVoters), and returns them with the leader
// first, once all are ready. cfg is the base
// configuration (NodeID, DataDir, RaftAddr and Bootstrap are set here). Each
// store is closed in t.Cleanup.
func MustOpenTCPCluster(t testing.TB, n int, cfg storage.Config) []*storage.Store {
	t.Helper()
	stores := make([]*storage.Store, n)
	for i := range n {
		c := cfg
		c.NodeID = fmt.Sprintf("node%d", i+1)
		c.DataDir = t.TempDir()
		c.RaftAddr = "127.0.0.1:0"
		c.Transport = nil
		c.Bootstrap = i == 0
		stores[i] = MustOpen(t, c)
	}
	// Grow the group from node1 with AddServer: bootstrapping every node
	// with the full configuration races with node1's first election.
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	for _, s := range stores[1:] {
		if err := stores[0].AddServer(ctx, string(s.ID()), string(s.Addr())); err != nil {
			t.Fatalf("AddServer %s: %v", s.ID(), err)
		}
	}
	return waitGroupLeaderFirst(t, stores)
}

func waitGroupLeaderFirst(t testing.TB, stores []*storage.Store) []*storage.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	for _, s := range stores {
		if err := s.WaitReady(ctx); err != nil {
			t.Fatalf("WaitReady: %v", err)
		}
	}
	for {
		for i, s := range stores {
			if s.IsLeader() {
				stores[0], stores[i] = stores[i], stores[0]
				return stores
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no leader among %d stores after %s", len(stores), ReadyTimeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WaitLeader waits until one of stores is leader and every store in stores
// knows it, and returns it.
func WaitLeader(t testing.TB, stores ...*storage.Store) *storage.Store {
	t.Helper()
	deadline := time.Now().Add(ReadyTimeout)
	for time.Now().Before(deadline) {
		for _, s := range stores {
			if !s.IsLeader() {
				continue
			}
			agreed := true
			for _, o := range stores {
				if id, _ := o.Leader(); id != s.ID() {
					agreed = false
				}
			}
			if agreed {
				return s
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no agreed leader among %d stores after %s", len(stores), ReadyTimeout)
	return nil
}
