package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Server is one member of the Raft group's configuration.
type Server struct {
	ID    string // Raft server ID (Config.NodeID of that server)
	Addr  string // Raft transport address
	Voter bool   // false for a non-voter (it replicates but neither votes nor counts for quorum)
}

// IsLeader reports whether this node is the group's leader right now.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the current leader's ID and address as this node knows
// them; both empty when no leader is known.
func (s *Store) Leader() (raft.ServerID, raft.ServerAddress) {
	addr, id := s.raft.LeaderWithID()
	return id, addr
}

// Servers returns the group's latest configuration (on the leader it may
// include a change not yet committed), ordered by ID.
func (s *Store) Servers() ([]Server, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, mapRaftError(err)
	}
	return toServers(f.Configuration().Servers), nil
}

func toServers(in []raft.Server) []Server {
	out := make([]Server, 0, len(in))
	for _, sv := range in {
		out = append(out, Server{ID: string(sv.ID), Addr: string(sv.Address), Voter: sv.Suffrage == raft.Voter})
	}
	slices.SortFunc(out, func(a, b Server) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func countVoters(servers []Server) (voters, nonVoters int) {
	for _, sv := range servers {
		if sv.Voter {
			voters++
		} else {
			nonVoters++
		}
	}
	return voters, nonVoters
}

// AddServer adds id at addr to the group (leader only, else ErrNotLeader):
// as a voter while the group has fewer than Config.MaxVoters voters, else as
// a non-voter. Idempotent: a server already present with the same addr is a
// no-op; with a new addr its address is updated and its suffrage kept. It
// returns once the change is committed.
//
// raft makes a new voter count for quorum at once, before it has caught up:
// add a node once it is up (the cluster layer adds it when gossip says so).
func (s *Store) AddServer(ctx context.Context, id, addr string) error {
	return s.addServer(ctx, id, addr, true)
}

// AddNonvoter adds id at addr to the group as a non-voter (leader only, else
// ErrNotLeader): it replicates but neither votes nor counts for quorum until
// Promote. Idempotent: a server already present with the same addr is a no-op;
// with a new addr its address is updated and its suffrage kept. It returns once
// the change is committed. This is how a new server (a new node, or a node
// whose disk is new) joins: it votes only once promoted after catching up.
func (s *Store) AddNonvoter(ctx context.Context, id, addr string) error {
	return s.addServer(ctx, id, addr, false)
}

// addServer is AddServer (asVoter: a voter while there is room) and
// AddNonvoter.
func (s *Store) addServer(ctx context.Context, id, addr string, asVoter bool) error {
	if id == "" || addr == "" {
		return fmt.Errorf("%w: adding a server needs an id and an address", ErrInvalid)
	}
	s.memberMu.Lock()
	defer s.memberMu.Unlock()
	servers, err := s.leaderConfig(ctx)
	if err != nil {
		return err
	}
	voters, _ := countVoters(servers)
	voter := asVoter && voters < s.cfg.MaxVoters
	if i := indexOf(servers, id); i >= 0 {
		sv := servers[i]
		if sv.Addr == addr {
			return nil
		}
		s.logger.Info("raft server address updated", "id", id, "old_addr", sv.Addr, "addr", addr, "voter", sv.Voter)
		voter = sv.Voter
	} else {
		s.logger.Info("adding raft server", "id", id, "addr", addr, "voter", voter, "voters_before", voters)
	}
	if voter {
		return s.awaitFuture(ctx, s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.cfg.ApplyTimeout))
	}
	return s.awaitFuture(ctx, s.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.cfg.ApplyTimeout))
}

// MaxVoters is Config.MaxVoters: the most voters Promote and AddServer allow.
func (s *Store) MaxVoters() int { return s.cfg.MaxVoters }

