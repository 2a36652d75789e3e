package storage_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// keyedBooking is booking id of provider p1 at hour h, with idempotency key.
func keyedBooking(id string, h time.Duration, key, hash string) *bookingv1.Command {
	return st.WithKey(st.CreateBooking(st.Booking(id, "p1", h*time.Hour, (h+1)*time.Hour, (h+1)*time.Hour)), key, hash)
}

// idemEntries returns the keys of the idempotency bucket and the
// idempotency_time entries with a value and without one.
func idemEntries(d map[string]map[string]string) (legacy, timed, empty []string) {
	for k := range d["idempotency"] {
		legacy = append(legacy, k)
	}
	for k, v := range d["idempotency_time"] {
		if v == "" {
			empty = append(empty, k[8:])
		} else {
			timed = append(timed, k[8:])
		}
	}
	return legacy, timed, empty
}

// TestFSM_IdempotencyRecordsInTimeOrder: a record is written in
// idempotency_time (nothing in the idempotency bucket), and after the FSM is
// opened again — the locator is rebuilt from the file — a repeat of the
// request replays it and a different request with the key is refused.
func TestFSM_IdempotencyRecordsInTimeOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.db")
	fsm, err := storage.OpenTestFSM(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &fsmSeq{t: t, fsm: fsm}
	s.ok(st.CreateProvider(st.Provider("p1")))
	first := s.ok(at(keyedBooking("b1", 10, "k1", "h1"), time.Minute))
	legacy, timed, empty := idemEntries(s.dump())
	if len(legacy) != 0 || len(empty) != 0 || len(timed) != 1 || timed[0] != "k1" {
		t.Fatalf("idempotency %q, idempotency_time with records %q, without %q", legacy, timed, empty)
	}
	if err := fsm.Close(); err != nil {
		t.Fatal(err)
	}
	if s.fsm, err = storage.OpenTestFSM(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.fsm.Close() })
	if n := s.fsm.LocatedIdempotencyKeys(); n != 1 {
		t.Fatalf("the locator holds %d keys after the FSM opened, want 1", n)
	}
	again := s.ok(at(keyedBooking("b2", 10, "k1", "h1"), 2*time.Minute))
	if again.Booking.GetId() != first.Booking.GetId() {
		t.Fatalf("the repeat answered booking %q, want the replay of %q", again.Booking.GetId(), first.Booking.GetId())
	}
	if r := s.apply(at(keyedBooking("b3", 12, "k1", "other"), 3*time.Minute)); r.Code != bookingv1.ResultCode_RESULT_CODE_IDEMPOTENCY_MISMATCH {
		t.Fatalf("another request with the key: %v, want IDEMPOTENCY_MISMATCH", r.Code)
	}
}

// TestFSM_IdempotencyLegacyRecordReplaysAndExpires: a record an older FSM
// wrote under its key in the idempotency bucket is still found (a repeat
// replays it, another request is refused), and Compact removes it and its
// index entry when the TTL passed.
func TestFSM_IdempotencyLegacyRecordReplaysAndExpires(t *testing.T) {
	s := newFSMSeq(t)
	s.ok(st.CreateProvider(st.Provider("p1")))
	b := s.ok(at(keyedBooking("b1", 10, "other-key", "x"), time.Minute)).Booking
	if err := s.fsm.PutLegacyIdempotency(&bookingv1.IdempotencyRecord{
		Key: "old", RequestHash: []byte("h1"), ResourceId: b.Id, CreatedAtMs: st.At(time.Minute),
	}); err != nil {
		t.Fatal(err)
	}
	if r := s.ok(at(keyedBooking("b2", 14, "old", "h1"), 2*time.Minute)); r.Booking.GetId() != b.Id {
		t.Fatalf("the repeat of a legacy record answered booking %q, want the replay of %q", r.Booking.GetId(), b.Id)
	}
	if r := s.apply(at(keyedBooking("b3", 16, "old", "h2"), 3*time.Minute)); r.Code != bookingv1.ResultCode_RESULT_CODE_IDEMPOTENCY_MISMATCH {
		t.Fatalf("another request with a legacy key: %v, want IDEMPOTENCY_MISMATCH", r.Code)
	}
	s.ok(compactCmd(48*time.Hour, 24*time.Hour, 0, 100))
	legacy, timed, empty := idemEntries(s.dump())
	if len(legacy)+len(timed)+len(empty) != 0 {
		t.Fatalf("after Compact: idempotency %q, idempotency_time with records %q, without %q", legacy, timed, empty)
	}
	if r := s.ok(at(keyedBooking("b4", 18, "old", "h2"), 49*time.Hour)); r.Booking.GetId() != "b4" {
		t.Fatalf("a request with an expired key answered %q, want a new booking b4", r.Booking.GetId())
	}
}

