package membership

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func mlNode(t *testing.T, meta Meta) *memberlist.Node {
	t.Helper()
	b, err := meta.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return &memberlist.Node{Name: meta.NodeID, Addr: net.ParseIP("127.0.0.9"), Port: 7946, Meta: b}
}

func newUnstarted(t *testing.T, buffer int) *Membership {
	t.Helper()
	c := LocalConfig()
	c.Meta = Meta{NodeID: "self", BootID: "s1", City: "cordoba", Jurisdiction: "ar"}
	c.EventBuffer = buffer
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMembership_EventClassification drives the event delegate directly: a leave
// preceded by a leave notice is "left", one without is "dead", and a new boot id
// is the same node.
func TestMembership_EventClassification(t *testing.T) {
	m := newUnstarted(t, 16)
	ch, cancel := m.Subscribe()
	defer cancel()
	peer := Meta{NodeID: "p", BootID: "b1", City: "rosario", Jurisdiction: "ar"}

	expect := func(typ EventType, state, boot string) {
		t.Helper()
		select {
		case ev := <-ch:
			if ev.Type != typ || ev.Member.State != state || ev.Member.BootID != boot {
				t.Fatalf("got %v %s %s, want %v %s %s", ev.Type, ev.Member.State, ev.Member.BootID, typ, state, boot)
			}
		case <-time.After(time.Second):
			t.Fatalf("no %v event", typ)
		}
	}

	(*events)(m).NotifyJoin(mlNode(t, peer))
	expect(EventJoin, StateAlive, "b1")
	(*events)(m).NotifyLeave(mlNode(t, peer))
	expect(EventDead, StateDead, "b1")

	// Restart after death: a join with the new boot.
	peer.BootID = "b2"
	(*events)(m).NotifyJoin(mlNode(t, peer))
	expect(EventJoin, StateAlive, "b2")

	// Restart noticed while still alive: an update with the new boot.
	peer.BootID = "b3"
	(*events)(m).NotifyUpdate(mlNode(t, peer))
	expect(EventUpdate, StateAlive, "b3")
	if _, ok := m.MemberByActorID("p@b2"); ok {
		t.Fatal("an old boot's member id must not resolve")
	}
	if got, ok := m.MemberByActorID("p@b3"); !ok || got.City != "rosario" {
		t.Fatalf("MemberByActorID: %+v %v", got, ok)
	}

	// A notice for an older boot does not make the current boot's death graceful.
	m.onMessage(encodeNotice(msgLeaving, "p", "b2"))
	(*events)(m).NotifyLeave(mlNode(t, peer))
	expect(EventDead, StateDead, "b3")

	peer.BootID = "b4"
	(*events)(m).NotifyJoin(mlNode(t, peer))
	expect(EventJoin, StateAlive, "b4")
	m.onMessage(encodeNotice(msgLeaving, "p", "b4"))
	(*events)(m).NotifyLeave(mlNode(t, peer))
	expect(EventLeave, StateLeft, "b4")

	if got := m.Members(); len(got) != 0 {
		t.Fatalf("Members lists non-alive nodes: %+v", got)
	}
	if got := m.AllMembers(); len(got) != 1 || got[0].State != StateLeft {
		t.Fatalf("AllMembers: %+v", got)
	}
}

func TestMembership_SubscribeDropsOldest(t *testing.T) {
	m := newUnstarted(t, 2)
	ch, cancel := m.Subscribe()
	for i, id := range []string{"a", "b", "c", "d"} {
		_ = i
		(*events)(m).NotifyJoin(mlNode(t, Meta{NodeID: id, BootID: "1", City: "x", Jurisdiction: "ar"}))
	}
	var got []string
	for range 2 {
		got = append(got, (<-ch).Member.NodeID)
	}
	if got[0] != "c" || got[1] != "d" {
		t.Fatalf("kept %v, want the newest [c d]", got)
	}
	cancel()
	cancel() // idempotent
	if _, open := <-ch; open {
		t.Fatal("cancel must close the channel")
	}
}
