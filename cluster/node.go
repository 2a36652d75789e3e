package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

	"github.com/barberpro/edge/actors"
	"github.com/barberpro/edge/actors/session"
	"github.com/barberpro/edge/cluster/internal/drain"
	"github.com/barberpro/edge/cluster/membership"
	"github.com/barberpro/edge/cluster/pki"
	"github.com/barberpro/edge/cluster/placement"
	"github.com/barberpro/edge/edge"
	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/reqtrace"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/storage/seal"
	"github.com/barberpro/edge/topology"
)

// CalendarKind is the actor kind of the calendars of jurisdiction j. A node
// registers only its own jurisdiction's kind, so a calendar can never activate
// outside its jurisdiction.
func CalendarKind(j string) string { return placement.Kind("calendar", j) }

// SessionKind is the actor kind of the sessions (psychology bookings) of
// jurisdiction j. Like calendars, a node registers only its own
// jurisdiction's, so a session activates only in its home jurisdiction.
func SessionKind(j string) string { return session.Kind(j) }

// Node is one running barberpro process: gossip membership, the Raft store of its
// jurisdiction, calendar actors in the actor cluster, and the HTTP API.
type Node struct {
	cfg  Config
	city topology.City
	log  *slog.Logger

	members *membership.Membership
	system  *actor.ActorSystem
	peers   *raftPeers
	store   *storage.Store
	cals    *actors.Calendars
	// sessions are the session actors of this node's jurisdiction; kek seals
	// their notes (nil without Config.KEKFile).
	sessions *session.Sessions
	kek      *seal.KEK
	actors   *protocluster.Cluster
	lookup   *placement.Lookup
	http     *drain.Server
	httpLn   net.Listener
	// picked holds the listeners resolvePorts opened on free ports, by the
	// port they stand for, until the component that binds that port takes or
	// releases it (takePort, releasePort).
	picked   map[*int]net.Listener
	peerHTTP *drain.Server
	// peerMux serves the peer listener: this node's Meta, then the edge's
	// peer handler.
	peerMux *peerMux
	// relayBase carries relays and fan-out to verified peers (dialPeer).
	relayBase *http.Transport
	peerLn    net.Listener
	tls       *pki.Material
	prober    *prober
	verified  *verifiedMembers
	guard     *remoteGuard
	registry  *prometheus.Registry
	// tokens verifies people's bearer tokens (Config.TokenKeys).
	tokens *auth.Verifier

	cancel context.CancelFunc
	bg     sync.WaitGroup
	// backupLast is the Unix time of the last scheduled backup written (0: none).
	backupLast atomic.Int64
	// savedPeersJSON is what keepPeers last wrote to peers.json.
	savedPeersJSON string

	stopOnce   sync.Once
	actorsOnce sync.Once
	stopErr    error
	served     chan error
	leaving    chan struct{}
	// stopKeeper ends the group keeper (Leave); keeperDone closes when it ended.
	stopKeeper context.CancelFunc
	keeperDone chan struct{}
	// events are this node's recent group-keeping actions (cluster status).
	events *eventLog

	// seedsAnswered is set once the node has seen another member in gossip
	// (one of its --join seeds answered, or another node joined it); it is
	// set from the start for a node without seeds. Until then the node is
	// not ready and never founds a group (foundingVerdict).
	seedsAnswered atomic.Bool
	// joinAttempts counts retryJoin's attempts, for Ready's reason.
	joinAttempts atomic.Int64

	// leaveStarted is set by the first POST /v1/cluster/leave.
	leaveStarted atomic.Bool
	// left is set by the first Leave: a second one (a direct call racing the
	// HTTP leave) returns ErrLeaving instead of closing n.leaving again.
	left atomic.Bool
}

