package membership

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Member states, as Member.State shows them. memberlist has no event for a node
// becoming suspect, so Membership never reports "suspect": a node is alive until
// it is declared dead or has left.
const (
	StateAlive = "alive"
	StateDead  = "dead"
	StateLeft  = "left"
)

// Member is a node as this node sees it.
type Member struct {
	Meta
	// Addr is the node's gossip address (host:port).
	Addr string
	// State is StateAlive, StateDead or StateLeft.
	State string
	// Since is when this node last saw State (or the BootID) change.
	Since time.Time
}

// EventType says what happened to a member.
type EventType int

// The event types. A restart of a node that was still thought alive is an
// EventUpdate carrying the new BootID; a restart after it was declared dead or
// left is an EventJoin.
const (
	// EventJoin: a node became alive (new, or back after dead/left).
	EventJoin EventType = iota + 1
	// EventUpdate: an alive node changed its Meta (addresses, kinds, boot id).
	EventUpdate
	// EventLeave: a node left gracefully (Membership.Leave).
	EventLeave
	// EventDead: a node stopped answering and was declared dead.
	EventDead
)

// String names the event type.
func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventDead:
		return "dead"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is a change in membership.
type Event struct {
	Type   EventType
	Member Member
}

// Membership is one node's view of the cluster. Its methods are safe for
// concurrent use.
type Membership struct {
	cfg Config

	lifeMu sync.Mutex // serializes Start, Leave and Shutdown
	mu     sync.Mutex
	list   *memberlist.Memberlist
	// self is the gossip address, read once at Start: memberlist's LocalNode
	// is rewritten without its lock by every meta update (UpdateNode).
	self      string
	meta      Meta
	metaBytes []byte
	nodes     map[string]*entry // by NodeID
	subs      map[int]chan Event
	nextSub   int
	leaving   bool
	ackCh     chan string
	started   bool
	stopped   bool
}

type entry struct {
	member       Member
	leavingBoot  string    // boot id that announced a graceful leave
	leavingUntil time.Time // the announcement is trusted until then
}

// leaveNoticeTTL is how long a graceful-leave notice marks the next death of
// that boot as "left".
const leaveNoticeTTL = time.Minute

// New checks cfg and prepares a Membership. It starts no goroutine and opens no
// socket. An empty cfg.Meta.BootID is replaced by a random one.
func New(cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Meta = cfg.Meta.clone()
	if cfg.Meta.BootID == "" {
		cfg.Meta.BootID = NewBootID()
	}
	slices.Sort(cfg.Meta.Kinds)
	cfg.Meta.Kinds = slices.Compact(cfg.Meta.Kinds)
	b, err := cfg.Meta.MarshalBinary()
	if err != nil {
		return nil, err
	}
	cfg.Join = slices.Clone(cfg.Join)
	cfg.SecretKey = slices.Clone(cfg.SecretKey)
	m := &Membership{
		cfg:       cfg,
		meta:      cfg.Meta,
		metaBytes: b,
		nodes:     map[string]*entry{},
		subs:      map[int]chan Event{},
	}
	return m, nil
}

// NewBootID returns a random 16-hex-digit boot id.
func NewBootID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Start creates the memberlist (binding its UDP and TCP listeners) and, if
// Config.Join is not empty, joins through any of those addresses, retrying for up
// to Config.JoinTimeout. If no address answers it shuts down again and returns an
// error wrapping ErrJoin. With an empty Join list the node starts alone.
func (m *Membership) Start() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	m.mu.Lock()
	switch {
	case m.stopped:
		m.mu.Unlock()
		return ErrStopped
	case m.started:
		m.mu.Unlock()
		return fmt.Errorf("membership: already started")
	}
	m.started = true
	m.mu.Unlock()

	mc := m.memberlistConfig()
	t, err := newBoundTransport(m.cfg.BindAddr, m.cfg.BindPort, mc, m.cfg.Drop)
	if err != nil {
		return fmt.Errorf("membership: transport: %w", err)
	}
	if mc.BindPort == 0 {
		mc.BindPort = t.GetAutoBindPort()
		if m.cfg.AdvertisePort == 0 {
			mc.AdvertisePort = mc.BindPort
		}
	}
	mc.Transport = t
	list, err := memberlist.Create(mc)
	if err != nil {
		t.Shutdown()
		return fmt.Errorf("membership: create memberlist: %w", err)
	}
	self := list.LocalNode().Address()
	m.mu.Lock()
	m.list, m.self = list, self
	m.mu.Unlock()

	var join []string
	for _, a := range m.cfg.Join {
		if a != self {
			join = append(join, a)
		}
	}
	if len(join) == 0 {
		m.cfg.Logger.Info("membership started alone", "gossip", self)
		return nil
	}
	deadline := time.Now().Add(m.cfg.JoinTimeout)
	for {
		n, err := list.Join(join)
		if n > 0 {
			m.cfg.Logger.Info("membership joined", "gossip", self, "via", n, "members", list.NumMembers())
			return nil
		}
		if time.Now().Add(m.cfg.JoinRetryInterval).After(deadline) {
			if m.cfg.RetryJoin {
				m.cfg.Logger.Warn("membership started alone: no join address answered; the caller retries",
					"gossip", self, "join", join, "err", err)
				return nil
			}
			_ = m.shutdown()
			return fmt.Errorf("%w via %v: %w", ErrJoin, join, err)
		}
		time.Sleep(m.cfg.JoinRetryInterval)
	}
}

