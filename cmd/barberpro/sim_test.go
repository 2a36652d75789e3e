package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Test_Sim_ShortLeaderKill runs a short scenario for real — five node
// processes, the workload, a kill -9 of the ar leader and its restart, every
// checker, the report — and checks the run passed and left what it promises:
// report.json, chart.png, history.jsonl and node logs, no data dirs.
func Test_Sim_ShortLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 5-process cluster for ~30 s")
	}
	dir := t.TempDir()
	scenario := filepath.Join(dir, "short-leader-kill.yaml")
	os.WriteFile(scenario, []byte(`name: short-leader-kill
description: kill -9 the ar leader for 3 s
seed: 11
duration: 14s
topology: {ip_base: 241}
workload: {clients: 6, hot_providers: 4}
faults:
  - {at: 4s, jitter: 1s, fault: kill, params: {target: leader}, heal_after: 3s}
liveness: {bound: 10s}
`), 0o644)
	report := filepath.Join(dir, "report")
	cmd := exec.Command(binary, "sim", scenario, "--report", report)
	out, err := cmd.Output()
	t.Logf("barberpro sim:\n%s", out)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Logf("stderr:\n%s", ee.Stderr)
		}
		t.Fatalf("sim failed: %v", err)
	}
	for _, want := range []string{"seed 11", "PASS", "kill -9", "checks: all passed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	b, err := os.ReadFile(filepath.Join(report, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Passed bool `json:"passed"`
		Seed   uint64
		Faults []struct {
			Describe string `json:"describe"`
			Recovery int64  `json:"recovery_ns"`
		} `json:"faults"`
		Series []json.RawMessage `json:"series"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if !r.Passed || r.Seed != 11 || len(r.Faults) != 1 || r.Faults[0].Recovery < 0 || len(r.Series) < 10 {
		t.Fatalf("report: %+v", r)
	}
	for _, f := range []string{"chart.png", "history.jsonl", "data/ba-1.log"} {
		if _, err := os.Stat(filepath.Join(report, f)); err != nil {
			t.Errorf("%s missing: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(report, "data", "ba-1")); !os.IsNotExist(err) {
		t.Errorf("a passing run keeps its data dirs: %v", err)
	}
	if rules, _ := exec.Command("iptables", "-S", "INPUT").Output(); strings.Contains(string(rules), "barberpro-sim-241") {
		t.Errorf("iptables rules left behind:\n%s", rules)
	}
}

// TestCLI_SimListAndBadScenario: --list names the library; an unknown scenario
// or a bad file is bad usage (exit 2).
func TestCLI_SimListAndBadScenario(t *testing.T) {
	out, err := exec.Command(binary, "sim", "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"leader-kill", "city-partition", "minority-partition", "pause-leader",
		"wiped-disk-rejoin", "rolling-restart", "us-node-loss", "flapping-node"} {
		if !strings.Contains(string(out), n) {
			t.Errorf("--list lacks %s", n)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("name: bad\nduration: 10s\ntopology: {ip_base: 20}\nfaults: [{at: 1s, fault: meteor, heal_after: 1s}]\n"), 0o644)
	for _, args := range [][]string{{"sim", "no-such-scenario"}, {"sim", bad}} {
		out, err := exec.Command(binary, args...).CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("barberpro %v: %v %s, want exit 2", args, err, out)
		}
	}
}

// TestCLI_SimWithoutIPTablesIsSkippedNotFailed: a partition scenario on a machine
// where iptables cannot run (here: not on PATH) is reported as skipped, saying
// why, and the run exits 2 — never as violations of a run that did not happen.
func TestCLI_SimWithoutIPTablesIsSkippedNotFailed(t *testing.T) {
	cmd := exec.Command(binary, "sim", "city-partition", "--report", t.TempDir())
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir()) // no iptables to be found
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("sim city-partition without iptables: %v, want exit 2\n%s", err, out)
	}
	for _, want := range []string{"SKIPPED", "iptables", "skipped, not run"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "violation") {
		t.Errorf("a skipped scenario reported violations:\n%s", out)
	}
}
