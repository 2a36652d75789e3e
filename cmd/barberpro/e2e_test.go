package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/barberpro/edge/edge/client"
	"github.com/barberpro/edge/simulations/load"
	"github.com/barberpro/edge/simulations/procs"
)

// binary is the barberpro binary built once for the process tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "barberpro-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "barberpro")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build barberpro:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Test_Process_KillDashNineKeepsAcknowledgedBooking books through a real node
// process, kills it with SIGKILL, restarts it on the same data dir and checks that
// the acknowledged booking is there and its slot still taken.
func Test_Process_KillDashNineKeepsAcknowledgedBooking(t *testing.T) {
	dir := t.TempDir()
	sec, err := procs.NewSecrets(filepath.Join(dir, "secrets"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsDir, err := sec.NodeTLS("ba-1", "buenos-aires", "127.0.0.181")
	if err != nil {
		t.Fatal(err)
	}
	p := &procs.Proc{Binary: binary, LogPath: filepath.Join(dir, "ba-1.log"), Spec: procs.Spec{
		ID: "ba-1", City: "buenos-aires", IP: "127.0.0.181", DataDir: filepath.Join(dir, "ba-1"), Bootstrap: true,
		GossipKey: sec.GossipKey, TLSDir: tlsDir, TokenKeys: sec.KeySet(), Env: []string{"BARBERPRO_PROFILE=local"},
	}}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.LogPath)
			t.Logf("node log:\n%s", b)
		}
	})
	ctx := context.Background()
	start := func() {
		t.Helper()
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := p.WaitReady(wctx); err != nil {
			t.Fatal(err)
		}
	}
	start()

	c := cli(p)
	prov, err := c.CreateProvider(ctx, load.LoadProvider("buenos-aires", 0), "")
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation(prov.Timezone)
	now := time.Now().In(loc)
	slot := time.Date(now.Year(), now.Month(), now.Day()+2, 11, 0, 0, 0, loc).Format(time.RFC3339)
	req := client.BookingRequest{ProviderID: prov.ID, ServiceID: prov.Services[0].ID, ClientID: "cli-ana", Start: slot}
	booked, err := c.Book(ctx, req, "")
	if err != nil {
		t.Fatal(err)
	}

	pid := p.Pid()
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if ee, ok := p.ExitErr().(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("node %d did not die of SIGKILL: %v", pid, p.ExitErr())
	}
	start()

	got, err := c.Booking(ctx, booked.ID)
	if err != nil {
		t.Fatalf("acknowledged booking lost after kill -9: %v", err)
	}
	if got.Status != "confirmed" || got.Start != booked.Start {
		t.Fatalf("booking after restart = %+v, want %+v", got, booked)
	}
	req.ClientID = "cli-bruno"
	if _, err := c.Book(ctx, req, ""); client.Code(err) != "slot_unavailable" {
		t.Fatalf("rebooking the slot after restart: %v, want 409 slot_unavailable", err)
	}
}

// TestCLI_BadUsageExitsTwo checks the CLI's exit status contract.
func TestCLI_BadUsageExitsTwo(t *testing.T) {
	cases := [][]string{
		{"node", "start", "--city", "buenos-aires", "--data-dir", t.TempDir()},          // no --id
		{"node", "start", "--id", "x", "--city", "atlantis", "--data-dir", t.TempDir()}, // unknown city
		{"node", "start", "--id", "x", "--city", "cordoba", "--data-dir", t.TempDir()},  // no gossip key
		{"cluster", "remove"}, // no node id
		{"no-such-command"},
		{"node", "start", "--no-such-flag"},
		{"bench"},            // no --target
		{"cluster", "bogus"}, // an unknown subcommand (cobra alone prints help, exit 0)
		{"cluster"},          // a group without its command
		{"token", "nope"},    // the same for every group
		{"cluster", "members", "--addr", "127.0.0.11:8080", "--token", "t"}, // --addr without a scheme
	}
	for _, args := range cases {
		err := exec.Command(binary, args...).Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("barberpro %v: %v, want exit status 2", args, err)
		}
	}
	out, err := exec.Command(binary, "version").Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("version: %v %q", err, out)
	}
	if v, err := exec.Command(binary, "--version").Output(); err != nil || string(v) != string(out) {
		t.Fatalf("--version: %v %q, want what `version` prints (%q)", err, v, out)
	}
}

// TestCLI_UsageErrorsSayTheFix: issue 10's first hour, items 2 and 6. A node
// started without a gossip key, or with one that is not base64, is told the
// flag, the variable and the command that make one; an --addr without a scheme
// is told what an API URL looks like, not a URL parser's error. Both exit 2.
func TestCLI_UsageErrorsSayTheFix(t *testing.T) {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BARBERPRO_") {
			env = append(env, kv)
		}
	}
	node := []string{"node", "start", "--id", "ba-1", "--city", "buenos-aires", "--data-dir", t.TempDir(),
		"--tls-dir", t.TempDir(), "--token-keys", filepath.Join(t.TempDir(), "keys.json")}
	keyFix := []string{"--gossip-key", "BARBERPRO_GOSSIP_KEY", "head -c 32 /dev/urandom | base64"}
	addrFix := []string{`"127.0.0.11:8080" is not a node's API URL`, "http://127.0.0.11:8080"}
	for name, c := range map[string]struct {
		args []string
		want []string
	}{
		"no gossip key":            {node, keyFix},
		"a gossip key not base64":  {append(slices.Clone(node), "--gossip-key", "not base64!"), keyFix},
		"cluster --addr no scheme": {[]string{"cluster", "members", "--addr", "127.0.0.11:8080", "--token", "t"}, addrFix},
		"backup --addr no scheme": {[]string{"backup", "--addr", "127.0.0.11:8080", "--jurisdiction", "ar",
			"--out", filepath.Join(t.TempDir(), "b"), "--token", "t"}, addrFix},
	} {
		cmd := exec.Command(binary, c.args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Errorf("%s: %v, want exit status 2\n%s", name, err, out)
		}
		for _, w := range c.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: the message does not say %q:\n%s", name, w, out)
			}
		}
		if strings.Contains(string(out), "parse \"") {
			t.Errorf("%s: a URL parser's error:\n%s", name, out)
		}
	}
}

// TestCLI_FlagsReadEnvironment checks that a flag falls back to its BARBERPRO_ variable.
func TestCLI_FlagsReadEnvironment(t *testing.T) {
	cmd := exec.Command(binary, "node", "start", "--id", "x", "--data-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "BARBERPRO_CITY=atlantis")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "atlantis") {
		t.Fatalf("BARBERPRO_CITY not read: %v %s", err, out)
	}
}

// TestDemo_FailedStartKeepsItsLogs: when the demo's nodes fail to start, the log
// its error points to still exists (a temporary demo dir is removed only after a
// clean run).
func TestDemo_FailedStartKeepsItsLogs(t *testing.T) {
	cmd := exec.Command(binary, "demo", "--ip-base", "196")
	cmd.Env = append(os.Environ(), "BARBERPRO_PROFILE=no-such-profile", "TMPDIR="+t.TempDir()) // every node refuses to start
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("demo with nodes that cannot start succeeded:\n%s", out)
	}
	m := regexp.MustCompile(`log: (\S+\.log)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("the demo's error names no node log:\n%s", out)
	}
	if _, err := os.Stat(string(m[1])); err != nil {
		t.Fatalf("the log the demo points to is gone: %v\n%s", err, out)
	}
}
