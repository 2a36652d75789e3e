package storage_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestInspect_MatchesDigestOfStoppedStore writes providers and bookings, closes
// the store, and reads its data dir with Inspect: the same digest as
// Store.Digest, every record, and the file left openable by the store.
func TestInspect_MatchesDigestOfStoppedStore(t *testing.T) {
	cfg := st.Config(t)
	s := st.MustOpen(t, cfg)
	mustPropose(t, s, st.CreateProvider(st.Provider("p1")))
	mustPropose(t, s, st.CreateBooking(st.Booking("b1", "p1", 0, 30*time.Minute, 45*time.Minute)))
	mustPropose(t, s, st.CreateBooking(st.Booking("b2", "p1", time.Hour, 90*time.Minute, 90*time.Minute)))
	mustPropose(t, s, st.CancelBooking("b2"))
	want, err := s.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	got, err := storage.Inspect(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Digest, want) {
		t.Fatalf("Inspect digest %x, Store.Digest %x", got.Digest, want)
	}
	if len(got.Providers) != 1 || got.Providers[0].Id != "p1" {
		t.Fatalf("providers = %v", got.Providers)
	}
	if len(got.Bookings) != 2 || got.Bookings[0].Id != "b1" || got.Bookings[1].Id != "b2" {
		t.Fatalf("bookings = %v", got.Bookings)
	}
	if got.AppliedIndex == 0 {
		t.Fatal("applied index not read")
	}

	// Read-only: the store reopens on the same dir with the same digest.
	s2 := st.MustOpen(t, cfg)
	st.MustWaitLeader(t, s2)
	if d, _ := s2.Digest(); !bytes.Equal(d, want) {
		t.Fatal("digest changed after Inspect")
	}
}

// TestInspect_NoFSM reports ErrNoFSM for an empty dir.
func TestInspect_NoFSM(t *testing.T) {
	if _, err := storage.Inspect(t.TempDir()); !errors.Is(err, storage.ErrNoFSM) {
		t.Fatalf("Inspect(empty dir) = %v, want ErrNoFSM", err)
	}
}