// New checks cfg, reads its token key set (Config.TokenKeys) and prepares a
// node; it opens nothing else and starts no goroutine.
func New(cfg Config) (*Node, error) {
	if cfg.Topology == nil {
		cfg.Topology = topology.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	city, _ := cfg.Topology.City(cfg.City)
	tokens, err := auth.LoadKeySetWith(cfg.TokenKeys, auth.VerifierOptions{Issuer: cfg.TokenIssuer, MaxTTL: cfg.TokenMaxTTL})
	if err != nil {
		return nil, fmt.Errorf("%w: token keys (--token-keys; `barberpro token init --dir DIR` makes DIR/keys.json): %w", ErrBadConfig, err)
	}
	// reqtrace.Logger: a line logged with a request's context (the edge's, an
	// actor's) carries its request_id, trace_id and span_id.
	log := reqtrace.Logger(cfg.Logger).With("node", cfg.ID, "city", cfg.City)
	return &Node{cfg: cfg, city: city, log: log, tokens: tokens, served: make(chan error, 1), leaving: make(chan struct{}),
		events: &eventLog{max: 32}}, nil
}

// Start joins gossip, opens the store, starts the actor cluster and serves HTTP.
// On error, whatever was started is stopped again.
func (n *Node) Start() (err error) {
	defer func() {
		if err != nil {
			n.Stop()
		}
	}()
	if err := os.MkdirAll(n.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("cluster: data dir: %w", err)
	}
	bind := n.cfg.Bind
	jur := n.city.Jurisdiction
	kind := CalendarKind(jur)
	// The certificate is the node's identity: flags that disagree with it stop
	// the node before it opens anything.
	if n.tls, err = loadMaterial(n.cfg.TLSDir, n.cfg.ID, n.cfg.City, jur, bind); err != nil {
		return err
	}
	if err := n.resolvePorts(); err != nil {
		return err
	}

	// 0. The data dir's identity: a new disk is a new Raft server.
	// Whether it holds state and of which group are gossiped from the first
	// message: a group's keeper must never add a node holding another history,
	// and a node restarting must never look empty to a wiped node deciding
	// whether to found.
	ident, err := storage.ReadIdentity(n.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	disk := ident.DiskID

	// The peer listener (mutual TLS) answers other nodes' certificate probes
	// from the first gossip message on; it serves relays once the API is up.
	peerLn, err := n.takePort(&n.cfg.PeerPort)
	if err != nil {
		return fmt.Errorf("cluster: peer listen: %w", err)
	}
	n.peerLn = tls.NewListener(peerLn, n.tls.ServerTLS(pki.AnyNode))

	// 1. Gossip: who is out there.
	mc := n.cfg.Membership
	mc.Meta = membership.Meta{
		NodeID: n.cfg.ID, City: n.cfg.City, Jurisdiction: jur,
		RaftAddr: hostPort(bind, n.cfg.RaftPort), ActorAddr: hostPort(bind, n.cfg.ActorPort),
		HTTPAddr: hostPort(bind, n.cfg.HTTPPort), PeerAddr: hostPort(bind, n.cfg.PeerPort), DiskID: disk,
		Founded: ident.HasState, ClusterID: ident.ClusterID,
	}
	mc.BindAddr, mc.BindPort, mc.Join = bind, n.cfg.GossipPort, n.cfg.Join
	// A node whose seeds do not answer keeps trying (retryJoin), like Consul's
	// retry_join: a node restarting while its seed is down must not stay down.
	mc.RetryJoin = true
	mc.SecretKey = n.cfg.GossipKey
	mc.Logger = n.log.With("component", "membership")
	if n.members, err = membership.New(mc); err != nil {
		return fmt.Errorf("cluster: membership: %w", err)
	}
	n.releasePort(&n.cfg.GossipPort)
	if err := n.members.Start(); err != nil {
		return fmt.Errorf("cluster: join gossip: %w", err)
	}
	// A restarted node also tries the peers it remembers, before deciding
	// anything about bootstrap; none answering is fine (the whole cluster may be
	// restarting), and keepPeers retries.
	remembered := n.savedPeers()
	if k, _ := n.members.Join(remembered); k > 0 {
		n.log.Info("rejoined gossip through remembered peers", "answered", k)
	}
	seeds := n.seeds()
	if len(seeds) == 0 || n.othersSeen() {
		n.seedsAnswered.Store(true)
	}

	// The peer listener answers this node's own Meta from now on (what other
	// nodes' probers compare with gossip), and relays once the API is up.
	n.peerMux = &peerMux{meta: n.members.LocalMeta}
	n.peerHTTP = n.httpServer(n.peerMux)
	n.serve(n.peerHTTP, n.peerLn)

	// Other members' certificate identities: until verified, a member is nobody.
	n.prober = newProber(n.members, n.tls, n.dialer(), n.cfg.ID, n.log.With("component", "verify"))
	n.verified = &verifiedMembers{Membership: n.members, prober: n.prober}

	// 2. The actor system, so the store can forward to its leader over it.
	n.system = placement.NewActorSystem(n.members.Local().MemberID(), n.log.With("component", "actors"), slog.LevelWarn)
	cross := newCrossFutures()
	n.peers = &raftPeers{system: n.system, members: n.verified, timeout: n.cfg.ForwardTimeout, jurisdiction: jur, cross: cross}

	// 3. The jurisdiction's Raft store, as server NodeID@DiskID. It never
	// bootstraps on open: founding is decided later (foundWhenDue) by the
	// founding rule, so a wiped node rejoins its group instead of forking it.
	sc := n.cfg.Storage
	sc.NodeID, sc.DataDir, sc.RaftAddr = mc.Meta.ServerID(), n.cfg.DataDir, hostPort(bind, n.cfg.RaftPort)
	sc.Bootstrap = false
	sc.Clock, sc.Forwarder = n.cfg.Clock, n.peers
	sc.RaftTLS = n.tls.PeerTLS(pki.SameJurisdiction(jur))
	sc.Logger = n.log.With("component", "storage")
	// Consents count only in the jurisdiction they name; an erasure the FSM
	// applies goes to the KEK's ledger too, so a backup restored later cannot
	// unseal the client's notes.
	sc.Jurisdiction = jur
	if n.cfg.KEKFile != "" {
		if n.kek, err = seal.LoadKEK(n.cfg.KEKFile); err != nil {
			return fmt.Errorf("%w: --kek-file: %w", ErrBadConfig, err)
		}
		kek, elog := n.kek, n.log.With("component", "seal")
		sc.OnErase = func(clientID string, keyIDs []string) {
			if err := kek.RecordErasure(clientID, keyIDs...); err != nil {
				// No client id in logs; Open replays every erasure into the ledger.
				elog.Error("recording an erasure in the KEK's ledger failed; the next start retries", "error", err)
			}
		}
	}
	n.releasePort(&n.cfg.RaftPort)
	if n.store, err = storage.Open(sc); err != nil {
		return fmt.Errorf("cluster: open store: %w", err)
	}
	if _, err := n.system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &raftActor{store: n.store, node: n.cfg.ID, events: n.events}
	}), raftActorName); err != nil {
		return fmt.Errorf("cluster: raft actor: %w", err)
	}

	// 4. Calendar actors as cluster grains of this jurisdiction's kind.
	ac := actors.DefaultConfig()
	ac.Store, ac.Clock, ac.System = n.store, n.cfg.Clock, n.system
	ac.IdleTimeout, ac.RequestTimeout = n.cfg.ActorIdleTimeout, n.cfg.ActorRequestTimeout
	ac.Logger = n.log.With("component", "calendars")
	ac.IsNotFound = func(err error) bool { return errors.Is(err, storage.ErrNotFound) }
	ac.IsStorageUnavailable = func(err error) bool { return errors.Is(err, storage.ErrStorageUnavailable) }
	if n.cals, err = actors.New(ac); err != nil {
		return fmt.Errorf("cluster: calendars: %w", err)
	}
	n.sessions, err = session.New(session.Config{Store: n.store, KEK: n.kek, Node: n.cfg.ID, Clock: n.cfg.Clock,
		Logger: n.log, RequestTimeout: n.cfg.ActorRequestTimeout}) // the session actors add their component
	if err != nil {
		return fmt.Errorf("cluster: sessions: %w", err)
	}
	provider, err := placement.NewProvider(placement.ProviderConfig{Membership: n.verified, Logger: n.log.With("component", "placement")})
	if err != nil {
		return err
	}
	lc := n.cfg.Lookup
	lc.Directory, lc.Logger = n.verified, n.log.With("component", "placement")
	if n.lookup, err = placement.NewLookup(lc); err != nil {
		return err
	}
	n.guard = &remoteGuard{jurisdiction: jur, self: hostPort(bind, n.cfg.ActorPort), cross: cross, log: n.log.With("component", "actor-remote")}
	pc := protocluster.Configure("barberpro", provider, n.lookup,
		remote.Configure(bind, n.cfg.ActorPort,
			remote.WithServerOptions(n.guard.serverOptions(n.tls)...),
			remote.WithDialOptions(
				// Only to the verified member at the dialed address, whose
				// certificate must name that member (node id, jurisdiction).
				grpc.WithTransportCredentials(&memberCreds{tls: n.tls, members: n.verified}),
				grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
					return n.dialer().DialContext(ctx, "tcp", addr)
				}))),
		protocluster.WithKinds(protocluster.NewKind(kind, n.cals.Props()), protocluster.NewKind(SessionKind(jur), n.sessions.Props())),
		protocluster.WithRequestTimeout(n.cfg.ActorRequestTimeout),
		placement.GossipOff())
	n.actors = protocluster.New(n.system, pc)
	n.releasePort(&n.cfg.ActorPort)
	if err := startMember(n.actors); err != nil {
		return fmt.Errorf("cluster: start actor cluster: %w", err)
	}
	n.cals.UseCluster(n.actors, kind)
	n.sessions.UseCluster(n.actors, SessionKind(jur))
	if err := n.cals.Start(); err != nil {
		return fmt.Errorf("cluster: calendars: %w", err)
	}

	// 5. Keep the Raft group in step with gossip.
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	keeper := &groupKeeper{store: n.store, members: n.members, verified: n.prober, peers: n.peers, jurisdiction: jur,
		deadAfter: n.cfg.DeadServerTimeout, interval: n.cfg.GroupCheckInterval,
		log: n.log.With("component", "raft-group"), events: n.events}
	if !n.seedsAnswered.Load() {
		n.bg.Add(1)
		go func() { defer n.bg.Done(); n.retryJoin(ctx, seeds) }()
	}
	n.bg.Add(4)
	go func() { defer n.bg.Done(); n.prober.run(ctx) }()
	keeperCtx, stopKeeper := context.WithCancel(ctx)
	n.stopKeeper, n.keeperDone = stopKeeper, make(chan struct{})
	go func() { defer n.bg.Done(); defer close(n.keeperDone); keeper.run(keeperCtx) }()
	go func() { defer n.bg.Done(); n.keepPeers(ctx, remembered) }()
	go func() { defer n.bg.Done(); n.foundWhenDue(ctx) }()
	n.bg.Add(1)
	go func() { defer n.bg.Done(); n.backupLoop(ctx) }()

	// 6. The API.
	if err := n.serveHTTP(); err != nil {
		return err
	}
	n.log.Info("node started", "http", n.HTTPAddr(), "peer", n.peerLn.Addr().String(), "api_tls", n.cfg.APITLS, "raft", sc.RaftAddr, "gossip", n.members.GossipAddr(),
		"actors", hostPort(bind, n.cfg.ActorPort), "data_dir", n.cfg.DataDir, "jurisdiction", jur,
		"server", sc.NodeID, "bootstrap_expect", n.cfg.BootstrapExpect, "cluster_id", n.store.ClusterID())
	return nil
}

