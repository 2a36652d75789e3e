package storage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	bookingv1 "github.com/barberpro/edge/protos/booking/v1"
	"github.com/barberpro/edge/storage"
	"github.com/barberpro/edge/storage/disktest"
	st "github.com/barberpro/edge/storage/storagetest"
)

// Disk-full tests put files on a small tmpfs (disktest.MountTmpfs): they skip
// without root.

// resumed waits for the answers of a batch that waited for space to return.
func resumed(t *testing.T, done <-chan []interface{}) []interface{} {
	t.Helper()
	select {
	case out := <-done:
		return out
	case <-time.After(10 * time.Second):
		t.Fatal("the FSM did not resume after space returned")
		return nil
	}
}

// bookingBatch returns n CreateBooking commands of provider p for client c,
// 30 minutes apart from offset, each with a 2 KiB name so a batch needs many
// new pages.
func bookingBatch(p, c string, offset time.Duration, n int) []*bookingv1.Command {
	cmds := make([]*bookingv1.Command, n)
	for i := range n {
		start := offset + time.Duration(i)*time.Hour
		b := st.Booking(fmt.Sprintf("%s-b%d", p, int(offset/time.Hour)+i), p, start, start+30*time.Minute, start+30*time.Minute)
		b.ClientId = c
		b.ServiceId = fmt.Sprintf("cut-%02048d", i)
		cmds[i] = st.CreateBooking(b)
	}
	return cmds
}

