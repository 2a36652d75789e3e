package storage

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestFSM_ApplyFailureRetriesWithFreshAnswers: a batch whose apply fails in
// the middle (a bbolt write error; here every write fails: the open
// transaction is read-only) is retried. Its answers from the failed attempt
// are not answers (they judged commands against writes that did not
// happen): the retry must apply it again and answer as a healthy FSM does,
// not replay the failed attempt's answers after committing the logs.
func TestFSM_ApplyFailureRetriesWithFreshAnswers(t *testing.T) {
	withBootID(t, "boot-1")
	f := openLazyFSM(t, t.TempDir(), time.Hour)
	defer f.close()
	f.retryMin, f.retryMax = time.Millisecond, time.Millisecond
	ref, err := openFSM(filepath.Join(t.TempDir(), FSMFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.close()
	// The second log creates the provider the first created: a conflict,
	// unless the first one's write was lost.
	batch := []*raft.Log{providerEntry(t, 1, 1, "p"), providerEntry(t, 2, 1, "p")}
	want := fmt.Sprint(ref.ApplyBatch(batch))

	ro, err := f.db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	f.pendMu.Lock()
	f.pend = &pendingTx{tx: ro, began: time.Now()} // every Put fails: ErrTxNotWritable
	f.uncommitted.Store(true)
	f.pendMu.Unlock()
	if got := fmt.Sprint(f.ApplyBatch(batch)); got != want {
		t.Fatalf("after a failed attempt the batch answered\n%s\nwant (a healthy FSM's)\n%s", got, want)
	}
	if f.applied.Load() != 2 || f.writeFault() != nil {
		t.Fatalf("applied %d, fault %v after the retry", f.applied.Load(), f.writeFault())
	}
}
