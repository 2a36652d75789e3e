package membership

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func fullMeta() Meta {
	return Meta{
		NodeID:       "ba-1",
		BootID:       "0123456789abcdef",
		City:         "buenos-aires",
		Jurisdiction: "ar",
		RaftAddr:     "10.20.30.40:7000",
		ActorAddr:    "10.20.30.40:8090",
		HTTPAddr:     "10.20.30.40:8080",
		Kinds:        []string{"calendar-ar", "prototopic", "session-ar"},
		Founded:      true,
		ClusterID:    "c0ffee00c0ffee00",
		DiskID:       "d15c0000d15c0000",
		PeerAddr:     "10.20.30.40:8081",
	}
}

func TestMeta_RoundTrip(t *testing.T) {
	for name, m := range map[string]Meta{
		"full":     fullMeta(),
		"no kinds": {NodeID: "us-1", BootID: "b", City: "us-east", Jurisdiction: "us"},
		"leaving":  {NodeID: "ba-1", BootID: "b", City: "buenos-aires", Jurisdiction: "ar", Leaving: true},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got Meta
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
			}
			// An older encoder stopped after the flags byte (no cluster or
			// disk id, no peer address): those decode empty.
			old := m
			old.ClusterID, old.DiskID, old.PeerAddr = "", "", ""
			ob, _ := old.MarshalBinary()
			if err := got.UnmarshalBinary(ob[:len(ob)-3]); err != nil || !reflect.DeepEqual(got, old) {
				t.Fatalf("older encoding: %v %+v", err, got)
			}
			// One stopped after the disk id (no peer address).
			old = m
			old.PeerAddr = ""
			ob, _ = old.MarshalBinary()
			if err := got.UnmarshalBinary(ob[:len(ob)-1]); err != nil || !reflect.DeepEqual(got, old) {
				t.Fatalf("encoding without peer address: %v %+v", err, got)
			}
			// A newer encoder may append fields: they are ignored.
			if err := got.UnmarshalBinary(append(b, 9, 9, 9)); err != nil || !reflect.DeepEqual(got, m) {
				t.Fatalf("trailing bytes: %v %+v", err, got)
			}
		})
	}
}

func TestMeta_SizeLimit(t *testing.T) {
	m := fullMeta()
	b, _ := m.MarshalBinary()
	if len(b) > 180 { // 160 before PeerAddr (17 bytes for an IPv4 host:port)
		t.Errorf("a typical meta takes %d bytes; expected a compact encoding", len(b))
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	// Long but plausible: every address a 63-char DNS name with a port, ten kinds.
	host := strings.Repeat("h", 57) + ".local"
	m.RaftAddr, m.ActorAddr, m.HTTPAddr, m.PeerAddr = host+":7000", host+":8090", host+":8080", host+":8081"
	m.Kinds = []string{"calendar-ar", "session-ar", "consent-ar", "audit-ar", "prototopic", "a-ar", "b-ar", "c-ar", "d-ar", "e-ar"}
	if err := m.Validate(); err != nil {
		t.Fatalf("plausible maximum rejected: %v", err)
	}
	m.Kinds = append(m.Kinds, strings.Repeat("k", 300))
	if err := m.Validate(); !errors.Is(err, ErrBadMeta) {
		t.Fatalf("oversized meta: %v", err)
	}
}

func TestMeta_UnmarshalRejectsGarbage(t *testing.T) {
	good, _ := fullMeta().MarshalBinary()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version 0": {0},
		"truncated": good[:len(good)/2],
		"huge len":  {1, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		t.Run(name, func(t *testing.T) {
			var m Meta
			if err := m.UnmarshalBinary(b); !errors.Is(err, ErrBadMeta) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestMeta_Validate(t *testing.T) {
	for name, mut := range map[string]func(*Meta){
		"no node id":      func(m *Meta) { m.NodeID = "" },
		"@ in node id":    func(m *Meta) { m.NodeID = "a@b" },
		"no boot id":      func(m *Meta) { m.BootID = "" },
		"no city":         func(m *Meta) { m.City = "" },
		"no jurisdiction": func(m *Meta) { m.Jurisdiction = "" },
	} {
		t.Run(name, func(t *testing.T) {
			m := fullMeta()
			mut(&m)
			if err := m.Validate(); !errors.Is(err, ErrBadMeta) {
				t.Fatalf("got %v", err)
			}
		})
	}
	id := fullMeta().MemberID()
	if n, b, ok := SplitMemberID(id); !ok || n != "ba-1" || b != "0123456789abcdef" {
		t.Fatalf("SplitMemberID(%q) = %q %q %v", id, n, b, ok)
	}
}
