package storage_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestStore_KillNineLosesNoAck kills a node with a real SIGKILL while its
// fsm.db holds commits never fsynced (FSMSyncInterval 1h): a child process
// (this test binary again) opens a store, prints every acknowledged
// booking, and kills itself. Reopened under the same kernel, fsm.db is
// trusted (the page cache kept every write) and holds every acknowledged
// booking; reopened as after a reboot, it is rebuilt from the log and holds
// them too.
func TestStore_KillNineLosesNoAck(t *testing.T) {
	if dir := os.Getenv("STORAGE_KILL9_DIR"); dir != "" {
		runUntilKilled(t, dir)
		return
	}
	for _, reboot := range []bool{false, true} {
		t.Run(fmt.Sprintf("reboot=%v", reboot), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestStore_KillNineLosesNoAck$", "-test.count=1")
			cmd.Env = append(os.Environ(), "STORAGE_KILL9_DIR="+dir)
			out, err := cmd.Output()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("child ended with %v, want SIGKILL\n%s%s", err, out, ee.Stderr)
			}
			var acked []string
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				if id, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
					acked = append(acked, id)
				}
			}
			if len(acked) == 0 {
				t.Fatalf("child acknowledged nothing\n%s", out)
			}
			if reboot {
				storage.SetBootID(t, "a boot after the kill")
			}
			logs := &captureHandler{}
			cfg := st.Config(t)
			cfg.DataDir, cfg.Logger = dir, slog.New(logs)
			s := st.MustOpen(t, cfg)
			if got := logs.contains("discarded fsm.db"); got != reboot {
				t.Errorf("Open discarded fsm.db: %v, want %v", got, reboot)
			}
			if err := s.LinearizableRead(context.Background()); err != nil {
				t.Fatal(err)
			}
			if missing := missingBookings(s, acked); len(missing) > 0 {
				t.Fatalf("%d of %d acknowledged bookings lost: %v", len(missing), len(acked), missing)
			}
		})
	}
}

// runUntilKilled is the child's part of TestStore_KillNineLosesNoAck.
func runUntilKilled(t *testing.T, dir string) {
	cfg := st.Config(t)
	cfg.DataDir = dir
	cfg.FSMSyncInterval = time.Hour
	s := st.MustOpen(t, cfg)
	mustPropose(t, s, st.CreateProvider(st.Provider("p")))
	for j := range 40 {
		off := time.Duration(j) * hour
		id := fmt.Sprint("b", j)
		mustPropose(t, s, st.CreateBooking(st.Booking(id, "p", off, off+min30, off+min30)))
		fmt.Fprintf(os.Stdout, "ACK %s\n", id)
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
