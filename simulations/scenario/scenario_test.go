package scenario_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/barberpro/edge/simulations/scenario"
	"github.com/barberpro/edge/simulations/scenarios"
)

const good = `
name: t
seed: 9
duration: 30s
topology: {ip_base: 200}
faults:
  - {at: 5s, jitter: 3s, fault: kill, params: {target: follower}, heal_after: 4s}
  - {at: 15s, jitter: 2s, fault: partition, params: {mode: isolate-city}, heal_after: 5s}
`

func TestParse_DefaultsAndValues(t *testing.T) {
	s, err := scenario.Parse([]byte(good), "good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "t" || s.Seed != 9 || s.Duration != 30*time.Second || s.Topology.IPBase != 200 || s.Topology.Layout != "five-cities" {
		t.Fatalf("parsed %+v", s)
	}
	w := s.Workload
	if w.Clients != 8 || w.HotProviders != 5 || w.Mix.Book != 50 || *w.Retries != 3 || w.RequestTimeout != 2*time.Second ||
		!*w.USProvider || s.Liveness.Bound != 20*time.Second {
		t.Fatalf("defaults not applied: %+v", w)
	}
	if len(s.Faults) != 2 || s.Faults[1].Params["mode"] != "isolate-city" || s.Faults[0].HealAfter != 4*time.Second {
		t.Fatalf("faults %+v", s.Faults)
	}
}

func TestParse_RejectsBadFiles(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown field", "name: x\nduration: 10s\ntopology: {ip_base: 20}\nduratoin: 5s\n", "field duratoin not found"},
		{"no name", "duration: 10s\ntopology: {ip_base: 20}\n", "name is required"},
		{"no duration", "name: x\ntopology: {ip_base: 20}\n", "duration is required"},
		{"bad duration", "name: x\nduration: ten\ntopology: {ip_base: 20}\n", "ten"},
		{"no ip base", "name: x\nduration: 10s\n", "topology.ip_base"},
		{"unknown fault", "name: x\nduration: 10s\ntopology: {ip_base: 20}\nfaults: [{at: 1s, fault: meteor, heal_after: 1s}]\n", `unknown fault "meteor"`},
		{"unknown param", "name: x\nduration: 10s\ntopology: {ip_base: 20}\nfaults: [{at: 1s, fault: kill, params: {victim: x}, heal_after: 1s}]\n", `unknown parameter "victim"`},
		{"bad partition mode", "name: x\nduration: 10s\ntopology: {ip_base: 20}\nfaults: [{at: 1s, fault: partition, params: {mode: sideways}, heal_after: 1s}]\n", `mode "sideways"`},
		{"never healed", "name: x\nduration: 10s\ntopology: {ip_base: 20}\nfaults: [{at: 1s, fault: kill}]\n", "heal_after is required"},
		{"heals after the end", "name: x\nduration: 10s\ntopology: {ip_base: 20}\nfaults: [{at: 5s, fault: kill, heal_after: 6s}]\n", "must end before duration"},
		{"unknown vertical", "name: x\nduration: 10s\ntopology: {ip_base: 20}\nworkload: {verticals: [dentist]}\n", `unknown vertical "dentist"`},
		{"no books", "name: x\nduration: 10s\ntopology: {ip_base: 20}\nworkload: {mix: {get: 1}}\n", "mix.book"},
		{"wipe the only us node", "name: x\nduration: 10s\ntopology: {ip_base: 20}\nfaults: [{at: 1s, fault: wipe, params: {target: us}, heal_after: 1s}]\n", "only replica"},
		{"not yaml", "name: [x\n", "bad.yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := scenario.Parse([]byte(c.yaml), "bad.yaml")
			if err == nil {
				t.Fatalf("accepted:\n%s", c.yaml)
			}
			if !errors.Is(err, scenario.ErrInvalid) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.yaml") {
				t.Fatalf("error %q: want ErrInvalid naming the file and %q", err, c.want)
			}
		})
	}
}

func TestSchedule_SameSeedSameSchedule(t *testing.T) {
	s, err := scenario.Parse([]byte(good), "good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, b := s.Schedule(42), s.Schedule(42)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different schedules:\n%+v\n%+v", a, b)
	}
	for _, ev := range a {
		f := s.Faults[ev.Index]
		if ev.At < f.At || ev.At > f.At+f.Jitter {
			t.Fatalf("event %+v outside [at, at+jitter]", ev)
		}
	}
	differs := false
	for seed := uint64(1); seed < 20 && !differs; seed++ {
		differs = !reflect.DeepEqual(a, s.Schedule(seed+42))
	}
	if !differs {
		t.Fatal("the schedule does not depend on the seed")
	}
	// The workload's streams are seeded too.
	x, y := s.Rand(7, 3), s.Rand(7, 3)
	for range 100 {
		if x.Uint64() != y.Uint64() {
			t.Fatal("same seed and stream, different numbers")
		}
	}
}

func TestLibrary_ParsesAndFits(t *testing.T) {
	lib, err := scenario.LoadFS(scenarios.FS)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"city-partition", "disk-full", "flapping-node", "leader-kill", "long-partition-heal",
		"minority-partition", "pause-leader", "power-loss-group", "power-loss", "rolling-restart", "snapshot-install-crash", "us-node-loss",
		"wiped-disk-rejoin", "wiped-founder", "wiped-voter-then-leader-crash"}
	wantCI := []string{"city-partition", "leader-kill", "pause-leader", "power-loss-group", "power-loss", "wiped-founder",
		"wiped-voter-then-leader-crash"}
	var ciNames []string
	var names []string
	bases := map[int]string{}
	var total, ci time.Duration
	for _, s := range lib {
		names = append(names, s.Name)
		for b := s.Topology.IPBase; b < s.Topology.IPBase+5; b++ {
			if other, dup := bases[b]; dup {
				t.Errorf("%s and %s share 127.0.0.%d", s.Name, other, b)
			}
			bases[b] = s.Name
		}
		total += s.Duration
		if s.CI {
			ci += s.Duration
			ciNames = append(ciNames, s.Name)
		}
	}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("library %v, want %v", names, want)
	}
	if !reflect.DeepEqual(ciNames, wantCI) {
		t.Fatalf("CI selection %v, want %v", ciNames, wantCI)
	}
	// The CI selection runs after make test: keep it to a few minutes.
	if total > 8*time.Minute || ci > 180*time.Second {
		t.Fatalf("library too long: all %v, ci %v", total, ci)
	}
}

func TestParse_Checks(t *testing.T) {
	const base = "name: x\nduration: 30s\ntopology: {ip_base: 20}\nfaults: [{at: 5s, fault: partition, heal_after: 10s}]\n"
	s, err := scenario.Parse([]byte(base+"checks: {placement_after: 10s}\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Checks.PlacementAfter != 10*time.Second {
		t.Fatalf("checks %+v", s.Checks)
	}
	for yaml, want := range map[string]string{
		base + "checks: {placement_after: 20s}\n": "checks.placement_after",
		base + "checks: {placement_after: -1s}\n": "must not be negative",
		base + "checks: {placements_after: 1s}\n": "field placements_after not found",
	} {
		if _, err := scenario.Parse([]byte(yaml), "x.yaml"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %q", yaml, err, want)
		}
	}
}