func (m *Membership) memberlistConfig() *memberlist.Config {
	c := m.cfg
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.Meta.NodeID
	mc.BindAddr = c.BindAddr
	mc.BindPort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.AdvertisePort = c.AdvertisePort
	if c.AdvertisePort == 0 {
		mc.AdvertisePort = c.BindPort
	}
	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.IndirectChecks = c.IndirectChecks
	mc.SuspicionMult = c.SuspicionMult
	mc.SuspicionMaxTimeoutMult = c.SuspicionMaxTimeoutMult
	mc.GossipInterval = c.GossipInterval
	mc.GossipNodes = c.GossipNodes
	mc.GossipToTheDeadTime = c.GossipToTheDeadTime
	mc.RetransmitMult = c.RetransmitMult
	mc.PushPullInterval = c.PushPullInterval
	mc.TCPTimeout = c.TCPTimeout
	mc.DeadNodeReclaimTime = c.DeadNodeReclaimTime
	mc.SecretKey = c.SecretKey
	mc.Delegate = (*delegate)(m)
	mc.Events = (*events)(m)
	mc.Alive = (*delegate)(m)
	mc.Conflict = (*delegate)(m)
	mc.Logger = newStdLogger(c.Logger.With("lib", "memberlist"))
	return mc
}

// LocalMeta is this node's metadata as it last set it (UpdateMeta), before
// gossip has carried it anywhere.
func (m *Membership) LocalMeta() Meta {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.meta.clone()
}

// Join contacts the gossip addresses (host:port) and merges their view of the
// cluster into this member's; it returns how many answered. A started member may
// call it any time, e.g. to rejoin peers it knew before a restart.
func (m *Membership) Join(addrs []string) (int, error) {
	m.mu.Lock()
	list, self := m.list, m.self
	m.mu.Unlock()
	if list == nil {
		return 0, ErrNotStarted
	}
	var join []string
	for _, a := range addrs {
		if a != self {
			join = append(join, a)
		}
	}
	if len(join) == 0 {
		return 0, nil
	}
	return list.Join(join)
}

// GossipAddr is the address other nodes join through (host:port), once started.
func (m *Membership) GossipAddr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.self
}

// Members returns the alive members, this node included, sorted by NodeID.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.nodes))
	for _, e := range m.nodes {
		if e.member.State == StateAlive {
			out = append(out, e.member.copy())
		}
	}
	sortMembers(out)
	return out
}

// AllMembers returns every member this node knows, alive or recently (within
// Config.DeadRetention) dead or left, sorted by NodeID.
func (m *Membership) AllMembers() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked()
	out := make([]Member, 0, len(m.nodes))
	for _, e := range m.nodes {
		out = append(out, e.member.copy())
	}
	sortMembers(out)
	return out
}

// Local returns this node as the cluster sees it.
func (m *Membership) Local() Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.nodes[m.meta.NodeID]; ok {
		mem := e.member.copy()
		if m.stopped && mem.State == StateAlive {
			mem.State = StateDead
		}
		return mem
	}
	return Member{Meta: m.meta.clone(), State: StateDead}
}

