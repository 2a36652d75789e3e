package storage_test

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/barberpro/edge/storage/disktest"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestFSM_ProvidersVersionAcrossFailedOwnCommit: a provider create whose own
// (deferred) commit fails on a full disk is not visible to local reads while
// the disk stays full (viewFailed shows only answered logs); a reader reads
// the provider list at version v and sees v again after (the edge keeps that
// page). Once space returns the retry (redoLocked) commits the create: reads
// now see the new provider, so the version must have moved from v, or the
// edge keeps answering the page without it.
func TestFSM_ProvidersVersionAcrossFailedOwnCommit(t *testing.T) {
	f, dir := openDeferringFSMOnSmallDisk(t)
	providers := func() int {
		t.Helper()
		d, err := f.Dump()
		if err != nil {
			t.Fatal(err)
		}
		return len(d["providers"])
	}
	f.ApplyLogs([]*raft.Log{commandLog(t, 1, st.CreateProvider(st.Provider("p")))})
	f.ApplyLogs([]*raft.Log{commandLog(t, 2, bookingBatch("p", "c", 0, 30)...)}) // answered into the open tx
	free := disktest.FillDisk(t, dir)
	f.SetCommitEvery(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	done := make(chan []interface{}, 1)
	go func() { done <- f.ApplyLogs([]*raft.Log{commandLog(t, 3, st.CreateProvider(st.Provider("q")))}) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("the create was answered on a full disk (the test does not exercise a failed commit)")
	default:
	}
	v := f.ProvidersVersion()
	n := providers()
	if f.ProvidersVersion() != v {
		t.Skip("version moved during the read")
	}
	if n != 1 {
		t.Fatalf("%d providers seen during the fault, want 1 (the unanswered create is not visible)", n)
	}
	f.SetCommitEvery(time.Hour)
	free()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the FSM did not resume")
	}
	if n2 := providers(); n2 != 2 {
		t.Fatalf("%d providers after resuming, want 2", n2)
	}
	if f.ProvidersVersion() == v {
		t.Fatalf("reads went from 1 provider to 2 and ProvidersVersion stayed %d: a page kept at %d is stale", v, v)
	}
}
