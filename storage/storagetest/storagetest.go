// Package storagetest has helpers for tests that need a running storage.Store:
// single nodes on loopback TCP and in-memory Raft groups, plus builders for
// the commands the Store applies.
package storagetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
)

// ReadyTimeout bounds how long the helpers wait for a store to become ready.
const ReadyTimeout = 10 * time.Second

// Logger returns a JSON slog logger on stderr at the level named by the
// STORAGE_TEST_LOG environment variable (debug, info, warn, error); without it
// logs are discarded.
func Logger() *slog.Logger {
	var lv slog.Level
	switch os.Getenv("STORAGE_TEST_LOG") {
	case "":
		return slog.New(slog.NewJSONHandler(io.Discard, nil))
	case "debug":
		lv = slog.LevelDebug
	case "info":
		lv = slog.LevelInfo
	case "warn":
		lv = slog.LevelWarn
	default:
		lv = slog.LevelError
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
}

// Config returns storage.LocalConfig for a single bootstrapping node in a
// fresh t.TempDir on 127.0.0.1:0.
func Config(t testing.TB) storage.Config {
	t.Helper()
	c := storage.LocalConfig()
	c.NodeID = "node1"
	c.DataDir = t.TempDir()
	c.RaftAddr = "127.0.0.1:0"
	c.Bootstrap = true
	c.Logger = Logger()
	return c
}

// MustOpen opens a Store with cfg, filling an empty NodeID ("node1"), DataDir
// (t.TempDir), RaftAddr (127.0.0.1:0, when no Transport) and Logger, closes it
// in t.Cleanup, and, when cfg.Bootstrap is set, waits until it is ready and
// leader.
func MustOpen(t testing.TB, cfg storage.Config) *storage.Store {
	t.Helper()
	if cfg.NodeID == "" {
		cfg.NodeID = "node1"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.RaftAddr == "" && cfg.Transport == nil {
		cfg.RaftAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger()
	}
	s, err := storage.Open(cfg)
	if err != nil {
		t.Fatalf("storage.Open(%s): %v", cfg.DataDir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close %s: %v", cfg.NodeID, err)
		}
	})
	if cfg.Bootstrap {
		MustWaitLeader(t, s)
	}
	return s
}

// MustWaitLeader waits until s is ready and is the leader.
func MustWaitLeader(t testing.TB, s *storage.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	for s.Raft().State() != raft.Leader {
		select {
		case <-ctx.Done():
			t.Fatalf("not leader after %s: %+v", ReadyTimeout, s.Stats())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// MustOpenCluster starts n stores joined by raft InmemTransports, bootstraps
// them as one group of n voters, waits for all to be ready and returns them
// with the leader first. Each is closed in t.Cleanup.
func MustOpenCluster(t testing.TB, n int) []*storage.Store {
	t.Helper()
	stores, _ := MustOpenInmemCluster(t, n)
	return stores
}

// MustOpenInmemCluster is MustOpenCluster that also returns each store's
// transport (trans[i] belongs to stores[i]), so tests can partition nodes
// with Disconnect/Connect.
func MustOpenInmemCluster(t testing.TB, n int) (stores []*storage.Store, trans []*raft.InmemTransport) {
	t.Helper()
	return MustOpenInmemClusterWith(t, n, storage.LocalConfig())
}

// MustOpenInmemClusterWith is MustOpenInmemCluster with base as every
// node's configuration (NodeID and Transport are set here).
func MustOpenInmemClusterWith(t testing.TB, n int, base storage.Config) (stores []*storage.Store, trans []*raft.InmemTransport) {
	t.Helper()
	return MustOpenInmemClusterWrapped(t, n, base, nil)
}

// MustOpenInmemClusterWrapped is MustOpenInmemClusterWith where each store
// uses wrap(trans[i]) as its transport (trans[i] itself when wrap is nil),
// for tests that filter what a node sends.
func MustOpenInmemClusterWrapped(t testing.TB, n int, base storage.Config, wrap func(*raft.InmemTransport) raft.Transport) (stores []*storage.Store, trans []*raft.InmemTransport) {
	t.Helper()
	trans = make([]*raft.InmemTransport, n)
	servers := make([]raft.Server, n)
	for i := range n {
		addr, tr := raft.NewInmemTransport("")
		trans[i] = tr
		servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprintf("node%d", i+1)), Address: addr}
	}
	for i := range n {
		for j := range n {
			if i != j {
				trans[i].Connect(trans[j].LocalAddr(), trans[j])
			}
		}
	}
	stores = make([]*storage.Store, n)
	for i := range n {
		cfg := base
		cfg.NodeID = string(servers[i].ID)
		cfg.Bootstrap = false
		cfg.DataDir = ""
		cfg.Transport = trans[i]
		if wrap != nil {
			cfg.Transport = wrap(trans[i])
		}
		stores[i] = MustOpen(t, cfg)
	}
	conf := raft.Configuration{Servers: servers}
	for _, s := range stores {
		if err := s.Raft().BootstrapCluster(conf).Error(); err != nil {
			t.Fatalf("BootstrapCluster: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	for _, s := range stores {
		if err := s.WaitReady(ctx); err != nil {
			t.Fatalf("WaitReady: %v", err)
		}
	}
	for {
		for i, s := range stores {
			if s.Raft().State() == raft.Leader {
				stores[0], stores[i] = stores[i], stores[0]
				trans[0], trans[i] = trans[i], trans[0]
				return stores, trans
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no leader among %d stores after %s", n, ReadyTimeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// T0 is the reference instant of the builders: 2026-03-02 09:00 UTC.
var T0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// At returns T0 plus d in Unix milliseconds.
func At(d time.Duration) int64 { return T0.Add(d).UnixMilli() }

// Provider returns a valid provider record with id.
func Provider(id string) *bookingv1.Provider {
	return &bookingv1.Provider{
		Id: id, Name: "Provider " + id, Vertical: "barber", City: "buenos-aires",
		Jurisdiction: "ar", Timezone: "America/Argentina/Buenos_Aires",
		Services: []*bookingv1.Service{{Id: "cut", Name: "Cut", DurationMinutes: 30, BufferMinutes: 10,
			Price: &bookingv1.Money{Cents: 1500000, Currency: "ARS"}}},
		SlotStepMinutes: 15,
	}
}

// CreateProvider returns the command creating p.
func CreateProvider(p *bookingv1.Provider) *bookingv1.Command {
	return &bookingv1.Command{ProposedAtMs: At(-24 * time.Hour), Op: &bookingv1.Command_CreateProvider{CreateProvider: &bookingv1.CreateProvider{Provider: p}}}
}

// Booking returns a booking of providerID for client "client1" over
// [T0+start, T0+end), blocked until T0+blocked.
func Booking(id, providerID string, start, end, blocked time.Duration) *bookingv1.Booking {
	return &bookingv1.Booking{
		Id: id, ProviderId: providerID, ServiceId: "cut", ClientId: "client1",
		StartMs: At(start), EndMs: At(end), BlockedUntilMs: At(blocked),
		Price: &bookingv1.Money{Cents: 1500000, Currency: "ARS"},
	}
}

// CreateBooking returns the command creating b.
func CreateBooking(b *bookingv1.Booking) *bookingv1.Command {
	return &bookingv1.Command{ProposedAtMs: At(-time.Hour), Op: &bookingv1.Command_CreateBooking{CreateBooking: &bookingv1.CreateBooking{Booking: b}}}
}

// CancelBooking returns the command cancelling booking id.
func CancelBooking(id string) *bookingv1.Command {
	return &bookingv1.Command{ProposedAtMs: At(-time.Hour), Op: &bookingv1.Command_CancelBooking{CancelBooking: &bookingv1.CancelBooking{BookingId: id}}}
}

// RescheduleBooking returns the command moving booking id to the given times
// (offsets from T0).
func RescheduleBooking(id string, start, end, blocked time.Duration) *bookingv1.Command {
	return &bookingv1.Command{ProposedAtMs: At(-time.Hour), Op: &bookingv1.Command_RescheduleBooking{RescheduleBooking: &bookingv1.RescheduleBooking{
		BookingId: id, StartMs: At(start), EndMs: At(end), BlockedUntilMs: At(blocked)}}}
}

// WithKey sets cmd's idempotency key and request hash and returns cmd.
func WithKey(cmd *bookingv1.Command, key, hash string) *bookingv1.Command {
	cmd.IdempotencyKey = key
	cmd.RequestHash = []byte(hash)
	return cmd
}