func commandLog(t testing.TB, index uint64, cmds ...*bookingv1.Command) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: mustMarshal(t, cmds...)}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFSM_WriteFailureRetriesAndResumes: on a full tmpfs a batch's bbolt
// commit fails. The FSM must not panic and must not skip the entries: it
// reports the fault (ErrStorageUnavailable), keeps meta.applied_index where
// it was, keeps serving reads, and retries the same batch; once space
// returns the retry commits and the replica ends where a replica on a healthy
// disk ends (same digest, same results).
func TestFSM_WriteFailureRetriesAndResumes(t *testing.T) {
	dir := disktest.MountTmpfs(t, "2m")
	fsm, err := storage.OpenTestFSM(filepath.Join(dir, "fsm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fsm.Close() })
	fsm.SetRetry(5*time.Millisecond, 20*time.Millisecond)
	ref, err := storage.OpenTestFSM(filepath.Join(t.TempDir(), "ref.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ref.Close() })

	first := commandLog(t, 1, st.CreateProvider(st.Provider("p")))
	for _, f := range []*storage.TestFSM{fsm, ref} {
		f.ApplyLogs([]*raft.Log{first})
	}
	before, err := fsm.Digest()
	if err != nil {
		t.Fatal(err)
	}
	free := disktest.FillDisk(t, dir)

	// A batch of three entries, big enough to need pages the file lacks.
	logs := []*raft.Log{
		commandLog(t, 2, bookingBatch("p", "c1", 0, 150)...),
		commandLog(t, 3, bookingBatch("p", "c2", 200*time.Hour, 150)...),
		commandLog(t, 4, st.CancelBooking("p-b0")),
	}
	done := make(chan []interface{}, 1)
	go func() { done <- fsm.ApplyLogs(logs) }()
	waitFor(t, "the FSM to report a write fault", 10*time.Second, func() bool {
		select {
		case <-done:
			t.Fatal("the batch applied on a full disk: the test does not exercise a write failure")
		default:
		}
		return fsm.WriteFault() != nil
	})
	if err := fsm.WriteFault(); !errors.Is(err, storage.ErrStorageUnavailable) {
		t.Fatalf("WriteFault = %v, want ErrStorageUnavailable", err)
	}
	time.Sleep(100 * time.Millisecond) // several failed retries
	select {
	case <-done:
		t.Fatal("ApplyBatch returned while the disk is still full: entries skipped")
	default:
	}
	if got := fsm.AppliedIndex(); got != 1 {
		t.Fatalf("applied index %d during the fault, want 1", got)
	}
	if d, err := fsm.Digest(); err != nil || string(d) != string(before) {
		t.Fatalf("reads during the fault: digest changed or failed (%v)", err)
	}

	free()
	out := resumed(t, done)
	if err := fsm.WriteFault(); err != nil {
		t.Fatalf("fault not cleared after resuming: %v", err)
	}
	if got := fsm.AppliedIndex(); got != 4 {
		t.Fatalf("applied index %d after resuming, want 4", got)
	}
	want := ref.ApplyLogs(logs)
	for i := range logs {
		g, _ := out[i].([]*bookingv1.CommandResult)
		w, _ := want[i].([]*bookingv1.CommandResult)
		if len(g) != len(w) || len(g) == 0 {
			t.Fatalf("log %d: %d results, want %d", i, len(g), len(w))
		}
		for j := range g {
			if !proto.Equal(g[j], w[j]) {
				t.Fatalf("log %d result %d: %v, want %v", i, j, g[j], w[j])
			}
		}
	}
	gd, _ := fsm.Digest()
	wd, _ := ref.Digest()
	if string(gd) != string(wd) {
		t.Fatal("the replica that resumed differs from the reference")
	}
}

// TestFSM_WriteFailureAtClose: a Store closing while its FSM retries must not
// hang: stopRetrying makes the blocked ApplyBatch give up with an error
// (ErrStorageUnavailable and ErrOutcomeUnknown, not results), the FSM then
// never writes nor snapshots again, and a reopened FSM applies the same
// entries (as raft replays them from its log after a restart).
func TestFSM_WriteFailureAtClose(t *testing.T) {
	dir := disktest.MountTmpfs(t, "2m")
	path := filepath.Join(dir, "fsm.db")
	fsm, err := storage.OpenTestFSM(path)
	if err != nil {
		t.Fatal(err)
	}
	fsm.SetRetry(5*time.Millisecond, 20*time.Millisecond)
	fsm.ApplyLogs([]*raft.Log{commandLog(t, 1, st.CreateProvider(st.Provider("p")))})
	free := disktest.FillDisk(t, dir)
	logs := []*raft.Log{commandLog(t, 2, bookingBatch("p", "c1", 0, 300)...)}
	done := make(chan []interface{}, 1)
	go func() { done <- fsm.ApplyLogs(logs) }()
	waitFor(t, "a write fault", 10*time.Second, func() bool { return fsm.WriteFault() != nil })
	fsm.StopRetrying()
	var out []interface{}
	select {
	case out = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ApplyBatch still blocked after StopRetrying: Close would hang")
	}
	err, _ = out[0].(error)
	if !errors.Is(err, storage.ErrStorageUnavailable) || !errors.Is(err, storage.ErrOutcomeUnknown) {
		t.Fatalf("abandoned response %v, want ErrStorageUnavailable+ErrOutcomeUnknown", out[0])
	}
	if fsm.AppliedIndex() != 1 {
		t.Fatalf("applied index %d, want 1", fsm.AppliedIndex())
	}
	free()
	// Space is back, but this process gave the batch up: applying the next
	// entry would leave a gap, so the FSM refuses everything, and a snapshot
	// (which raft would label with the abandoned index) too.
	next := fsm.ApplyLogs([]*raft.Log{commandLog(t, 3, st.CancelBooking("p-b0"))})
	if err, _ := next[0].(error); !errors.Is(err, storage.ErrStorageUnavailable) || fsm.AppliedIndex() != 1 {
		t.Fatalf("after abandoning: apply gave %v, applied %d", next[0], fsm.AppliedIndex())
	}
	if err := fsm.Snapshot(); !errors.Is(err, storage.ErrStorageUnavailable) {
		t.Fatalf("snapshot after abandoning: %v", err)
	}
	if err := fsm.Close(); err != nil {
		t.Fatal(err)
	}
	re, err := storage.OpenTestFSM(path)
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	res := re.ApplyLogs(append(logs, commandLog(t, 3, st.CancelBooking("p-b0"))))
	if rs, _ := res[1].([]*bookingv1.CommandResult); len(rs) != 1 || rs[0].Code != bookingv1.ResultCode_RESULT_CODE_OK || re.AppliedIndex() != 3 {
		t.Fatalf("after reopening: %v, applied %d", res[1], re.AppliedIndex())
	}
}

// TestStore_DegradedRefusesWritesServesReadsAndResumes: a single-node store
// whose data dir is a full tmpfs: Propose fails (the leader's raft.db append
// or its FSM fails), then every Propose is refused at once with
// ErrStorageUnavailable, Ready says why, reads work; after space returns the
// node recovers by itself (Ready nil, writes accepted) without a restart,
// and Close never hangs.
func TestStore_DegradedRefusesWritesServesReadsAndResumes(t *testing.T) {
	dir := disktest.MountTmpfs(t, "8m")
	cfg := st.Config(t)
	cfg.DataDir = filepath.Join(dir, "data")
	s := st.MustOpen(t, cfg)
	storage.SetStoreRetry(s, 5*time.Millisecond, 50*time.Millisecond)
	ctx := context.Background()
	if _, err := s.Propose(ctx, st.CreateProvider(st.Provider("p"))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Propose(ctx, st.CreateBooking(st.Booking("keep", "p", -100*time.Hour, -99*time.Hour, -99*time.Hour))); err != nil {
		t.Fatal(err)
	}
	free := disktest.FillDisk(t, dir)

	var firstErr error
	for i := 0; i < 200 && firstErr == nil; i++ {
		cmds := bookingBatch("p", "c", time.Duration(i)*200*time.Hour, 100)
		for _, c := range cmds {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := s.Propose(pctx, c)
			cancel()
			if err != nil {
				firstErr = err
				break
			}
		}
	}
	t.Logf("first failed Propose: %v", firstErr)
	if firstErr == nil {
		t.Fatal("every Propose succeeded on a full disk")
	}
	waitFor(t, "the store to report a write fault", 10*time.Second, func() bool { return s.WriteFault() != nil })
	t.Logf("fault: %v", s.WriteFault())
	// The fault lasts while the disk is full: small writes that fit in free
	// pages of a bbolt file do not clear it.
	time.Sleep(1500 * time.Millisecond)
	if err := s.WriteFault(); err == nil {
		t.Fatal("the fault cleared while the disk is still full")
	}

	start := time.Now()
	_, err := s.Propose(ctx, st.CreateBooking(st.Booking("later", "p", -50*time.Hour, -49*time.Hour, -49*time.Hour)))
	if !errors.Is(err, storage.ErrStorageUnavailable) || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("Propose while degraded: %v after %s, want ErrStorageUnavailable at once", err, time.Since(start))
	}
	if err := s.Ready(); !errors.Is(err, storage.ErrStorageUnavailable) {
		t.Fatalf("Ready while degraded = %v", err)
	}
	if b, err := s.Booking(ctx, "keep"); err != nil || b.Id != "keep" {
		t.Fatalf("read while degraded: %v", err)
	}

	free()
	waitFor(t, "the store to recover", 15*time.Second, func() bool { return s.Ready() == nil })
	if _, err := s.Propose(ctx, st.CreateBooking(st.Booking("after", "p", -40*time.Hour, -39*time.Hour, -39*time.Hour))); err != nil {
		t.Fatalf("Propose after recovery: %v", err)
	}
	if _, err := s.Booking(ctx, "after"); err != nil {
		t.Fatal(err)
	}
}

// TestStore_DegradedLeaderHandsOver: in a 3-voter group the leader's fsm.db
// lives on a tmpfs (a symlink; raft.db stays healthy) that fills up. The
// leader's FSM stops at the failing batch (the followers apply it), the
// leader refuses writes at once, reports unready and hands leadership to a
// healthy voter, so the group keeps taking writes through any node. After
// space returns the old leader applies the backlog by itself and every
// replica ends with the same digest.
func TestStore_DegradedLeaderHandsOver(t *testing.T) {
	small := disktest.MountTmpfs(t, "2m")
	ctx := context.Background()
	n := 3
	trans := make([]*raft.InmemTransport, n)
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
	stores := make([]*storage.Store, n)
	for i := range n {
		cfg := storage.LocalConfig()
		cfg.NodeID = string(servers[i].ID)
		cfg.Transport = trans[i]
		cfg.DataDir = t.TempDir()
		if i == 0 {
			if err := os.Symlink(filepath.Join(small, "fsm.db"), filepath.Join(cfg.DataDir, storage.FSMFile)); err != nil {
				t.Fatal(err)
			}
		}
		stores[i] = st.MustOpen(t, cfg)
	}
	for _, s := range stores {
		if err := s.Raft().BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatal(err)
		}
	}
	st.NewRouter(stores...)
	sick := stores[0]
	storage.SetStoreRetry(sick, 5*time.Millisecond, 50*time.Millisecond)
	lead := st.WaitLeader(t, stores...)
	if lead != sick {
		if err := lead.Raft().LeadershipTransferToServer(sick.ID(), sick.Addr()).Error(); err != nil {
			t.Fatal(err)
		}
		if st.WaitLeader(t, stores...) != sick {
			t.Fatal("could not make node1 the leader")
		}
	}
	if _, err := stores[1].Propose(ctx, st.CreateProvider(st.Provider("p"))); err != nil {
		t.Fatal(err)
	}
	free := disktest.FillDisk(t, small)

	// Writes through a follower until the leader's FSM fails. They commit (the
	// followers apply them); the leader cannot answer them until it resumes.
	for i := 0; sick.WriteFault() == nil; i++ {
		if i == 40 {
			t.Fatal("the leader's FSM never failed on a full disk")
		}
		for _, c := range bookingBatch("p", "c", time.Duration(i)*200*time.Hour, 20) {
			go func() {
				pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
				_, _ = stores[1].Propose(pctx, c)
			}()
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("leader fault: %v", sick.WriteFault())
	if err := sick.Ready(); !errors.Is(err, storage.ErrStorageUnavailable) {
		t.Fatalf("Ready of the degraded leader = %v", err)
	}
	if _, err := sick.Propose(ctx, st.CreateProvider(st.Provider("q"))); !errors.Is(err, storage.ErrStorageUnavailable) {
		t.Fatalf("Propose on the degraded node = %v", err)
	}
	waitFor(t, "leadership to leave the degraded node", 10*time.Second, func() bool {
		id, _ := stores[1].Leader()
		return id != "" && id != sick.ID()
	})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := stores[2].Propose(pctx, st.CreateBooking(st.Booking("during", "p", -30*time.Hour, -29*time.Hour, -29*time.Hour))); err != nil {
		t.Fatalf("the group took no write while one node is degraded: %v", err)
	}
	if _, err := sick.Provider(ctx, "p"); err != nil {
		t.Fatalf("read on the degraded node: %v", err)
	}

	free()
	waitFor(t, "the degraded node to recover", 15*time.Second, func() bool { return sick.Ready() == nil })
	waitSameDigest(t, stores)
	if _, err := sick.Booking(ctx, "during"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if _, err := sick.Propose(ctx, st.CreateBooking(st.Booking("after", "p", -20*time.Hour, -19*time.Hour, -19*time.Hour))); err != nil {
		t.Fatalf("Propose on the recovered node: %v", err)
	}
}