// dialer dials other nodes from this node's own IP, so every connection it opens
// carries its address as the source (what peers and firewall rules see).
func (n *Node) dialer() *net.Dialer {
	return &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(n.cfg.Bind)}}
}

// startMember runs protoactor's StartMember, which panics on a provider error.
func startMember(c *protocluster.Cluster) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	c.StartMember()
	return nil
}

// resolvePorts replaces every zero port with a free one, so the addresses the node
// gossips are the ones it listens on.
//
// Each picked port stays open until the component that uses it binds it
// (takePort, releasePort): closed at once, the kernel could hand the same port
// to the next pick (two components then raced for one port) or to another
// process during the seconds start takes — both failed tests with "address
// already in use".
func (n *Node) resolvePorts() error {
	n.picked = map[*int]net.Listener{}
	for _, p := range []*int{&n.cfg.HTTPPort, &n.cfg.RaftPort, &n.cfg.GossipPort, &n.cfg.ActorPort, &n.cfg.PeerPort} {
		if *p != 0 {
			continue
		}
		ln, err := net.Listen("tcp", hostPort(n.cfg.Bind, 0))
		if err != nil {
			return fmt.Errorf("cluster: pick a port: %w", err)
		}
		*p = ln.Addr().(*net.TCPAddr).Port
		n.picked[p] = ln
	}
	return nil
}

