package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"github.com/barberpro/edge/cluster"
	"github.com/barberpro/edge/cluster/clustertest"
	"github.com/barberpro/edge/edge/auth"
	"github.com/barberpro/edge/simulations/procs"
)

// TestCLI_BenchBadUsage: bad flags of bench are bad usage (exit 2), refused
// before any request.
func TestCLI_BenchBadUsage(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "tokens")
	if err := auth.Init(keys); err != nil {
		t.Fatal(err)
	}
	ok := []string{"bench", "--target", "http://127.0.0.1:1", "--token-dir", keys}
	for name, args := range map[string][]string{
		"unknown mode":    append(ok, "--mode", "lukewarm"),
		"no target":       {"bench", "--token-dir", keys},
		"target not URL":  {"bench", "--target", "127.0.0.11:8080", "--token-dir", keys},
		"no token dir":    {"bench", "--target", "http://127.0.0.1:1"},
		"bad token dir":   {"bench", "--target", "http://127.0.0.1:1", "--token-dir", t.TempDir()},
		"no users":        append(ok, "--users", "0"),
		"users not int":   append(ok, "--users", "many"),
		"negative time":   append(ok, "--duration", "-1s"),
		"negative think":  append(ok, "--think", "-1s"),
		"negative provs":  append(ok, "--providers", "-3"),
		"stray argument":  append(ok, "now"),
		"unknown flag":    append(ok, "--users-per-city", "3"),
		"spread bad user": append(ok, "--mode", "spread", "--users", "1,-2"),
	} {
		if _, err := runCLI(t, args...); exitCode(err) != 2 {
			t.Errorf("%s: %v (exit %d), want exit 2", name, err, exitCode(err))
		}
	}
}

// TestDemo_BenchLine: the demo prints a bench line for a city run against its
// five nodes with its token keys, naming the binary its nodes run (bin/barberpro
// after `make run` is on no PATH), and says when its nodes' rate limits would
// make it measure 429s; --no-rate-limits lifts them through the node's own
// flags' variables.
func TestDemo_BenchLine(t *testing.T) {
	sec, err := procs.NewSecrets(filepath.Join(t.TempDir(), "secrets"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := procs.FiveCities("/opt/demo/bin/barberpro", t.TempDir(), sec, 141)
	if err != nil {
		t.Fatal(err)
	}
	l := benchLine(cl, sec.TokenDir(), true)
	want := "/opt/demo/bin/barberpro bench --target http://127.0.0.141:8080,http://127.0.0.142:8080,http://127.0.0.143:8080,http://127.0.0.144:8080,http://127.0.0.145:8080 --token-dir " +
		sec.TokenDir() + " --users 10000 --duration 1m0s"
	if l.cmd != want {
		t.Errorf("bench line\n%s\nwant\n%s", l.cmd, want)
	}
	if strings.Contains(l.what, "429") {
		t.Errorf("unlimited nodes, yet the line warns of 429s: %s", l.what)
	}
	if l := benchLine(cl, sec.TokenDir(), false); !strings.Contains(l.what, "--no-rate-limits") {
		t.Errorf("limited nodes, and the line does not say how to lift them: %s", l.what)
	}
}

// TestCLI_BenchJSONFile: --json-file writes the results as JSON to a file
// while the table stays on screen (a person watching the run and a script
// reading it get both from one run); a path that cannot be written is bad
// usage, refused before any load (against a target nobody listens on, a load
// would fail otherwise), as is a directory; a link is followed, not
// replaced; a run that fails leaves an earlier run's file whole, and no
// temporary file.
func TestCLI_BenchJSONFile(t *testing.T) {
	n := clustertest.MustStartNode(t, func(c *cluster.Config) { c.Limits.PerSubject, c.Limits.PerIP = rate.Inf, rate.Inf })
	tokens := clustertest.TokenDir(t)
	args := []string{"bench", "--mode", "spread", "--target", n.URL(), "--token-dir", tokens, "--users", "1,2", "--duration", "300ms"}

	dead := []string{"bench", "--mode", "spread", "--target", "http://127.0.0.1:1", "--token-dir", tokens, "--users", "1", "--duration", "300ms"}
	for _, bad := range []string{filepath.Join(t.TempDir(), "no-such-dir", "r.json"), t.TempDir()} {
		if _, err := runCLI(t, append(dead, "--json-file", bad)...); exitCode(err) != 2 {
			t.Fatalf("--json-file %s: %v (exit %d), want exit 2", bad, err, exitCode(err))
		}
	}

	dir := t.TempDir()
	file, link := filepath.Join(dir, "r.json"), filepath.Join(dir, "latest.json")
	if err := os.WriteFile(file, []byte("OLD"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("r.json", link); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, append(args, "--json-file", link)...)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	if !strings.Contains(out, "bookings/s") {
		t.Errorf("screen shows no table:\n%s", out)
	}
	if strings.HasPrefix(strings.TrimSpace(out), "[") {
		t.Errorf("screen shows JSON, want the table:\n%s", out)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Clients int `json:"clients"`
		OK      int `json:"ok"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%s: %v\n%s", file, err, raw)
	}
	if len(got) != 2 || got[0].Clients != 1 || got[1].Clients != 2 || got[0].OK == 0 || got[1].OK == 0 {
		t.Errorf("%s holds %+v, want a run of 1 and of 2 clients, each with bookings", file, got)
	}

	if _, err := runCLI(t, append(dead, "--json-file", file)...); err == nil {
		t.Fatal("a bench against no node succeeded")
	}
	if again, err := os.ReadFile(file); err != nil || string(again) != string(raw) {
		t.Errorf("after a failed run %s holds %q (%v), want the earlier run's results", file, again, err)
	}
	if target, err := os.Readlink(link); err != nil || target != "r.json" {
		t.Errorf("%s: link to %q (%v), want it left a link to r.json", link, target, err)
	}
	if names, _ := os.ReadDir(dir); len(names) != 2 {
		t.Errorf("%s holds %v, want r.json and latest.json only", dir, names)
	}
}
