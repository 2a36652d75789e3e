package placement

import (
	"errors"
	"fmt"
	"testing"
)

func cand(node, city, jurisdiction string, kinds ...string) Candidate {
	return Candidate{MemberID: node + "@boot", NodeID: node, Address: node + ":8090", City: city, Jurisdiction: jurisdiction, Kinds: kinds}
}

var (
	ba1  = cand("ba-1", "buenos-aires", "ar", "calendar-ar")
	ba2  = cand("ba-2", "buenos-aires", "ar", "calendar-ar")
	cba1 = cand("cba-1", "cordoba", "ar", "calendar-ar")
	ros1 = cand("ros-1", "rosario", "ar", "calendar-ar")
	us1  = cand("use-1", "us-east", "us", "calendar-us")
	// A misconfigured US node that registered the Argentine kind.
	usRogue = cand("use-2", "us-east", "us", "calendar-ar")
)

func TestPlace(t *testing.T) {
	cases := []struct {
		name     string
		identity string
		kind     string
		members  []Candidate
		want     []string // acceptable node ids; nil means ErrNoMember
	}{
		{"home city up", "prv_cordoba_a1", "calendar-ar", []Candidate{ba1, cba1, ros1, us1}, []string{"cba-1"}},
		{"home city with two nodes", "prv_buenos-aires_a1", "calendar-ar", []Candidate{ba1, ba2, cba1, us1}, []string{"ba-1", "ba-2"}},
		{"home city down", "prv_cordoba_a1", "calendar-ar", []Candidate{ba1, ros1, us1}, []string{"ba-1", "ros-1"}},
		{"city with no node at all", "prv_la-plata_zz", "calendar-ar", []Candidate{ba1, cba1, us1}, []string{"ba-1", "cba-1"}},
		{"only the US up", "prv_rosario_a1", "calendar-ar", []Candidate{us1}, nil},
		{"nobody up", "prv_rosario_a1", "calendar-ar", nil, nil},
		{"US node advertising an ar kind is never chosen", "prv_us-east_a1", "calendar-ar", []Candidate{usRogue}, nil},
		{"US provider on US node", "prv_us-east_q", "calendar-us", []Candidate{ba1, us1}, []string{"use-1"}},
		{"kind without jurisdiction goes anywhere it is hosted", "topic-x", "prototopic",
			[]Candidate{cand("a", "cordoba", "ar", "prototopic"), cand("b", "us-east", "us", "prototopic"), ba1}, []string{"a", "b"}},
		{"not a provider id: no city preference", "weird", "calendar-ar", []Candidate{ba1, cba1}, []string{"ba-1", "cba-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Place(tc.identity, tc.kind, tc.members)
			if tc.want == nil {
				if !errors.Is(err, ErrNoMember) {
					t.Fatalf("got %+v, %v; want ErrNoMember", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if got.NodeID == w {
					return
				}
			}
			t.Fatalf("placed on %s, want one of %v", got.NodeID, tc.want)
		})
	}
}

func TestPlace_RendezvousStability(t *testing.T) {
	all := []Candidate{ba1, cba1, ros1, cand("lp-1", "la-plata", "ar", "calendar-ar"), us1}
	moved, spread := 0, map[string]int{}
	for i := range 1000 {
		id := fmt.Sprintf("prv_mendoza_%04d", i) // no node in Mendoza: rendezvous over all ar nodes
		before, err := Place(id, "calendar-ar", all)
		if err != nil {
			t.Fatal(err)
		}
		spread[before.NodeID]++
		// Remove a node that does not own it: it must not move.
		for j, c := range all {
			if c.NodeID == before.NodeID || c.Jurisdiction != "ar" {
				continue
			}
			rest := append(append([]Candidate{}, all[:j]...), all[j+1:]...)
			after, _ := Place(id, "calendar-ar", rest)
			if after.NodeID != before.NodeID {
				moved++
			}
			break
		}
		// Same set in another order: same owner.
		rev := []Candidate{all[4], all[3], all[2], all[1], all[0]}
		if again, _ := Place(id, "calendar-ar", rev); again.NodeID != before.NodeID {
			t.Fatalf("%s: order changed the owner", id)
		}
		// A restart (new boot id, same node id) keeps the owner.
		reboot := append([]Candidate{}, all...)
		for k := range reboot {
			reboot[k].MemberID = reboot[k].NodeID + "@reboot"
		}
		if again, _ := Place(id, "calendar-ar", reboot); again.NodeID != before.NodeID {
			t.Fatalf("%s: a reboot moved it", id)
		}
	}
	if moved != 0 {
		t.Fatalf("%d identities moved when an unrelated node left", moved)
	}
	for node, n := range spread {
		if n < 150 {
			t.Errorf("uneven spread: %s got %d of 1000 (%v)", node, n, spread)
		}
	}
	if spread["use-1"] != 0 {
		t.Fatal("an ar identity landed on the US node")
	}
}

func TestProviderCityAndKind(t *testing.T) {
	for id, want := range map[string]string{
		"prv_buenos-aires_k3j4": "buenos-aires",
		"prv_la-plata_x":        "la-plata",
		"prv__x":                "",
		"prv_cordoba_":          "",
		"prv_cordoba":           "",
		"cordoba_x":             "",
	} {
		got, ok := ProviderCity(id)
		if got != want || ok != (want != "") {
			t.Errorf("ProviderCity(%q) = %q %v, want %q", id, got, ok, want)
		}
	}
	if Kind("calendar", "ar") != "calendar-ar" || KindJurisdiction("calendar-ar") != "ar" || KindJurisdiction("prototopic") != "" {
		t.Fatal("kind naming")
	}
}
