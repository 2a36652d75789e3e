//go:build failpoints

package storage_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestFailpoint_SnapshotInstallCrash is TestStore_CrashDuringSnapshotInstall
// with a real SIGKILL: a child process (this test binary again, with
// BARBERPRO_FAILPOINTS=snapshot-restore=crash) runs a 3-node group in which
// a cut-off follower is sent a snapshot and the whole process dies at the
// failpoint. The parent then opens that follower's data dir and checks that
// the FSM holds every acknowledged booking before it serves. Only with
// -tags failpoints.
func TestFailpoint_SnapshotInstallCrash(t *testing.T) {
	if base := os.Getenv("STORAGE_FAILPOINT_CRASH_DIR"); base != "" {
		runSnapshotInstallUntilKilled(t, base)
		return
	}
	base := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFailpoint_SnapshotInstallCrash$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STORAGE_FAILPOINT_CRASH_DIR="+base, storage.FailpointsEnv+"=snapshot-restore=crash")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL at the failpoint\n%s", err, out)
	}

	logs := &captureHandler{}
	cfg := storage.LocalConfig()
	_, tr := raft.NewInmemTransport("")
	cfg.NodeID, cfg.DataDir, cfg.Transport, cfg.Logger = "node3", filepath.Join(base, "node3"), tr, slog.New(logs)
	s := st.MustOpen(t, cfg)
	if !logs.contains("restoring the snapshot before starting raft") {
		t.Error("Open did not restore the snapshot the killed install left")
	}
	var ids []string
	for j := range 30 {
		ids = append(ids, fmt.Sprint("b", j))
	}
	if missing := missingBookings(s, ids); len(missing) > 0 {
		t.Errorf("after Open: %d of %d acknowledged bookings missing: %v", len(missing), len(ids), missing)
	}
}

// runSnapshotInstallUntilKilled is the child's part: it never returns
// normally, the snapshot-restore failpoint kills the process.
func runSnapshotInstallUntilKilled(t *testing.T, base string) {
	trans := make([]*raft.InmemTransport, 3)
	servers := make([]raft.Server, 3)
	for i := range trans {
		var addr raft.ServerAddress
		addr, trans[i] = raft.NewInmemTransport("")
		servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprint("node", i+1)), Address: addr}
	}
	link := func(i, j int, on bool) {
		if on {
			trans[i].Connect(trans[j].LocalAddr(), trans[j])
		} else {
			trans[i].Disconnect(trans[j].LocalAddr())
		}
	}
	for i := range 3 {
		for j := range 3 {
			if i != j {
				link(i, j, true)
			}
		}
	}
	stores := make([]*storage.Store, 3)
	for i := range stores {
		cfg := slowElections()
		cfg.NodeID, cfg.DataDir, cfg.Transport = string(servers[i].ID), filepath.Join(base, string(servers[i].ID)), trans[i]
		stores[i] = st.MustOpen(t, cfg)
	}
	// node1 founds a group of its own and adds the others, so it leads and
	// node3 can be cut off. (A server votes only once its own configuration
	// lists it as a voter, so node1 could not win an election with a
	// configuration of three that only it holds.)
	if err := stores[0].Raft().BootstrapCluster(raft.Configuration{Servers: servers[:1]}).Error(); err != nil {
		t.Fatal(err)
	}
	st.MustWaitLeader(t, stores[0])
	leader := stores[0]
	for _, sv := range servers[1:] {
		if err := leader.AddServer(context.Background(), string(sv.ID), string(sv.Address)); err != nil {
			t.Fatal(err)
		}
	}
	mustPropose(t, leader, st.CreateProvider(st.Provider("p")))
	for j := range 30 {
		if j == 5 {
			for i := range 2 {
				link(i, 2, false)
				link(2, i, false)
			}
		}
		off := time.Duration(j) * hour
		mustPropose(t, leader, st.CreateBooking(st.Booking(fmt.Sprint("b", j), "p", off, off+min30, off+min30)))
	}
	compactLogNow(t, leader)
	for i := range 2 {
		link(i, 2, true)
		link(2, i, true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), st.ReadyTimeout)
	defer cancel()
	<-ctx.Done()
	t.Fatalf("still alive %s after the snapshot was due: %+v", st.ReadyTimeout, stores[2].Stats())
}
