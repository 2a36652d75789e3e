package main

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/barberpro/edge/cluster/pki"
)

// TestCLI_CAInitIssue: `ca init` makes a CA and refuses to make a second over
// it; `ca issue` writes a certificate that names the node's id, city and the
// jurisdiction the topology gives that city (us-east: us), with the --ip
// addresses; a missing flag, an unknown city or a bad address is bad usage.
func TestCLI_CAInitIssue(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca")
	if out, err := runCLI(t, "ca", "init", "--dir", ca); err != nil {
		t.Fatalf("ca init: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "ca", "init", "--dir", ca); err == nil {
		t.Fatal("a second ca init over the first succeeded")
	}
	out := filepath.Join(t.TempDir(), "us-1")
	if o, err := runCLI(t, "ca", "issue", "--dir", ca, "--id", "us-1", "--city", "us-east", "--ip", "127.0.0.15,127.0.0.16", "--out", out); err != nil {
		t.Fatalf("ca issue: %v\n%s", err, o)
	}
	m, err := pki.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	want := pki.Identity{Jurisdiction: "us", City: "us-east", NodeID: "us-1"}
	if m.Identity != want || !m.HasIP(net.ParseIP("127.0.0.15")) || !m.HasIP(net.ParseIP("127.0.0.16")) {
		t.Fatalf("issued %+v for %v, want %+v for 127.0.0.15 and .16", m.Identity, m.IPs(), want)
	}
	for name, args := range map[string][]string{
		"no --ip":      {"ca", "issue", "--dir", ca, "--id", "x-1", "--city", "cordoba", "--out", t.TempDir()},
		"unknown city": {"ca", "issue", "--dir", ca, "--id", "x-1", "--city", "atlantis", "--ip", "127.0.0.9", "--out", t.TempDir()},
		"bad address":  {"ca", "issue", "--dir", ca, "--id", "x-1", "--city", "cordoba", "--ip", "localhost", "--out", t.TempDir()},
		"no --dir":     {"ca", "init"},
	} {
		if _, err := runCLI(t, args...); exitCode(err) != 2 {
			t.Errorf("%s: %v (exit %d), want exit 2", name, err, exitCode(err))
		}
	}
}
