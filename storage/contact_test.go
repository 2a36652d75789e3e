package storage

import (
	"testing"

	"github.com/hashicorp/raft"
)

// answeringAs is a transport whose every AppendEntries is answered by the
// server id it holds, whatever id was addressed.
type answeringAs struct {
	raft.Transport
	id raft.ServerID
}

func (a answeringAs) AppendEntries(_ raft.ServerID, _ raft.ServerAddress, _ *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	resp.RPCHeader = raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(a.id)}
	return nil
}

// TestVoteGuard_ContactOnlyFromTheServerAddressed: an AppendEntries answered by
// another server id at the address (a wiped disk's new server answering for the
// old one) is no contact of the server addressed; the group keeper keeps a voter
// with recent contact, so such answers would keep a dead disk a voter forever
// (review 8, finding 2).
func TestVoteGuard_ContactOnlyFromTheServerAddressed(t *testing.T) {
	g := &voteGuard{Transport: answeringAs{id: "ba-1@new"}}
	var resp raft.AppendEntriesResponse
	if err := g.AppendEntries("ba-1@old", "127.0.0.1:7000", &raft.AppendEntriesRequest{}, &resp); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.contact.Load(raft.ServerID("ba-1@old")); ok {
		t.Fatal("an answer from ba-1@new counted as contact of ba-1@old")
	}
	if err := g.AppendEntries("ba-1@new", "127.0.0.1:7000", &raft.AppendEntriesRequest{}, &resp); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.contact.Load(raft.ServerID("ba-1@new")); !ok {
		t.Fatal("an answer from the server addressed was not counted")
	}
}

// TestVoteGuard_AnotherServerAtTheAddressEndsContact: once the address of
// ba-1@old answers as ba-1@new, ba-1@old has no contact at all, so its group
// replaces the wiped voter at once instead of after the dead-server timeout
// (stop 13's known gap 1: the contact it had before the wipe kept it "alive").
func TestVoteGuard_AnotherServerAtTheAddressEndsContact(t *testing.T) {
	g := &voteGuard{Transport: answeringAs{id: "ba-1@old"}}
	var resp raft.AppendEntriesResponse
	if err := g.AppendEntries("ba-1@old", "127.0.0.1:7000", &raft.AppendEntriesRequest{}, &resp); err != nil {
		t.Fatal(err)
	}
	s := &Store{guard: g}
	if s.LastContact("ba-1@old").IsZero() {
		t.Fatal("no contact recorded from the server addressed")
	}
	g.Transport = answeringAs{id: "ba-1@new"} // the disk was wiped; a new server answers there
	if err := g.AppendEntries("ba-1@old", "127.0.0.1:7000", &raft.AppendEntriesRequest{}, &resp); err != nil {
		t.Fatal(err)
	}
	if last := s.LastContact("ba-1@old"); !last.IsZero() {
		t.Fatalf("ba-1@old still has contact (%v) after its address answered as ba-1@new", last)
	}
}
