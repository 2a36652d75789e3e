package failpoint_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/barberpro/edge/simulations/failpoint"
)

func TestRule_ArgsWithPort(t *testing.T) {
	r := failpoint.Rule{Src: "127.0.0.61", Dst: "127.0.0.62", DPort: 7000}
	want := []string{"-w", "5", "-I", "INPUT", "-s", "127.0.0.61", "-d", "127.0.0.62", "-p", "tcp", "--dport", "7000",
		"-m", "comment", "--comment", "tag", "-j", "DROP"}
	if got := r.Args(true, "tag"); !reflect.DeepEqual(got, want) {
		t.Fatalf("argv %q\nwant %q", got, want)
	}
	// What iptables -S lists for it is swept like any other tagged rule.
	listing := "-A INPUT -s 127.0.0.61/32 -d 127.0.0.62/32 -p tcp -m tcp --dport 7000 -m comment --comment tag -j DROP\n"
	if got := failpoint.SweepArgs(listing, "tag"); len(got) != 1 || got[0][2] != "-D" || !strings.Contains(strings.Join(got[0], " "), "--dport 7000") {
		t.Fatalf("sweep %q", got)
	}
}

// TestNew_IssueSevenFaults: the faults of issue 7 (and power-loss, issue 11)
// take their parameters and refuse bad ones, naming the parameter.
func TestNew_IssueSevenFaults(t *testing.T) {
	good := []struct {
		name string
		p    failpoint.Params
	}{
		{"wipe-founder", failpoint.Params{"remove": "false", "isolate": "0s"}},
		{"wipe-founder", failpoint.Params{"isolate": "5s", "group": "ar"}},
		{"wipe-voter-kill-leader", failpoint.Params{"lag": "2s", "window": "3s"}},
		{"snapshot-crash", failpoint.Params{"crash": "kill", "trailing": "64", "leader_change": "false"}},
		{"snapshot-crash", failpoint.Params{"target": "ros-1", "crash": "failpoint"}},
		{"disk-full", failpoint.Params{"target": "city:rosario", "size": "64m", "margin": "32k", "hold": "2s"}},
		{"disk-full", failpoint.Params{"target": "group", "group": "us"}},
		{"power-loss", nil},
		{"power-loss", failpoint.Params{"followers": "all", "load": "0s"}},
		{"power-loss", failpoint.Params{"followers": "2", "group": "ar"}},
	}
	for _, g := range good {
		f, err := failpoint.New(g.name, g.p, 7)
		if err != nil {
			t.Errorf("%s %v: %v", g.name, g.p, err)
			continue
		}
		if f.Name() != g.name {
			t.Errorf("%s: Name() = %q", g.name, f.Name())
		}
	}
	bad := []struct {
		name string
		p    failpoint.Params
		want string
	}{
		{"wipe-founder", failpoint.Params{"remove": "maybe"}, "remove"},
		{"wipe-founder", failpoint.Params{"isolate": "soon"}, "isolate"},
		{"wipe-founder", failpoint.Params{"target": "ba-1"}, `unknown parameter "target"`},
		{"wipe-voter-kill-leader", failpoint.Params{"lag": "0s"}, "lag"},
		{"wipe-voter-kill-leader", failpoint.Params{"window": "-1s"}, "window"},
		{"snapshot-crash", failpoint.Params{"crash": "gently"}, "crash"},
		{"snapshot-crash", failpoint.Params{"target": "leader"}, "follower"},
		{"snapshot-crash", failpoint.Params{"trailing": "many"}, "trailing"},
		{"snapshot-crash", failpoint.Params{"leader_change": "yes"}, "leader_change"},
		{"disk-full", failpoint.Params{"target": "leader"}, "mounted before the cluster starts"},
		{"disk-full", failpoint.Params{"size": "big"}, "size"},
		{"disk-full", failpoint.Params{"margin": "0"}, "margin"},
		{"disk-full", failpoint.Params{"hold": "0s"}, "hold"},
		{"power-loss", failpoint.Params{"followers": "0"}, "followers"},
		{"power-loss", failpoint.Params{"followers": "some"}, "followers"},
		{"power-loss", failpoint.Params{"load": "soon"}, "load"},
		{"power-loss", failpoint.Params{"group": "us"}, "one node"},
		{"power-loss", failpoint.Params{"target": "leader"}, `unknown parameter "target"`},
	}
	for _, b := range bad {
		if _, err := failpoint.New(b.name, b.p, 0); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s %v: error %v, want one naming %q", b.name, b.p, err, b.want)
		}
	}
}
