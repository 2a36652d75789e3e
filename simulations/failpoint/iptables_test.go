package failpoint_test

import (
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/barberpro/edge/simulations/failpoint"
)

func TestRule_Args(t *testing.T) {
	r := failpoint.Rule{Src: "127.0.0.101", Dst: "127.0.0.102"}
	add := r.Args(true, "barberpro-sim-101")
	want := []string{"-w", "5", "-I", "INPUT", "-s", "127.0.0.101", "-d", "127.0.0.102",
		"-m", "comment", "--comment", "barberpro-sim-101", "-j", "DROP"}
	if !reflect.DeepEqual(add, want) {
		t.Fatalf("add argv %q\nwant      %q", add, want)
	}
	del := r.Args(false, "barberpro-sim-101")
	want[2] = "-D"
	if !reflect.DeepEqual(del, want) {
		t.Fatalf("delete argv %q\nwant         %q", del, want)
	}
	if failpoint.Tag(101) != "barberpro-sim-101" {
		t.Fatalf("tag %q", failpoint.Tag(101))
	}
}

func TestSweepArgs_OnlyTaggedRules(t *testing.T) {
	listing := `-P INPUT ACCEPT
-A INPUT -s 127.0.0.101/32 -d 127.0.0.102/32 -m comment --comment barberpro-sim-101 -j DROP
-A INPUT -s 127.0.0.106/32 -d 127.0.0.107/32 -m comment --comment barberpro-sim-106 -j DROP
-A INPUT -s 10.0.0.1/32 -j ACCEPT
-A INPUT -s 127.0.0.102/32 -d 127.0.0.101/32 -m comment --comment "barberpro-sim-101" -j DROP
`
	got := failpoint.SweepArgs(listing, "barberpro-sim-101")
	want := [][]string{
		{"-w", "5", "-D", "INPUT", "-s", "127.0.0.101/32", "-d", "127.0.0.102/32", "-m", "comment", "--comment", "barberpro-sim-101", "-j", "DROP"},
		{"-w", "5", "-D", "INPUT", "-s", "127.0.0.102/32", "-d", "127.0.0.101/32", "-m", "comment", "--comment", `"barberpro-sim-101"`, "-j", "DROP"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sweep argv\n%q\nwant\n%q", got, want)
	}
}

// fakeIPTables records argv and serves a listing.
type fakeIPTables struct {
	calls   [][]string
	listing string
}

func (f *fakeIPTables) run(args ...string) ([]byte, error) {
	f.calls = append(f.calls, args)
	if hasArg(args, "-S") {
		return []byte(f.listing), nil
	}
	return nil, nil
}

func hasArg(args []string, s string) bool {
	for _, a := range args {
		if a == s {
			return true
		}
	}
	return false
}

func TestIPTables_AddRemoveSweepArgv(t *testing.T) {
	f := &fakeIPTables{listing: "-A INPUT -s 127.0.0.1/32 -d 127.0.0.2/32 -m comment --comment tag -j DROP\n"}
	ipt := &failpoint.IPTables{Tag: "tag", Run: f.run}
	r := failpoint.Rule{Src: "127.0.0.1", Dst: "127.0.0.2"}
	if err := ipt.Add(r); err != nil {
		t.Fatal(err)
	}
	if err := ipt.Remove(r); err != nil {
		t.Fatal(err)
	}
	n, err := ipt.Sweep()
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	got := make([]string, len(f.calls))
	for i, c := range f.calls {
		got[i] = strings.Join(c, " ")
	}
	want := []string{
		"-w 5 -I INPUT -s 127.0.0.1 -d 127.0.0.2 -m comment --comment tag -j DROP",
		"-w 5 -D INPUT -s 127.0.0.1 -d 127.0.0.2 -m comment --comment tag -j DROP",
		"-w 5 -S INPUT",
		"-w 5 -D INPUT -s 127.0.0.1/32 -d 127.0.0.2/32 -m comment --comment tag -j DROP",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("calls\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestIPTables_RealSweep adds real tagged rules on addresses no one uses and
// checks that Sweep removes every one of them (root only).
func TestIPTables_RealSweep(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("no iptables")
	}
	ipt := failpoint.NewIPTables("barberpro-sim-test-249")
	if err := ipt.Available(); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { ipt.Sweep() })
	rules := []failpoint.Rule{{Src: "127.0.0.249", Dst: "127.0.0.250"}, {Src: "127.0.0.250", Dst: "127.0.0.249"}}
	if err := ipt.Add(rules...); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("iptables", "-S", "INPUT").Output()
	if c := strings.Count(string(out), "barberpro-sim-test-249"); c != 2 {
		t.Fatalf("%d tagged rules after Add, want 2:\n%s", c, out)
	}
	// Another tag's rule survives the sweep.
	other := failpoint.NewIPTables("barberpro-sim-test-248")
	if err := other.Add(failpoint.Rule{Src: "127.0.0.248", Dst: "127.0.0.250"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Sweep() })
	n, err := ipt.Sweep()
	if err != nil || n != 2 {
		t.Fatalf("sweep removed %d (%v), want 2", n, err)
	}
	out, _ = exec.Command("iptables", "-S", "INPUT").Output()
	if strings.Contains(string(out), "barberpro-sim-test-249") || !strings.Contains(string(out), "barberpro-sim-test-248") {
		t.Fatalf("after sweep:\n%s", out)
	}
	if n, err := other.Sweep(); err != nil || n != 1 {
		t.Fatalf("other sweep %d %v", n, err)
	}
}

func TestNew_UnknownFaultListsKnown(t *testing.T) {
	_, err := failpoint.New("meteor", nil, 0)
	if err == nil || !strings.Contains(err.Error(), "kill") || !strings.Contains(err.Error(), "partition") {
		t.Fatalf("err %v", err)
	}
	for _, n := range failpoint.Names() {
		if _, err := failpoint.New(n, nil, 0); err != nil {
			t.Errorf("%s with default params: %v", n, err)
		}
		if failpoint.Doc(n) == "" {
			t.Errorf("%s has no doc", n)
		}
	}
}
