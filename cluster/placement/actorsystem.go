package placement

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
)

// GossipOff is a cluster.ConfigOption that all but stops protoactor's own
// gossip (one round an hour) and its heartbeat expiry. With Provider,
// membership is the only source of topology and failure detection; protoactor's
// gossip adds nothing we use (topology consensus, shared block lists, 20 s
// heartbeat expiry) and, at the pinned commit, writes its BlockList from the
// gossip actor without synchronisation against the provider's
// UpdateClusterTopology (a data race the race detector reports).
func GossipOff() cluster.ConfigOption {
	return func(c *cluster.Config) {
		c.GossipInterval = time.Hour
		c.HeartbeatExpiration = 24 * time.Hour
	}
}

// NewActorSystem returns an actor system for a cluster member: its ID is the
// node's member id (membership.Meta.MemberID, NodeID@BootID), which protoactor's
// gossip and Provider require, and it logs to logger instead of protoactor's
// coloured stdout. opts are applied after the logger option.
func NewActorSystem(memberID string, logger *slog.Logger, minLevel slog.Leveler, opts ...actor.ConfigOption) *actor.ActorSystem {
	all := append([]actor.ConfigOption{actor.WithLoggerFactory(LoggerFactory(logger.With("member", memberID), minLevel))}, opts...)
	system := actor.NewActorSystem(all...)
	system.ID = memberID // before any cluster or remote reads it
	return system
}

// LoggerFactory returns an actor.WithLoggerFactory argument that sends
// protoactor's records to logger, tagged lib=protoactor, dropping those below
// minLevel (protoactor is chatty at Info: slog.LevelWarn is a good default).
func LoggerFactory(logger *slog.Logger, minLevel slog.Leveler) func(*actor.ActorSystem) *slog.Logger {
	return func(*actor.ActorSystem) *slog.Logger {
		return slog.New(levelFilter{h: logger.Handler(), min: minLevel}).With("lib", "protoactor")
	}
}

type levelFilter struct {
	h   slog.Handler
	min slog.Leveler
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min.Level() && f.h.Enabled(ctx, l)
}
func (f levelFilter) Handle(ctx context.Context, r slog.Record) error { return f.h.Handle(ctx, r) }
func (f levelFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return levelFilter{h: f.h.WithAttrs(as), min: f.min}
}
func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{h: f.h.WithGroup(name), min: f.min}
}