// TestFSM_IdempotencyRolledBackReuseKeepsRecord: a transaction that deleted
// a record (Compact) and used its key again, then rolled back, must leave
// the record findable: the command applied next with that key replays it,
// as on a replica that never rolled back. (A locator keeping one time per
// key pointed at the rolled back record and the FSM took the request anew.)
func TestFSM_IdempotencyRolledBackReuseKeepsRecord(t *testing.T) {
	run := func(rollBack bool) *bookingv1.CommandResult {
		s := newFSMSeq(t)
		s.ok(st.CreateProvider(st.Provider("p1")))
		s.ok(at(keyedBooking("b1", 10, "k1", "h1"), time.Minute))
		if rollBack {
			logs := []*raft.Log{
				{Index: s.idx + 1, Term: 1, Type: raft.LogCommand, Data: mustMarshal(t, compactCmd(48*time.Hour, 24*time.Hour, 0, 100))},
				{Index: s.idx + 2, Term: 1, Type: raft.LogCommand, Data: mustMarshal(t, at(keyedBooking("b2", 12, "k1", "h1"), 49*time.Hour))},
			}
			if err := s.fsm.ApplyRolledBack(logs); err != nil {
				t.Fatal(err)
			}
		}
		return s.ok(at(keyedBooking("b3", 14, "k1", "h1"), 2*time.Minute))
	}
	want, got := run(false), run(true)
	if want.Booking.GetId() != "b1" {
		t.Fatalf("without a rollback the repeat answered %q, want b1's replay", want.Booking.GetId())
	}
	if got.Booking.GetId() != want.Booking.GetId() {
		t.Fatalf("after the rolled back reuse the repeat answered %q, want %q", got.Booking.GetId(), want.Booking.GetId())
	}
}

// TestStore_IdempotencyReadsTheTimeOrderedRecord: Store.Idempotency (the
// edge's replay check and the actors' confirmation) finds a record in
// idempotency_time, before and after the open transaction commits.
func TestStore_IdempotencyReadsTheTimeOrderedRecord(t *testing.T) {
	s := st.MustOpen(t, st.Config(t))
	st.MustWaitLeader(t, s)
	ctx := t.Context()
	if _, err := s.Propose(ctx, st.CreateProvider(st.Provider("p1"))); err != nil {
		t.Fatal(err)
	}
	cmd := keyedBooking("b1", 10, "k1", "h1")
	cmd.ProposedAtMs = time.Now().UnixMilli()
	if _, err := s.Propose(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	rec, err := s.Idempotency(ctx, "k1")
	if err != nil || rec.GetResourceId() != "b1" || !strings.EqualFold(string(rec.GetRequestHash()), "h1") {
		t.Fatalf("Idempotency(k1) = %v, %v; want the record of b1", rec, err)
	}
	if _, err := s.Idempotency(ctx, "k2"); err == nil {
		t.Fatal("Idempotency(k2) found a record that was never written")
	}
}

// TestStore_IdempotencyFindsLegacyRecordsAfterOpen: Store.Idempotency answers
// a key the locator has no time for without a transaction, unless fsm.db held
// records of the older layout when it was opened; such a record must still be
// found. (Answering from the locator alone whatever the file holds lost it.)
func TestStore_IdempotencyFindsLegacyRecordsAfterOpen(t *testing.T) {
	cfg := st.Config(t)
	s, err := storage.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.MustWaitLeader(t, s)
	if _, err := s.Propose(t.Context(), st.CreateProvider(st.Provider("p1"))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := storage.OpenTestFSM(filepath.Join(cfg.DataDir, storage.FSMFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.PutLegacyIdempotency(&bookingv1.IdempotencyRecord{
		Key: "old", RequestHash: []byte("h1"), ResourceId: "b0", CreatedAtMs: st.At(time.Minute),
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	s = st.MustOpen(t, cfg)
	if rec, err := s.Idempotency(t.Context(), "old"); err != nil || rec.GetResourceId() != "b0" {
		t.Fatalf("Idempotency(old) = %v, %v; want the legacy record of b0", rec, err)
	}
	if _, err := s.Idempotency(t.Context(), "never"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Idempotency(never) = %v, want ErrNotFound", err)
	}
}