// MemberByActorID returns the member whose actor-cluster member id
// (Meta.MemberID: NodeID@BootID) is id, alive or recently gone. A member id of an
// older boot of a node is not found.
func (m *Membership) MemberByActorID(id string) (Member, bool) {
	nodeID, bootID, ok := SplitMemberID(id)
	if !ok {
		return Member{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.nodes[nodeID]
	if !ok || e.member.BootID != bootID {
		return Member{}, false
	}
	return e.member.copy(), true
}

// Subscribe returns a channel of membership events and a function that cancels
// the subscription and closes the channel. Delivery never blocks the gossip: when
// the channel (Config.EventBuffer) is full, the oldest event is dropped, so a
// consumer that must not miss a change should re-read Members after each event.
// Shutdown closes every subscription's channel.
func (m *Membership) Subscribe() (<-chan Event, func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := make(chan Event, m.cfg.EventBuffer)
	if m.stopped {
		close(ch)
		return ch, func() {}
	}
	id := m.nextSub
	m.nextSub++
	m.subs[id] = ch
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if c, ok := m.subs[id]; ok {
				delete(m.subs, id)
				close(c)
			}
		})
	}
}

// UpdateMeta changes this node's Meta with fn and gossips it. NodeID, BootID,
// City and Jurisdiction cannot change. It waits up to Config.TCPTimeout for the
// update to be broadcast; if that times out the update still spreads with later
// gossip and push/pull, so only bad metadata is an error. Before Start the
// change is simply recorded.
func (m *Membership) UpdateMeta(fn func(*Meta)) error {
	m.mu.Lock()
	if m.stopped || m.leaving {
		m.mu.Unlock()
		return ErrStopped
	}
	next := m.meta.clone()
	fn(&next)
	slices.Sort(next.Kinds)
	next.Kinds = slices.Compact(next.Kinds)
	if next.NodeID != m.meta.NodeID || next.BootID != m.meta.BootID || next.City != m.meta.City || next.Jurisdiction != m.meta.Jurisdiction {
		m.mu.Unlock()
		return fmt.Errorf("%w: node id, boot id, city and jurisdiction cannot change", ErrBadMeta)
	}
	if err := next.Validate(); err != nil {
		m.mu.Unlock()
		return err
	}
	b, _ := next.MarshalBinary()
	m.meta, m.metaBytes = next, b
	list := m.list
	m.mu.Unlock()
	if list == nil {
		return nil
	}
	if err := list.UpdateNode(m.cfg.TCPTimeout); err != nil {
		m.cfg.Logger.Warn("membership: meta update not yet broadcast", "err", err)
	}
	return nil
}

// Leave tells the cluster this node is leaving on purpose, so the others show it
// as "left" rather than "dead": it first notifies every peer directly (waiting
// up to Config.LeaveNoticeTimeout for their acknowledgements), then broadcasts
// memberlist's leave and waits for it to go out, within timeout overall. Gossip
// keeps running until Shutdown. Calling Leave again does nothing.
func (m *Membership) Leave(timeout time.Duration) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	start := time.Now()
	m.mu.Lock()
	list := m.list
	switch {
	case list == nil:
		m.mu.Unlock()
		return ErrNotStarted
	case m.stopped:
		m.mu.Unlock()
		return ErrStopped
	case m.leaving:
		m.mu.Unlock()
		return nil
	}
	m.leaving = true
	var peers []*memberlist.Node
	for _, n := range list.Members() {
		if n.Name != m.meta.NodeID {
			peers = append(peers, n)
		}
	}
	acks := make(chan string, len(peers))
	m.ackCh = acks
	notice := encodeNotice(msgLeaving, m.meta.NodeID, m.meta.BootID)
	m.mu.Unlock()

	noticeTimeout := min(m.cfg.LeaveNoticeTimeout, timeout/2)
	for _, p := range peers {
		go func() {
			if err := list.SendReliable(p, notice); err != nil {
				m.cfg.Logger.Debug("membership: leave notice not sent", "to", p.Name, "err", err)
			}
		}()
	}
	timer := time.NewTimer(noticeTimeout)
	for got := 0; got < len(peers); {
		select {
		case <-acks:
			got++
			continue
		case <-timer.C:
			m.cfg.Logger.Warn("membership: not every peer acknowledged the leave notice; they will show this node as dead", "acks", got, "peers", len(peers))
		}
		break
	}
	timer.Stop()
	m.mu.Lock()
	m.ackCh = nil
	m.mu.Unlock()

	remaining := timeout - time.Since(start)
	if remaining <= 0 {
		remaining = time.Millisecond
	}
	if err := list.Leave(remaining); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	m.cfg.Logger.Info("membership left")
	return nil
}

// Shutdown stops gossip without telling anyone: the others declare this node
// dead after their failure-detection time. Call Leave first for a graceful
// departure. Shutdown closes all subscriptions and is safe to call more than once.
func (m *Membership) Shutdown() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	return m.shutdown()
}

