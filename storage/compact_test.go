package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// compactCmd is a Compact proposed at T0+at.
func compactCmd(at, ttl, retention time.Duration, max int32) *bookingv1.Command {
	return &bookingv1.Command{ProposedAtMs: st.At(at), Op: &bookingv1.Command_Compact{Compact: &bookingv1.Compact{
		IdempotencyTtlMs: ttl.Milliseconds(), CancelledRetentionMs: retention.Milliseconds(), MaxRemovals: max}}}
}

// at sets cmd's proposed_at_ms to T0+d and returns it.
func at(cmd *bookingv1.Command, d time.Duration) *bookingv1.Command {
	cmd.ProposedAtMs = st.At(d)
	return cmd
}

type fsmSeq struct {
	t   *testing.T
	fsm *storage.TestFSM
	idx uint64
}

func newFSMSeq(t *testing.T) *fsmSeq {
	fsm, err := storage.OpenTestFSM(filepath.Join(t.TempDir(), "fsm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fsm.Close() })
	return &fsmSeq{t: t, fsm: fsm}
}

// apply applies one command in its own log and returns its result.
func (s *fsmSeq) apply(cmd *bookingv1.Command) *bookingv1.CommandResult {
	s.t.Helper()
	s.idx++
	res := s.fsm.Apply(s.idx, mustMarshal(s.t, cmd))
	if len(res) != 1 {
		s.t.Fatalf("%d results", len(res))
	}
	return res[0]
}

func (s *fsmSeq) ok(cmd *bookingv1.Command) *bookingv1.CommandResult {
	s.t.Helper()
	r := s.apply(cmd)
	if r.Code != bookingv1.ResultCode_RESULT_CODE_OK {
		s.t.Fatalf("%v: %v %s", cmd.Op, r.Code, r.Detail)
	}
	return r
}

func (s *fsmSeq) dump() map[string]map[string]string {
	s.t.Helper()
	d, err := s.fsm.Dump()
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

// TestFSM_IdempotencyExpiresByEntryTime: an idempotency record is removed by
// the first Compact whose proposed_at_ms is more than the TTL after the
// record's entry. Before, a repeat with the key replays the first answer;
// after, it takes effect anew. The FSM reads no clock: T0 lies months in the
// past of the wall clock, yet only entry times decide.
func TestFSM_IdempotencyExpiresByEntryTime(t *testing.T) {
	s := newFSMSeq(t)
	ttl := 24 * time.Hour
	s.ok(st.CreateProvider(st.Provider("p")))
	first := s.ok(at(st.WithKey(st.CreateBooking(st.Booking("b1", "p", 48*time.Hour, 49*time.Hour, 49*time.Hour)), "k", "h"), 0))
	if n := len(s.dump()["idempotency_time"]); n != 1 {
		t.Fatalf("idempotency_time has %d entries, want 1", n)
	}
	// The edge sends a repeat with a new booking id (it assigns ids per request).
	repeat := func(id string, when time.Duration) *bookingv1.CommandResult {
		return s.ok(at(st.WithKey(st.CreateBooking(st.Booking(id, "p", 50*time.Hour, 51*time.Hour, 51*time.Hour)), "k", "h"), when))
	}

	if r := s.ok(compactCmd(ttl, ttl, 0, 100)); r.Removed != 0 {
		t.Fatalf("compact at exactly the TTL removed %d", r.Removed)
	}
	if r := repeat("b2", ttl+time.Minute); r.Booking.Id != "b1" || r.Booking.Version != first.Booking.Version {
		t.Fatalf("repeat before compaction: %v, want the replay of b1", r.Booking)
	}
	r := s.ok(compactCmd(ttl+time.Millisecond, ttl, 0, 100))
	if r.Removed != 1 || r.More {
		t.Fatalf("compact past the TTL: removed %d more %v", r.Removed, r.More)
	}
	d := s.dump()
	if len(d["idempotency"]) != 0 || len(d["idempotency_time"]) != 0 {
		t.Fatalf("record left after expiry: %v / %v", d["idempotency"], d["idempotency_time"])
	}
	if r := repeat("b3", ttl+2*time.Minute); r.Booking.Id != "b3" {
		t.Fatalf("repeat after expiry: %v, want a new booking b3", r.Booking)
	}
	if n := len(s.dump()["bookings"]); n != 2 {
		t.Fatalf("%d bookings, want b1 and b3", n)
	}
}

// TestFSM_CompactCancelledBookings: a cancelled booking goes with its
// client_bookings entry once its cancellation is older than the retention; a
// confirmed one, and a cancelled one not yet due, stay.
func TestFSM_CompactCancelledBookings(t *testing.T) {
	s := newFSMSeq(t)
	keep := 30 * 24 * time.Hour
	s.ok(st.CreateProvider(st.Provider("p")))
	s.ok(at(st.CreateBooking(st.Booking("old", "p", 0, time.Hour, time.Hour)), 0))
	s.ok(at(st.CreateBooking(st.Booking("live", "p", 2*time.Hour, 3*time.Hour, 3*time.Hour)), 0))
	s.ok(at(st.CreateBooking(st.Booking("young", "p", 4*time.Hour, 5*time.Hour, 5*time.Hour)), 0))
	s.ok(at(st.CancelBooking("old"), time.Hour))
	s.ok(at(st.CancelBooking("young"), 10*24*time.Hour))
	if d := s.dump(); len(d["cancelled_time"]) != 2 || len(d["client_bookings"]) != 3 {
		t.Fatalf("before: cancelled_time %d client_bookings %d", len(d["cancelled_time"]), len(d["client_bookings"]))
	}
	if r := s.ok(compactCmd(time.Hour+keep, 0, keep, 100)); r.Removed != 0 {
		t.Fatalf("compact at exactly the retention removed %d", r.Removed)
	}
	r := s.ok(compactCmd(time.Hour+keep+time.Millisecond, 0, keep, 100))
	if r.Removed != 1 {
		t.Fatalf("removed %d, want 1", r.Removed)
	}
	d := s.dump()
	if _, ok := d["bookings"]["old"]; ok {
		t.Fatal("the old cancelled booking is still there")
	}
	for _, id := range []string{"live", "young"} {
		if _, ok := d["bookings"][id]; !ok {
			t.Fatalf("%s was removed", id)
		}
	}
	if len(d["client_bookings"]) != 2 || len(d["cancelled_time"]) != 1 || len(d["provider_time"]) != 1 {
		t.Fatalf("indexes after: client_bookings %d cancelled_time %d provider_time %d",
			len(d["client_bookings"]), len(d["cancelled_time"]), len(d["provider_time"]))
	}
	for k := range d["client_bookings"] {
		if bytes.HasSuffix([]byte(k), []byte("old")) {
			t.Fatal("client_bookings entry of the removed booking left")
		}
	}
	// Cancelling it again now answers not found; the id may be used again.
	if r := s.apply(at(st.CancelBooking("old"), 40*24*time.Hour)); r.Code != bookingv1.ResultCode_RESULT_CODE_NOT_FOUND {
		t.Fatalf("cancel of a compacted booking: %v", r.Code)
	}
}

// TestFSM_CompactBoundedWork: one Compact removes at most max_removals
// records per kind and says whether more are due; following ones finish.
func TestFSM_CompactBoundedWork(t *testing.T) {
	s := newFSMSeq(t)
	s.ok(st.CreateProvider(st.Provider("p")))
	for i := range 25 {
		s.ok(at(st.WithKey(st.CreateBooking(st.Booking(fmt.Sprintf("b%d", i), "p", time.Duration(i)*time.Hour, time.Duration(i)*time.Hour+time.Minute, time.Duration(i)*time.Hour+time.Minute)),
			fmt.Sprintf("k%d", i), "h"), time.Duration(i)*time.Second))
	}
	var rounds []uint64
	for {
		r := s.ok(compactCmd(time.Hour, time.Minute, 0, 10))
		rounds = append(rounds, r.Removed)
		if !r.More {
			break
		}
		if len(rounds) > 5 {
			t.Fatalf("no end: %v", rounds)
		}
	}
	if fmt.Sprint(rounds) != "[10 10 5]" {
		t.Fatalf("removed per round %v, want [10 10 5]", rounds)
	}
	for _, bad := range []*bookingv1.Command{
		compactCmd(time.Hour, time.Minute, 0, 0),
		compactCmd(time.Hour, time.Minute, 0, storage.MaxCompactRemovals+1),
		compactCmd(time.Hour, -time.Minute, 0, 10),
		st.WithKey(compactCmd(time.Hour, time.Minute, 0, 10), "key", "h"),
		at(compactCmd(0, time.Minute, 0, 10), 0),
	} {
		if bad.ProposedAtMs == st.At(0) {
			bad.ProposedAtMs = 0
		}
		if r := s.apply(bad); r.Code != bookingv1.ResultCode_RESULT_CODE_INVALID {
			t.Errorf("%v: %v, want INVALID", bad, r.Code)
		}
	}
}

// TestFSM_IndexesBuiltForOldFiles: an fsm.db written before the time indexes
// existed (or a snapshot of one) gets them on open, built from the records:
// cancelled_time as a replica that maintained it all along has it, and an
// empty idempotency_time entry per record, which stays in the idempotency
// bucket of that format (idemlocator.go) and is still replayed from there.
func TestFSM_IndexesBuiltForOldFiles(t *testing.T) {
	s := newFSMSeq(t)
	s.ok(st.CreateProvider(st.Provider("p")))
	s.ok(at(st.WithKey(st.CreateBooking(st.Booking("a", "p", 0, time.Hour, time.Hour)), "ka", "h"), 0))
	s.ok(at(st.WithKey(st.CreateBooking(st.Booking("b", "p", 2*time.Hour, 3*time.Hour, 3*time.Hour)), "kb", "h"), time.Minute))
	s.ok(at(st.CancelBooking("a"), time.Hour))
	current := s.dump()

	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for name, kv := range current {
			if name == "idempotency_time" || name == "cancelled_time" {
				continue // the old format
			}
			b, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			for k, v := range kv {
				if err := b.Put([]byte(k), []byte(v)); err != nil {
					return err
				}
			}
		}
		// That format kept each record under its key.
		for k, v := range current["idempotency_time"] {
			if err := tx.Bucket([]byte("idempotency")).Put([]byte(k[8:]), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	old, err := storage.OpenTestFSM(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	d, err := old.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(d["cancelled_time"]) != fmt.Sprint(current["cancelled_time"]) {
		t.Fatalf("cancelled_time built as %q, maintained as %q", d["cancelled_time"], current["cancelled_time"])
	}
	if len(d["idempotency_time"]) != 2 || len(d["idempotency"]) != 2 {
		t.Fatalf("idempotency_time %q for the records %q", d["idempotency_time"], d["idempotency"])
	}
	for k, v := range current["idempotency_time"] {
		if e, ok := d["idempotency_time"][k]; !ok || e != "" || d["idempotency"][k[8:]] != v {
			t.Fatalf("record %q: entry %q (present %v), record kept %v", k[8:], e, ok, d["idempotency"][k[8:]] == v)
		}
	}
	old2 := &fsmSeq{t: t, fsm: old, idx: s.idx}
	if r := old2.ok(at(st.WithKey(st.CreateBooking(st.Booking("c", "p", 5*time.Hour, 6*time.Hour, 6*time.Hour)), "kb", "h"), 2*time.Hour)); r.Booking.GetId() != "b" {
		t.Fatalf("a repeat with key kb answered %q, want b's replay", r.Booking.GetId())
	}
}

// TestStore_CompactionReplicasAgree: the leader's periodic Compact removes
// expired idempotency records and old cancelled bookings on every replica
// alike (same digest), using the time of its entry (Config.Clock of the
// proposer), while unexpired records stay.
func TestStore_CompactionReplicasAgree(t *testing.T) {
	var now atomic.Int64
	now.Store(st.T0.UnixMilli())
	base := storage.LocalConfig()
	base.Clock = func() time.Time { return time.UnixMilli(now.Load()) }
	base.IdempotencyTTL = time.Hour
	base.CancelledRetention = 2 * time.Hour
	base.CompactInterval = 50 * time.Millisecond
	stores, _ := st.MustOpenInmemClusterWith(t, 3, base)
	st.NewRouter(stores...)
	ctx := context.Background()
	leader := stores[0]
	propose := func(cmd *bookingv1.Command) {
		t.Helper()
		cmd.ProposedAtMs = 0 // stamped by the Store's clock
		if _, err := stores[1].Propose(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	propose(st.CreateProvider(st.Provider("p")))
	for i := range 20 {
		start := time.Duration(i) * time.Hour
		propose(st.WithKey(st.CreateBooking(st.Booking(fmt.Sprintf("b%d", i), "p", start, start+time.Minute, start+time.Minute)), fmt.Sprintf("k%d", i), "h"))
		if i%2 == 0 {
			propose(st.CancelBooking(fmt.Sprintf("b%d", i)))
		}
	}
	// Half an hour later nothing is due; keyed writes then are not due later.
	now.Add((30 * time.Minute).Milliseconds())
	propose(st.WithKey(st.CreateBooking(st.Booking("late", "p", 100*time.Hour, 101*time.Hour, 101*time.Hour)), "late", "h"))
	idle := leader.Stats().AppliedIndex
	time.Sleep(300 * time.Millisecond)
	if _, err := leader.Idempotency(ctx, "k0"); err != nil {
		t.Fatalf("record removed before its TTL: %v", err)
	}
	if got := leader.Stats().AppliedIndex; got != idle {
		t.Fatalf("the leader proposed Compacts with nothing due (applied %d -> %d)", idle, got)
	}
	now.Add((61 * time.Minute).Milliseconds()) // k* are 91 min old, "late" 61 min: all expire
	waitFor(t, "the idempotency records to expire on every replica", 10*time.Second, func() bool {
		for _, s := range stores {
			if _, err := s.Idempotency(ctx, "late"); !errors.Is(err, storage.ErrNotFound) {
				return false
			}
		}
		return true
	})
	if _, err := leader.Booking(ctx, "b0"); err != nil {
		t.Fatalf("cancelled booking removed before its retention: %v", err)
	}
	now.Add((60 * time.Minute).Milliseconds()) // cancellations 151 min old
	waitFor(t, "the cancelled bookings to go", 10*time.Second, func() bool {
		_, err := stores[2].Booking(ctx, "b18")
		return errors.Is(err, storage.ErrNotFound)
	})
	waitSameDigest(t, stores)
	for _, s := range stores {
		list, _, err := s.ClientBookings(ctx, "client1", storage.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 11 { // b1, b3, … b19 and late
			t.Fatalf("%s: %d bookings of client1, want 11", s.ID(), len(list))
		}
		d, err := storage.DumpStore(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(d["idempotency"]) != 0 || len(d["idempotency_time"]) != 0 || len(d["cancelled_time"]) != 0 ||
			len(d["bookings"]) != 11 || len(d["client_bookings"]) != 11 {
			t.Fatalf("%s: idempotency %d idempotency_time %d cancelled_time %d bookings %d client_bookings %d", s.ID(),
				len(d["idempotency"]), len(d["idempotency_time"]), len(d["cancelled_time"]), len(d["bookings"]), len(d["client_bookings"]))
		}
	}
}

// TestStore_CompactionOff: a negative CompactInterval never compacts.
func TestStore_CompactionOff(t *testing.T) {
	var now atomic.Int64
	now.Store(st.T0.UnixMilli())
	cfg := st.Config(t)
	cfg.Clock = func() time.Time { return time.UnixMilli(now.Load()) }
	cfg.IdempotencyTTL = time.Second
	cfg.CompactInterval = -1
	s := st.MustOpen(t, cfg)
	ctx := context.Background()
	if _, err := s.Propose(ctx, st.WithKey(st.CreateProvider(st.Provider("p")), "k", "h")); err != nil {
		t.Fatal(err)
	}
	now.Add(time.Hour.Milliseconds())
	time.Sleep(1500 * time.Millisecond)
	if _, err := s.Idempotency(ctx, "k"); err != nil {
		t.Fatalf("compaction ran although disabled: %v", err)
	}
	// An explicit Compact still works.
	if n, _, err := s.Compact(ctx); err != nil || n != 1 {
		t.Fatalf("Compact = %d, %v", n, err)
	}
}

// TestFSM_IdempotencySkewedProposerKeepsTTL (review2): proposed_at_ms is
// stamped by whichever node first proposed (an actor's or edge's clock), so a
// node whose clock is 25 h behind stamps a record the very next Compact from
// a correct leader removes, a minute after it committed; the client's retry
// then books again. The record's time must not lie before the entry times
// the log already holds.
func TestFSM_IdempotencySkewedProposerKeepsTTL(t *testing.T) {
	s := newFSMSeq(t)
	ttl := 24 * time.Hour
	s.ok(at(st.CreateProvider(st.Provider("p")), 10*time.Hour)) // a node with a correct clock
	// A node whose clock is 25 h behind proposes the keyed booking at T0+10h.
	s.ok(at(st.WithKey(st.CreateBooking(st.Booking("b1", "p", 48*time.Hour, 49*time.Hour, 49*time.Hour)), "k", "h"), -15*time.Hour))
	if r := s.ok(compactCmd(10*time.Hour+time.Minute, ttl, 0, 100)); r.Removed != 0 {
		t.Fatalf("compact one minute after the record committed removed %d record(s)", r.Removed)
	}
	r := s.ok(at(st.WithKey(st.CreateBooking(st.Booking("b2", "p", 50*time.Hour, 51*time.Hour, 51*time.Hour)), "k", "h"), 10*time.Hour+2*time.Minute))
	if r.Booking.Id != "b1" {
		t.Fatalf("retry within the TTL created %s, want the replay of b1", r.Booking.Id)
	}
}
