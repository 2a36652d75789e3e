package storage

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestVoteGuard_FencesEveryAppendEntriesBeforeRaftSeesIt: each AppendEntries
// that comes in goes to onAppend (the log's fence) before raft's consumer
// gets it, and an error from onAppend answers the request instead: raft must
// not ack entries a broken log cannot vouch for.
func TestVoteGuard_FencesEveryAppendEntriesBeforeRaftSeesIt(t *testing.T) {
	addrA, a := raft.NewInmemTransport("")
	addrB, b := raft.NewInmemTransport("")
	a.Connect(addrB, b)
	b.Connect(addrA, a)
	var fenceErr error
	var seen []uint64
	g := newVoteGuard(b, func(term uint64) error {
		seen = append(seen, term)
		return fenceErr
	})
	defer g.Close()
	mayVote := func() bool { return true }
	g.mayVote.Store(&mayVote)

	// raft's side: answer whatever reaches the consumer, noting it.
	reached := make(chan uint64, 4)
	go func() {
		for rpc := range g.Consumer() {
			req := rpc.Command.(*raft.AppendEntriesRequest)
			reached <- req.Term
			rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, Success: true}, nil)
		}
	}()
	send := func(term uint64) error {
		var resp raft.AppendEntriesResponse
		return a.AppendEntries("b", addrB, &raft.AppendEntriesRequest{Term: term, PrevLogEntry: 1, LeaderCommitIndex: 1}, &resp)
	}
	if err := send(4); err != nil {
		t.Fatal(err)
	}
	select {
	case term := <-reached:
		if term != 4 || len(seen) != 1 || seen[0] != 4 {
			t.Fatalf("raft got term %d; onAppend saw %v; want 4 and [4]", term, seen)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the AppendEntries never reached raft")
	}

	fenceErr = ErrLogBroken
	if err := send(5); err == nil || !strings.Contains(err.Error(), ErrLogBroken.Error()) {
		t.Fatalf("an AppendEntries the fence refused was answered %v, want an error", err)
	}
	select {
	case term := <-reached:
		t.Fatalf("raft got an AppendEntries (term %d) the fence refused", term)
	case <-time.After(100 * time.Millisecond):
	}
}
