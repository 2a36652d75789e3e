package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/barberpro/edge/actors/internal/activation"
	"github.com/barberpro/edge/cluster/placement"
	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	calendarv1 "github.com/barberpro/edge/protos/calendar/v1"
	"github.com/barberpro/edge/storage/seal"
)

// Store is what a session actor needs of the jurisdiction's replicated store;
// *storage.Store satisfies it. Every method may be called from many goroutines at
// once. A missing record is an error wrapping storage.ErrNotFound (or a nil
// record with a nil error). Propose returns a non-nil CommandResult whenever the
// FSM judged the command; an error without a result means its fate is unknown.
//
// A Store that also has LinearizableRead(ctx) error (*storage.Store has) is
// asked to catch up with its leader before each request reads, so a session
// never answers from a replica that trails its own last write.
type Store interface {
	// Booking returns the booking with that id.
	Booking(ctx context.Context, id string) (*bookingv1.Booking, error)
	// Note returns the sealed notes of a session (booking id).
	Note(ctx context.Context, bookingID string) (*bookingv1.SealedNote, error)
	// ClientKey returns the client's wrapped data key.
	ClientKey(ctx context.Context, clientID string) (*bookingv1.ClientKey, error)
	// Erasure returns the record of the erasure of the client's health data.
	Erasure(ctx context.Context, clientID string) (*bookingv1.Erasure, error)
	// Propose replicates cmd through Raft and returns the FSM's result.
	Propose(ctx context.Context, cmd *bookingv1.Command) (*bookingv1.CommandResult, error)
}

// Errors returned by Sessions (errors.Is). Do wraps the one of its reply's code.
var (
	// ErrNotFound: no such booking, or the booking is not a session.
	ErrNotFound = errors.New("session: not found")
	// ErrForbidden: the caller may not do this to this session (notes and moves
	// are the treating provider's only).
	ErrForbidden = errors.New("session: forbidden")
	// ErrErased: the client's health data was erased.
	ErrErased = errors.New("session: health data erased")
	// ErrInvalid: the request could never succeed as asked (no booking id, no
	// op, a note over MaxNoteBytes, a target status a move cannot reach).
	ErrInvalid = errors.New("session: invalid request")
	// ErrInvalidTransition: the session's status does not allow the move.
	ErrInvalidTransition = errors.New("session: invalid session move")
	// ErrUnavailable: no session actor, store or key could answer in time, or
	// this node has no KEK for notes.
	ErrUnavailable = errors.New("session: unavailable")
	// ErrStorageUnavailable: the store cannot write now (full disk, I/O
	// error); nothing was written.
	ErrStorageUnavailable = errors.New("session: the store cannot write now")
)

// MaxNoteBytes is the largest note text PutNotes accepts (64 KiB).
const MaxNoteBytes = 64 << 10

// DefaultRequestTimeout bounds one request in a session actor (all its store
// calls together) when Config.RequestTimeout is 0.
const DefaultRequestTimeout = 5 * time.Second

// idleTimeout passivates a session actor after that long without requests.
const idleTimeout = 2 * time.Minute

// Config configures Sessions.
type Config struct {
	// Store is the jurisdiction's replicated store. Required.
	Store Store
	// KEK is the jurisdiction's key-encryption key. nil: notes answer
	// ERROR_CODE_UNAVAILABLE (sessions themselves still work).
	KEK *seal.KEK
	// Node is this node's id, recorded in audit records whose request names no
	// node.
	Node string
	// Clock is the time source (default time.Now).
	Clock func() time.Time
	// Logger receives the package's logs (never note text nor client ids).
	// Default: JSON on stderr.
	Logger *slog.Logger
	// RequestTimeout bounds one request in a session actor, all its store calls
	// together (default DefaultRequestTimeout; at least 10ms).
	RequestTimeout time.Duration
}

// Sessions is the front door to the session actors: Do routes a request to its
// booking's actor (activating it on demand), in this process (local directory)
// or through the actor cluster (UseCluster). Safe for concurrent use.
type Sessions struct {
	cfg  Config
	idle time.Duration

	mu      sync.Mutex
	cluster *cluster.Cluster
	kind    string
	dir     *localDirectory
	system  *actor.ActorSystem // local mode's own system
	stopped bool
}

// New validates cfg (zero Clock, Logger and RequestTimeout take their defaults)
// and returns Sessions. It starts nothing: local mode creates its actor system on
// the first Do, cluster mode (UseCluster) uses the cluster's.
func New(cfg Config) (*Sessions, error) {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if cfg.RequestTimeout < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("RequestTimeout %s is below 10ms", cfg.RequestTimeout))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("session: invalid config: %w", errors.Join(errs...))
	}
	return &Sessions{cfg: cfg, idle: idleTimeout}, nil
}

// Kind is the actor kind of the sessions of jurisdiction j: "session-" + j. A
// node registers only its own jurisdiction's kind, so a session activates only
// in its home jurisdiction.
func Kind(jurisdiction string) string { return placement.Kind("session", jurisdiction) }

