package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestStore_RebootRebuildsFSM plays a power loss while fsm.db was committed
// without fsync: the node died (marker "open boot-1"), the machine rebooted
// (boot-2), and the disk kept a torn fsm.db (its meta pages name a tree whose
// pages were overwritten: here zeroed). Open must not trust it: it rebuilds
// fsm.db from the latest snapshot and the log (or the whole log when there is
// no snapshot) and loses no committed booking. After a process crash alone
// (same boot) the file is kept.
func TestStore_RebootRebuildsFSM(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snapshot bool // a snapshot with the log compacted to it, then more writes
		reboot   bool
	}{
		{"reboot, no snapshot: log replayed from the start", false, true},
		{"reboot, snapshot and compacted log", true, true},
		{"same boot: fsm.db kept", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storage.SetBootID(t, "boot-1")
			cfg := st.Config(t)
			s, err := storage.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			st.MustWaitLeader(t, s)
			mustPropose(t, s, st.CreateProvider(st.Provider("p")))
			var ids []string
			book := func(j int) {
				off := time.Duration(j) * hour
				id := fmt.Sprint("b", j)
				mustPropose(t, s, st.CreateBooking(st.Booking(id, "p", off, off+min30, off+min30)))
				ids = append(ids, id)
			}
			for j := range 10 {
				book(j)
			}
			if tc.snapshot {
				rc := s.Raft().ReloadableConfig()
				rc.TrailingLogs = 0
				if err := s.Raft().ReloadConfig(rc); err != nil {
					t.Fatal(err)
				}
				if err := s.Raft().Snapshot().Error(); err != nil {
					t.Fatal(err)
				}
			}
			for j := 10; j < 20; j++ {
				book(j)
			}
			want, _ := s.Digest()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// What the disk holds after the power cut.
			if err := storage.MarkFSMUnclean(cfg.DataDir, "boot-1"); err != nil {
				t.Fatal(err)
			}
			if tc.reboot {
				tearBoltFile(t, filepath.Join(cfg.DataDir, storage.FSMFile))
				storage.SetBootID(t, "boot-2")
			}

			logs := &captureHandler{}
			cfg.Logger = slog.New(logs)
			s, err = storage.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if got := logs.contains("discarded fsm.db"); got != tc.reboot {
				t.Errorf("Open logged discarding fsm.db: %v, want %v", got, tc.reboot)
			}
			st.MustWaitLeader(t, s)
			if err := s.LinearizableRead(context.Background()); err != nil {
				t.Fatal(err)
			}
			if missing := missingBookings(s, ids); len(missing) > 0 {
				t.Fatalf("bookings %v lost", missing)
			}
			if got, _ := s.Digest(); !bytes.Equal(got, want) {
				t.Fatal("digest after the rebuild differs from before the power loss")
			}
		})
	}
}

// tearBoltFile zeroes every page of a bbolt file but its two meta pages (the
// first 2×4 KiB): the meta pages then name a tree that is gone, as after a
// power loss that kept a meta page and lost (or overwrote) the pages it
// references.
func tearBoltFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const metaBytes = 2 * 4096
	if len(b) <= metaBytes {
		t.Fatalf("%s has %d bytes: no page to tear", path, len(b))
	}
	clear(b[metaBytes:])
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