// takePort returns the listener for *p: the one resolvePorts picked, or a new
// one on the configured port.
func (n *Node) takePort(p *int) (net.Listener, error) {
	if ln, ok := n.picked[p]; ok {
		delete(n.picked, p)
		return ln, nil
	}
	return net.Listen("tcp", hostPort(n.cfg.Bind, *p))
}

// releasePort closes the listener resolvePorts holds for *p, right before a
// component that binds the port itself (gossip, Raft, actors) does.
func (n *Node) releasePort(p *int) {
	if ln, ok := n.picked[p]; ok {
		delete(n.picked, p)
		ln.Close()
	}
}

func (n *Node) serveHTTP() (err error) {
	n.registry = prometheus.NewRegistry()
	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.registerMetrics()

	ec := edge.DefaultConfig()
	ec.NodeID, ec.City, ec.Topology = n.cfg.ID, n.cfg.City, n.cfg.Topology
	ec.Store, ec.Calendars = n.store, instrumentCalendars(n.cals, prometheus.WrapRegistererWith(prometheus.Labels{"node": n.cfg.ID}, n.registry), storeVertical(n.store))
	ec.Router = &router{members: n.verified, jurisdiction: n.city.Jurisdiction}
	ec.Placement, ec.Members, ec.Ready = n.placement, n.memberList, n.Ready
	ec.Status, ec.Leave, ec.Remove = n.status, n.leaveAsync, n.remove
	ec.Backup = func(ctx context.Context, w io.Writer) error { _, err := n.store.Backup(ctx, w); return err }
	ec.Clock, ec.Registry = n.cfg.Clock, n.registry
	ec.Auth, ec.Limits, ec.PeerNode = n.tokens, n.cfg.Limits, peerNode
	ec.Sessions = edgeSessions{sessions: n.sessions, store: n.store}
	n.relayBase = &http.Transport{
		DialTLSContext:      n.dialPeer,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
	}
	ec.PeerTransport = &relayTransport{members: n.verified, tries: 2, base: n.relayBase}
	ec.Logger = n.log.With("component", "edge")
	srv, err := edge.New(ec)
	if err != nil {
		return fmt.Errorf("cluster: edge: %w", err)
	}
	if n.httpLn, err = n.takePort(&n.cfg.HTTPPort); err != nil {
		return fmt.Errorf("cluster: http listen: %w", err)
	}
	if n.cfg.APITLS {
		n.httpLn = tls.NewListener(n.httpLn, n.tls.APITLS())
	}
	n.http = n.httpServer(srv.Handler())
	// The peer listener (mutual TLS, nodes of the CA only) takes the requests
	// other nodes relay: only there is ForwardedByHeader honoured, and the rate
	// limits, applied where the client called, are not applied again.
	peer := srv.PeerHandler()
	n.peerMux.edge.Store(&peer)
	n.serve(n.http, n.httpLn)
	return nil
}