// Props are the props of the session actor as a cluster grain: register them as
// the session kind (cluster.NewKind(Kind(j), s.Props())). The grain's identity
// is the booking id; it stops itself after a while idle and the cluster
// activates it afresh on demand.
func (s *Sessions) Props() *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return newSessionActor(s, "", nil) })
}

// UseCluster routes Do through the actor cluster as grain requests of kind
// (Kind(jurisdiction)) instead of the in-process directory. Call it before the
// first Do.
func (s *Sessions) UseCluster(cl *cluster.Cluster, kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cluster, s.kind = cl, kind
}

// Stop stops the session actors of the in-process directory and the actor
// system Do created for them; later requests fail with ErrUnavailable. In
// cluster mode it only refuses later requests: the cluster stops its grains.
func (s *Sessions) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	d, sys := s.dir, s.system
	s.mu.Unlock()
	if d != nil {
		d.Close(s.cfg.RequestTimeout)
	}
	if sys != nil {
		sys.Shutdown()
	}
}

// Do sends req to its session's actor and returns the actor's answer. The reply
// is non-nil whenever an actor (or Do's own validation) answered; when its
// error code is set, err wraps the package sentinel of that code (ErrNotFound,
// ErrForbidden, ErrErased, ErrInvalid, ErrInvalidTransition, ErrUnavailable,
// ErrStorageUnavailable). When no actor answered, the reply is nil and err wraps
// ErrUnavailable.
func (s *Sessions) Do(ctx context.Context, req *calendarv1.SessionRequest) (*calendarv1.SessionReply, error) {
	if req.GetBookingId() == "" {
		rep := errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "booking_id is required")
		return rep, replyError(rep)
	}
	if req.GetOp() == nil {
		rep := errReply(calendarv1.ErrorCode_ERROR_CODE_INVALID, "the request names no operation")
		return rep, replyError(rep)
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: sessions stopped", ErrUnavailable)
	}
	cl, kind := s.cluster, s.kind
	if cl == nil && s.dir == nil {
		s.startLocal()
	}
	d := s.dir
	s.mu.Unlock()
	var rep *calendarv1.SessionReply
	var err error
	if cl != nil {
		if _, ok := ctx.Deadline(); !ok {
			// Retries go on until ctx ends: bound them.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 3*s.cfg.RequestTimeout)
			defer cancel()
		}
		rep, err = activation.RequestGrain[*calendarv1.SessionReply](ctx, cl, kind, req.GetBookingId(), req, sessionNames)
	} else {
		rep, err = d.request(ctx, req.GetBookingId(), req, s.cfg.RequestTimeout+time.Second)
	}
	if err != nil {
		return nil, err
	}
	return rep, replyError(rep)
}

// startLocal creates the in-process actor system and directory; s.mu is held.
func (s *Sessions) startLocal() {
	logger := s.cfg.Logger
	s.system = actor.NewActorSystem(
		actor.WithLoggerFactory(func(sys *actor.ActorSystem) *slog.Logger {
			return logger.With(slog.String("lib", "protoactor"), slog.String("system", sys.ID))
		}),
		actor.WithDeadLetterRequestLogging(false),
	)
	s.dir = newLocalDirectory(s, s.system)
}

// sentinelOf maps a reply's error code to the package's sentinel.
func sentinelOf(code calendarv1.ErrorCode) error {
	switch code {
	case calendarv1.ErrorCode_ERROR_CODE_UNSPECIFIED:
		return nil
	case calendarv1.ErrorCode_ERROR_CODE_NOT_FOUND:
		return ErrNotFound
	case calendarv1.ErrorCode_ERROR_CODE_FORBIDDEN:
		return ErrForbidden
	case calendarv1.ErrorCode_ERROR_CODE_ERASED:
		return ErrErased
	case calendarv1.ErrorCode_ERROR_CODE_INVALID, calendarv1.ErrorCode_ERROR_CODE_IDEMPOTENCY_MISMATCH:
		return ErrInvalid
	case calendarv1.ErrorCode_ERROR_CODE_INVALID_TRANSITION:
		return ErrInvalidTransition
	case calendarv1.ErrorCode_ERROR_CODE_STORAGE_UNAVAILABLE:
		return ErrStorageUnavailable
	default:
		return ErrUnavailable
	}
}

// replyError is nil for a successful reply, else an error wrapping the sentinel
// of its code and saying its detail.
func replyError(r *calendarv1.SessionReply) error {
	if r == nil {
		return fmt.Errorf("%w: empty reply", ErrUnavailable)
	}
	s := sentinelOf(r.GetError())
	if s == nil {
		return nil
	}
	if r.GetDetail() != "" {
		return fmt.Errorf("%w: %s", s, r.GetDetail())
	}
	return s
}

func errReply(code calendarv1.ErrorCode, format string, args ...any) *calendarv1.SessionReply {
	return &calendarv1.SessionReply{Error: code, Detail: fmt.Sprintf(format, args...)}
}