// Promote makes the non-voter id a voter (leader only, else ErrNotLeader), if
// the group has fewer than Config.MaxVoters voters (else ErrTooManyVoters). A
// voter already is a no-op; an id not in the group is ErrNotFound. The caller
// promotes a server only once it has caught up with the leader: raft counts a
// voter for quorum at once.
func (s *Store) Promote(ctx context.Context, id string) error {
	s.memberMu.Lock()
	defer s.memberMu.Unlock()
	servers, err := s.leaderConfig(ctx)
	if err != nil {
		return err
	}
	i := indexOf(servers, id)
	switch {
	case i < 0:
		return fmt.Errorf("%w: server %q", ErrNotFound, id)
	case servers[i].Voter:
		return nil
	}
	if voters, _ := countVoters(servers); voters >= s.cfg.MaxVoters {
		return fmt.Errorf("%w: %d voters", ErrTooManyVoters, voters)
	}
	s.logger.Info("promoting raft non-voter", "id", id)
	return s.awaitFuture(ctx, s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(servers[i].Addr), 0, s.cfg.ApplyTimeout))
}

// RemoveServer removes id from the group (leader only, else ErrNotLeader; a
// missing id is a no-op) and returns once the change is committed. Removing
// another server promotes nobody: the cluster layer promotes a non-voter once
// it has caught up. When the leader removes itself (a graceful leave) and it
// is the group's only voter, the non-voter with the lowest ID is promoted
// first, since a group cannot lose its last voter.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	s.memberMu.Lock()
	defer s.memberMu.Unlock()
	servers, err := s.leaderConfig(ctx)
	if err != nil {
		return err
	}
	i := indexOf(servers, id)
	if i < 0 {
		return nil
	}
	if voters, _ := countVoters(servers); servers[i].Voter && voters == 1 {
		// The group's only voter: a non-voter takes its place, or the removal
		// is refused (Raft would answer "need at least one voter" after the
		// fact, as an internal error).
		promoted := false
		for _, sv := range servers { // ordered by ID
			if !sv.Voter && id == s.cfg.NodeID {
				s.logger.Info("promoting raft non-voter", "id", sv.ID, "replaces", id)
				if err := s.awaitFuture(ctx, s.raft.AddVoter(raft.ServerID(sv.ID), raft.ServerAddress(sv.Addr), 0, s.cfg.ApplyTimeout)); err != nil {
					return err
				}
				promoted = true
				break
			}
		}
		if !promoted {
			return fmt.Errorf("%w: %s", ErrLastVoter, id)
		}
	}
	s.logger.Info("removing raft server", "id", id, "voter", servers[i].Voter)
	return s.awaitFuture(ctx, s.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.ApplyTimeout))
}

// leaderConfig is the group's configuration, for a membership change: leader
// only (else ErrNotLeader). Callers hold memberMu.
func (s *Store) leaderConfig(ctx context.Context) ([]Server, error) {
	if err := s.leaderOnly(ctx); err != nil {
		return nil, err
	}
	return s.Servers()
}

// indexOf is the position of server id in servers, or -1.
func indexOf(servers []Server, id string) int {
	return slices.IndexFunc(servers, func(sv Server) bool { return sv.ID == id })
}

func (s *Store) leaderOnly(ctx context.Context) error {
	if err := s.readable(ctx); err != nil {
		return err
	}
	if !s.IsLeader() {
		return s.notLeader()
	}
	return nil
}

// TransferLeadership hands leadership to another voter (raft picks the most
// up-to-date one) and waits until this node knows a new leader, or ctx ends.
// Leader only (else ErrNotLeader); ErrNoOtherVoter when the group has no
// other voter. Use it on graceful leave and shutdown. Proposals arriving
// during the transfer are refused as not proposed, so Propose retries them at
// the new leader.
func (s *Store) TransferLeadership(ctx context.Context) error {
	if err := s.leaderOnly(ctx); err != nil {
		return err
	}
	servers, err := s.Servers()
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(servers, func(sv Server) bool { return sv.Voter && sv.ID != s.cfg.NodeID }) {
		return ErrNoOtherVoter
	}
	if err := s.awaitFuture(ctx, s.raft.LeadershipTransfer()); err != nil {
		return fmt.Errorf("storage: leadership transfer: %w", err)
	}
	self := raft.ServerID(s.cfg.NodeID)
	for {
		changed := s.leaderChanged()
		if id, _ := s.Leader(); id != "" && id != self {
			s.logger.Info("leadership transferred", "leader", id)
			return nil
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("storage: leadership transfer: %w", ctx.Err())
		case <-s.done:
			t.Stop()
			return ErrClosed
		}
		t.Stop()
	}
}

