package placement

import (
	"errors"
	"testing"

	"github.com/barberpro/edge/cluster/membership"
)

func TestCheckResidency(t *testing.T) {
	if err := checkResidency([]string{"calendar-ar", "prototopic"}, "ar"); err != nil {
		t.Fatal(err)
	}
	if err := checkResidency([]string{"calendar-us", "calendar-ar"}, "us"); !errors.Is(err, ErrResidency) {
		t.Fatalf("a US node hosting calendar-ar: %v", err)
	}
}

func TestTopology(t *testing.T) {
	ms := []membership.Member{
		{Meta: membership.Meta{NodeID: "a", BootID: "1", ActorAddr: "127.0.0.1:8090", Kinds: []string{"calendar-ar"}}, State: membership.StateAlive},
		{Meta: membership.Meta{NodeID: "b", BootID: "1", Kinds: []string{"calendar-ar"}}, State: membership.StateAlive},                            // no actor address yet
		{Meta: membership.Meta{NodeID: "c", BootID: "1", ActorAddr: "127.0.0.3:8090"}, State: membership.StateAlive},                               // no kinds yet
		{Meta: membership.Meta{NodeID: "d", BootID: "1", ActorAddr: "127.0.0.4:8090", Kinds: []string{"x"}}, State: membership.StateDead},          // dead
		{Meta: membership.Meta{NodeID: "e", BootID: "2", ActorAddr: "[::1]:9", Kinds: []string{"calendar-ar", "x"}}, State: membership.StateAlive}, // ipv6
	}
	got := Topology(ms)
	if len(got) != 2 || got[0].Id != "a@1" || got[0].Host != "127.0.0.1" || got[0].Port != 8090 || got[1].Id != "e@2" || got[1].Host != "::1" {
		t.Fatalf("%+v", got)
	}
}

func TestIncarnation(t *testing.T) {
	id := Incarnation("ba-1@0123", 2)
	if id != "ba-1@0123@2" {
		t.Fatalf("Incarnation: %q", id)
	}
	for in, want := range map[string]string{id: "ba-1@0123", "ba-1@0123": "ba-1@0123", "ba-1": "ba-1"} {
		if got := BaseMemberID(in); got != want {
			t.Fatalf("BaseMemberID(%q) = %q, want %q", in, got, want)
		}
	}
}
