package storage

import (
	"testing"

	"github.com/hashicorp/raft"
)

// sentCommits records the commit index of every AppendEntries sent through
// it, directly or down a pipeline.
type sentCommits struct {
	raft.Transport
	got []uint64
}

func (s *sentCommits) AppendEntries(_ raft.ServerID, _ raft.ServerAddress, args *raft.AppendEntriesRequest, _ *raft.AppendEntriesResponse) error {
	s.got = append(s.got, args.LeaderCommitIndex)
	return nil
}

func (s *sentCommits) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return sentPipeline{s}, nil
}

type sentPipeline struct{ s *sentCommits }

func (p sentPipeline) AppendEntries(args *raft.AppendEntriesRequest, _ *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	p.s.got = append(p.s.got, args.LeaderCommitIndex)
	return nil, nil
}
func (sentPipeline) Consumer() <-chan raft.AppendFuture { return nil }
func (sentPipeline) Close() error                       { return nil }

// TestCommitCap_NeverSendsACommitIndexPastTheDurableLog: both ways raft
// sends AppendEntries (replicateTo and the pipeline) carry a commit index no
// higher than the leader's durable log; lower ones and heartbeats' zero pass.
func TestCommitCap_NeverSendsACommitIndexPastTheDurableLog(t *testing.T) {
	sent := &sentCommits{}
	durable := uint64(5)
	c := &commitCap{Transport: sent, durable: func() uint64 { return durable }}
	p, err := c.AppendEntriesPipeline("f", "addr")
	if err != nil {
		t.Fatal(err)
	}
	for _, commit := range []uint64{9, 3, 0} {
		if err := c.AppendEntries("f", "addr", &raft.AppendEntriesRequest{LeaderCommitIndex: commit}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := p.AppendEntries(&raft.AppendEntriesRequest{LeaderCommitIndex: commit}, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := []uint64{5, 5, 3, 3, 0, 0}
	for i := range want {
		if i >= len(sent.got) || sent.got[i] != want[i] {
			t.Fatalf("commit indexes sent = %v, want %v", sent.got, want)
		}
	}
}