// LeaderChanges subscribes to this node's leadership: the channel receives
// true when this node becomes leader and false when it stops. It first
// receives the current state. Delivery never blocks raft: each channel holds
// one value and a newer value replaces an unread one, so a slow reader sees
// the latest state (possibly skipping a flip and back). Call the returned
// function to unsubscribe (it closes the channel); Close closes every
// channel.
func (s *Store) LeaderChanges() (<-chan bool, func()) {
	return s.subs.subscribe()
}

// leaderSubs fans out raft's leadership notifications (Config.NotifyCh).
type leaderSubs struct {
	mu     sync.Mutex
	leader bool
	next   int
	subs   map[int]chan bool
	closed bool
}

func (l *leaderSubs) subscribe() (<-chan bool, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan bool, 1)
	if l.closed {
		close(ch)
		return ch, func() {}
	}
	ch <- l.leader
	id := l.next
	l.next++
	if l.subs == nil {
		l.subs = map[int]chan bool{}
	}
	l.subs[id] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if c, ok := l.subs[id]; ok {
				delete(l.subs, id)
				close(c)
			}
		})
	}
}

func (l *leaderSubs) publish(v bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leader = v
	for _, ch := range l.subs {
		select { // drop an unread older value: latest wins
		case <-ch:
		default:
		}
		ch <- v // cannot block: one sender (under mu), buffer now empty
	}
}

func (l *leaderSubs) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for id, ch := range l.subs {
		delete(l.subs, id)
		close(ch)
	}
}

// watchRaft consumes raft's leadership notifications and leader
// observations until the Store closes: it publishes leadership flips to
// LeaderChanges subscribers and wakes everyone waiting for a new leader.
func (s *Store) watchRaft(notify <-chan bool, obs <-chan raft.Observation) {
	defer close(s.watchDone)
	for {
		select {
		case v := <-notify:
			s.logger.Info("leadership changed", "leader", v)
			s.subs.publish(v)
			if v {
				go s.claimClusterID()
			}
			s.signalLeaderChange()
		case <-obs:
			s.signalLeaderChange()
		case <-s.done:
			return
		}
	}
}

// leaderChanged returns a channel closed at the next leader change seen.
func (s *Store) leaderChanged() <-chan struct{} {
	s.lcMu.Lock()
	defer s.lcMu.Unlock()
	return s.lcCh
}

func (s *Store) signalLeaderChange() {
	s.lcMu.Lock()
	defer s.lcMu.Unlock()
	close(s.lcCh)
	s.lcCh = make(chan struct{})
}

// transferOnClose hands leadership over before Close shuts raft down, if this
// node leads and another voter exists, bounded by CloseTransferTimeout.
func (s *Store) transferOnClose() {
	if s.cfg.CloseTransferTimeout <= 0 || !s.IsLeader() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTransferTimeout)
	defer cancel()
	start := time.Now()
	err := s.TransferLeadership(ctx)
	switch {
	case err == nil:
		s.logger.Info("handed leadership over before close", "took", time.Since(start))
	case errors.Is(err, ErrNoOtherVoter), errors.Is(err, ErrNotLeader):
	default:
		s.logger.Warn("leadership transfer before close failed", "err", err, "took", time.Since(start))
	}
}

// ID returns this node's Raft server ID (Config.NodeID).
func (s *Store) ID() raft.ServerID { return raft.ServerID(s.cfg.NodeID) }

// Addr returns the address of this node's Raft transport (with the real
// port when Config.RaftAddr asked for port 0).
func (s *Store) Addr() raft.ServerAddress { return s.trans.LocalAddr() }

// LastContact returns when server id last answered this node's AppendEntries
// (heartbeats included), zero if never: on the leader, proof that a server is
// up and replicating whatever gossip says of it.
func (s *Store) LastContact(id string) time.Time {
	if v, ok := s.guard.contact.Load(raft.ServerID(id)); ok {
		return v.(time.Time)
	}
	return time.Time{}
}