// serve runs srv on ln until it is shut down; a failure is what Done yields.
func (n *Node) serve(srv *drain.Server, ln net.Listener) {
	go func() {
		// A Shutdown (Stop, Leave) is not a failure: Done then yields what
		// Leave reports, or nothing for Stop.
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			select {
			case n.served <- err:
			default:
			}
		}
	}()
}

// httpServer is a server for h whose Shutdown (Stop) does not wait on
// connections without a request in flight (drain).
func (n *Node) httpServer(h http.Handler) *drain.Server {
	return drain.Track(&http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	})
}

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// HTTPAddr is the address the API listens on (host:port), once started.
func (n *Node) HTTPAddr() string {
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

// URL is the API's base URL, once started: https with APITLS.
func (n *Node) URL() string {
	if n.cfg.APITLS {
		return "https://" + n.HTTPAddr()
	}
	return "http://" + n.HTTPAddr()
}

// PeerAddr is the address of the peer listener (mutual TLS), once started.
func (n *Node) PeerAddr() string {
	if n.peerLn == nil {
		return ""
	}
	return n.peerLn.Addr().String()
}

// RaftAddr is the address of the node's Raft transport (mutual TLS), once started.
func (n *Node) RaftAddr() string { return hostPort(n.cfg.Bind, n.cfg.RaftPort) }

// ActorAddr is the address of the node's actor remote (gRPC, mutual TLS), once
// started.
func (n *Node) ActorAddr() string { return hostPort(n.cfg.Bind, n.cfg.ActorPort) }

// GossipAddr is the address other nodes --join, once started.
func (n *Node) GossipAddr() string { return n.members.GossipAddr() }

// Sessions are the node's session actors (its jurisdiction's), once started.
func (n *Node) Sessions() *session.Sessions { return n.sessions }

// Store is the node's replicated store, once started.
func (n *Node) Store() *storage.Store { return n.store }

// Ready reports nil once the node can serve: it has joined gossip, and its
// store has a leader and has applied everything committed when it opened.
func (n *Node) Ready() error {
	if n.store == nil || n.members == nil {
		return errors.New("starting")
	}
	select {
	case <-n.leaving:
		return errors.New("leaving the cluster")
	default:
	}
	if !n.seedsAnswered.Load() {
		return fmt.Errorf("joining: none of the --join seeds %v has answered yet (%d attempts); retrying",
			n.seeds(), n.joinAttempts.Load())
	}
	return n.store.Ready()
}

// Done yields the HTTP server's error if serving fails, or Leave's result (nil
// when clean) after the node left the cluster with `cluster leave`. A Stop yields
// nothing.
func (n *Node) Done() <-chan error { return n.served }

// Stop shuts the node down cleanly: stops taking requests and lets in-flight ones
// finish, hands its actors to other nodes, hands Raft leadership over if it holds
// it, closes bbolt, and leaves gossip. It stays a member of its Raft group, so a
// restart on the same data dir resumes it. Safe to call more than once.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
		defer cancel()
		var errs []error
		for p := range n.picked { // Start failed before binding them all
			n.releasePort(p)
		}
		// The public and the peer listener drain at once, each within the
		// shutdown timeout (one after the other, the second got what the first
		// left of it, and a leave under load ended past its deadline).
		drainErrs := make([]error, 2)
		var drained sync.WaitGroup
		for i, l := range []struct {
			srv *drain.Server
			ln  net.Listener
		}{{n.http, n.httpLn}, {n.peerHTTP, n.peerLn}} {
			drained.Add(1)
			go func() {
				defer drained.Done()
				if l.srv != nil {
					drainErrs[i] = l.srv.Shutdown(ctx)
				} else if l.ln != nil {
					drainErrs[i] = l.ln.Close()
				}
			}()
		}
		drained.Wait()
		errs = append(errs, drainErrs...)
		if n.cancel != nil {
			n.cancel()
		}
		n.bg.Wait()
		n.shutdownActors()
		if n.cals != nil {
			n.cals.Stop()
		}
		if n.sessions != nil {
			n.sessions.Stop()
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		if n.members != nil {
			errs = append(errs, n.members.Leave(2*time.Second), n.members.Shutdown())
		}
		n.stopErr = errors.Join(errs...)
		n.log.Info("node stopped", "err", n.stopErr)
	})
	return n.stopErr
}