func (m *Membership) shutdown() error {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return nil
	}
	m.stopped = true
	list := m.list
	for id, ch := range m.subs {
		delete(m.subs, id)
		close(ch)
	}
	m.mu.Unlock()
	if list == nil {
		return nil
	}
	return list.Shutdown()
}

// apply records what memberlist told us about n and publishes the event.
// memberlist calls it with its own node lock held: it must not call back into
// memberlist or block.
func (m *Membership) apply(n *memberlist.Node, what EventType) {
	var meta Meta
	if err := meta.UnmarshalBinary(n.Meta); err != nil || meta.NodeID != n.Name {
		m.cfg.Logger.Warn("membership: ignoring node with bad meta", "name", n.Name, "err", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	now := m.cfg.Clock()
	e, ok := m.nodes[meta.NodeID]
	if !ok {
		e = &entry{}
		m.nodes[meta.NodeID] = e
	}
	prev := e.member
	mem := Member{Meta: meta, Addr: n.Address(), State: StateAlive, Since: now}
	switch what {
	case EventJoin:
		if ok && prev.State == StateAlive && prev.BootID != meta.BootID {
			what = EventUpdate
		}
	case EventUpdate:
		if !ok || prev.State != StateAlive {
			what = EventJoin
		} else if prev.BootID == meta.BootID {
			mem.Since = prev.Since
		}
	case EventLeave:
		graceful := (meta.NodeID == m.meta.NodeID && m.leaving) ||
			(e.leavingBoot == meta.BootID && now.Before(e.leavingUntil))
		if graceful {
			mem.State = StateLeft
		} else {
			mem.State = StateDead
			what = EventDead
		}
	}
	if what == EventJoin || prev.BootID != meta.BootID {
		e.leavingBoot, e.leavingUntil = "", time.Time{}
	}
	e.member = mem
	m.pruneLocked()
	ev := Event{Type: what, Member: mem.copy()}
	for _, ch := range m.subs {
		select {
		case ch <- ev:
		default: // full: drop the oldest, keep the newest
			select {
			case <-ch:
			default:
			}
			select {
			case ch <- ev:
			default:
			}
		}
	}
}

// pruneLocked forgets dead and left nodes older than DeadRetention.
func (m *Membership) pruneLocked() {
	cutoff := m.cfg.Clock().Add(-m.cfg.DeadRetention)
	for id, e := range m.nodes {
		if e.member.State != StateAlive && e.member.Since.Before(cutoff) && id != m.meta.NodeID {
			delete(m.nodes, id)
		}
	}
}

// onMessage handles a user message sent with SendReliable.
func (m *Membership) onMessage(b []byte) {
	typ, nodeID, bootID, ok := decodeNotice(b)
	if !ok {
		return
	}
	switch typ {
	case msgLeaving:
		m.mu.Lock()
		if e, ok := m.nodes[nodeID]; ok {
			e.leavingBoot = bootID
			e.leavingUntil = m.cfg.Clock().Add(leaveNoticeTTL)
		}
		list, self := m.list, m.meta
		m.mu.Unlock()
		if list == nil {
			return
		}
		ack := encodeNotice(msgLeaveAck, nodeID, bootID)
		go func() {
			for _, n := range list.Members() {
				if n.Name == nodeID {
					if err := list.SendReliable(n, ack); err != nil {
						m.cfg.Logger.Debug("membership: leave ack not sent", "to", nodeID, "from", self.NodeID, "err", err)
					}
					return
				}
			}
		}()
	case msgLeaveAck:
		m.mu.Lock()
		if m.ackCh != nil && nodeID == m.meta.NodeID && bootID == m.meta.BootID {
			select {
			case m.ackCh <- nodeID:
			default:
			}
		}
		m.mu.Unlock()
	}
}

const (
	msgLeaving  byte = 'L'
	msgLeaveAck byte = 'A'
)

func encodeNotice(typ byte, nodeID, bootID string) []byte {
	return []byte(string(typ) + nodeID + "@" + bootID)
}

func decodeNotice(b []byte) (typ byte, nodeID, bootID string, ok bool) {
	if len(b) < 2 {
		return 0, "", "", false
	}
	nodeID, bootID, ok = strings.Cut(string(b[1:]), "@")
	return b[0], nodeID, bootID, ok
}

func (mem Member) copy() Member {
	mem.Meta = mem.Meta.clone()
	return mem
}

func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.NodeID, b.NodeID) })
}