// ErrLeaving is returned by Leave when the node is already leaving.
var ErrLeaving = errors.New("cluster: the node is already leaving")

// leaveDrain is how long a leaving node keeps serving its calendars' requests
// in flight after withdrawing its actor kinds, while gossip spreads the news.
const leaveDrain = time.Second

// Leave removes the node from the cluster for good (`cluster leave`): it stops
// taking actor work, hands Raft leadership over, has the leader remove it from
// the Raft group, leaves gossip and stops.
func (n *Node) Leave(ctx context.Context) error {
	if !n.left.CompareAndSwap(false, true) {
		return ErrLeaving
	}
	close(n.leaving)
	var errs []error
	// A leaving node keeps its group no more: a membership change it had in
	// flight (a promotion waiting on a follower) would hold up the transfer,
	// its own removal and its Stop past the leave's deadline.
	if n.stopKeeper != nil {
		n.stopKeeper()
		select {
		case <-n.keeperDone:
		case <-ctx.Done():
		}
	}
	// Hand Raft leadership over before anything else changes: the meta change
	// below makes every peer probe this node again, and until they have,
	// requests forwarded to it (proposals, read indexes) cannot reach it — a
	// leader in that window failed reads with "no leader served the read
	// index" (Test_Cluster_GracefulLeaveLosesNoRequest under CI load).
	if n.store.IsLeader() {
		if err := n.store.TransferLeadership(ctx); err != nil && !errors.Is(err, storage.ErrNoOtherVoter) {
			errs = append(errs, fmt.Errorf("transfer leadership: %w", err))
		}
	}
	// Withdraw this node's actor kinds and say it is leaving: every node
	// (this one included) then places its calendars elsewhere, and no Raft
	// leader adds it back once removed, while the actor system stays up to
	// finish the requests in flight and to reach the Raft leader below.
	if err := n.members.UpdateMeta(func(m *membership.Meta) { m.Kinds, m.Leaving = nil, true }); err != nil {
		errs = append(errs, fmt.Errorf("withdraw actor kinds: %w", err))
	}
	select {
	case <-time.After(leaveDrain):
	case <-ctx.Done():
	}
	// Leadership may have come back meanwhile (an election among few voters).
	if n.store.IsLeader() {
		if err := n.store.TransferLeadership(ctx); err != nil && !errors.Is(err, storage.ErrNoOtherVoter) {
			errs = append(errs, fmt.Errorf("transfer leadership: %w", err))
		}
	}
	if err := n.removeSelf(ctx); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, n.Stop())
	err := errors.Join(errs...)
	n.log.Info("node left the cluster", "err", err)
	return err
}

// shutdownActors leaves the actor cluster gracefully, once: peers stop placing
// calendars here and this node's activations stop.
func (n *Node) shutdownActors() {
	n.actorsOnce.Do(func() {
		if n.actors != nil {
			n.actors.Shutdown(true)
		}
	})
}

// removeSelf asks the group's leader to remove this node, retrying across a
// leader change until ctx ends. It is done once this server is not in its
// latest configuration (a non-empty one: a joiner that has none yet may be in
// the leader's): the removal happened (raft may answer a leader that
// removed itself with "leadership lost", and a removed server never learns
// a leader again, so asking on would only wait for ctx).
func (n *Node) removeSelf(ctx context.Context) error {
	for {
		if servers, err := n.store.Servers(); err == nil && len(servers) > 0 && !slices.ContainsFunc(servers, func(s storage.Server) bool { return s.ID == string(n.store.ID()) }) {
			return nil
		}
		leader, _ := n.store.Leader()
		var err error
		switch {
		case leader == "":
			err = storage.ErrNotLeader
		case leader == n.store.ID():
			err = n.store.RemoveServer(ctx, string(n.store.ID()))
		default:
			err = n.peers.RemoveNode(ctx, membership.NodeOf(string(leader)), n.cfg.ID)
		}
		if err == nil || !errors.Is(err, storage.ErrNotLeader) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: remove %s from its Raft group: %w", n.cfg.ID, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// leaveAsync serves POST /v1/cluster/leave: the answer goes out first, then the
// node leaves and its process ends (Done yields nil).
func (n *Node) leaveAsync(context.Context) error {
	if err := n.canLeave(); err != nil {
		return err
	}
	// Two leave requests at once start one leave (Leave closes n.leaving once).
	if !n.leaveStarted.CompareAndSwap(false, true) {
		return nil
	}
	go func() {
		time.Sleep(100 * time.Millisecond) // let the 202 reach the operator
		ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.ShutdownTimeout)
		defer cancel()
		err := n.Leave(ctx)
		select {
		case n.served <- err:
		default:
		}
	}()
	return nil
}

// canLeave refuses the leave of its group's only voter when no non-voter could
// take its place (storage.ErrLastVoter): Raft keeps at least one voter, so the
// removal would fail after the node had stopped serving.
func (n *Node) canLeave() error {
	servers, err := n.store.Servers()
	if err != nil {
		return err
	}
	voters, self := 0, false
	for _, s := range servers {
		if s.Voter {
			voters++
			self = self || membership.NodeOf(s.ID) == n.cfg.ID
		}
	}
	if self && voters == 1 && len(servers) == 1 {
		return fmt.Errorf("cluster: %s: %w", n.cfg.ID, storage.ErrLastVoter)
	}
	return nil
}

// remove serves POST /v1/cluster/members/{id}/remove: drop a dead node from its
// jurisdiction's Raft group, through that group's leader. A member gossip shows
// alive is refused (edge.ErrMemberAlive) unless force: removing a live voter
// shrinks its group while it still serves.
func (n *Node) remove(ctx context.Context, id string, force bool) error {
	var target *membership.Member
	alive := false
	for _, m := range n.members.AllMembers() {
		if m.NodeID == id {
			target = &m
			alive = alive || m.State == membership.StateAlive
		}
	}
	if alive && !force {
		return fmt.Errorf("cluster: %q: %w", id, edge.ErrMemberAlive)
	}
	servers, _ := n.store.Servers()
	inGroup := false
	for _, s := range servers {
		inGroup = inGroup || membership.NodeOf(s.ID) == id
	}
	switch {
	case target == nil && !inGroup:
		return fmt.Errorf("%w: %q", edge.ErrUnknownMember, id)
	case target != nil && target.Jurisdiction != n.city.Jurisdiction:
		// Another jurisdiction's group: its nodes alone may ask their leader
		// (the actor remote drops removals from other jurisdictions), so relay
		// the request to one of them over the peer listener.
		return n.removeElsewhere(ctx, target.Jurisdiction, id, force)
	}
	leader, _ := n.store.Leader()
	if leader == "" {
		return fmt.Errorf("%w: no leader known", storage.ErrNotLeader)
	}
	return n.peers.RemoveNode(ctx, membership.NodeOf(string(leader)), id)
}

// placement answers where a provider's calendar actor is (or would be) active.
func (n *Node) placement(ctx context.Context, providerID string) (edge.Placement, error) {
	if _, err := n.store.Provider(ctx, providerID); err != nil {
		return edge.Placement{}, err
	}
	m, err := n.lookup.Owner(providerID, CalendarKind(n.city.Jurisdiction))
	if err != nil {
		return edge.Placement{}, fmt.Errorf("%w: %w", actors.ErrUnavailable, err)
	}
	return edge.Placement{Node: m.NodeID, City: m.City, Jurisdiction: m.Jurisdiction}, nil
}
