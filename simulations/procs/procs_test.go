package procs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// script writes an executable shell script that ignores its arguments.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func waitExit(t *testing.T, p *Proc) {
	t.Helper()
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("the process did not exit")
	}
}

// TestProc_Exits: the harness's kills are expected ends, a process that ends
// by itself is not, unless it was started expecting it.
func TestProc_Exits(t *testing.T) {
	dir := t.TempDir()
	p := &Proc{Spec: Spec{ID: "n1", DataDir: dir}, Binary: script(t, "exec sleep 30"), LogPath: filepath.Join(dir, "n1.log")}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	crash := script(t, "echo 'panic: boom' >&2; exit 2")
	if err := p.StartWith(StartOptions{Binary: crash}); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p)
	if err := p.StartWith(StartOptions{Binary: crash, ExpectExit: true}); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p)
	ex := p.Exits()
	if len(ex) != 3 {
		t.Fatalf("exits %+v", ex)
	}
	if !ex[0].Expected || ex[0].Err != "signal: killed" {
		t.Errorf("kill: %+v", ex[0])
	}
	if ex[1].Expected || ex[1].Err != "exit status 2" || ex[1].Node != "n1" || ex[1].At.Before(ex[1].Started) {
		t.Errorf("crash: %+v", ex[1])
	}
	if !ex[2].Expected {
		t.Errorf("expected crash: %+v", ex[2])
	}
	if b, _ := os.ReadFile(p.LogPath); !strings.Contains(string(b), "panic: boom") {
		t.Errorf("log %q", b)
	}
}

// TestProc_StartWithEnv: the run's extra environment reaches the process and
// only that run.
func TestProc_StartWithEnv(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	p := &Proc{Spec: Spec{ID: "n1", Env: []string{"A=1"}}, Binary: script(t, `echo "$A $B" >> `+out), LogPath: filepath.Join(dir, "n1.log")}
	if err := p.StartWith(StartOptions{Env: []string{"B=2"}}); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p)
	if b, _ := os.ReadFile(out); string(b) != "1 2\n1 \n" {
		t.Fatalf("env seen %q", b)
	}
}

func TestSpec_Clone(t *testing.T) {
	s := Spec{ID: "a", Join: []string{"x"}, Env: []string{"E=1"}, GossipKey: []byte{1}}
	c := s.Clone()
	c.Join[0], c.Env[0], c.GossipKey[0] = "y", "E=2", 2
	if s.Join[0] != "x" || s.Env[0] != "E=1" || s.GossipKey[0] != 1 || c.ID != "a" {
		t.Fatalf("clone shares with the original: %+v %+v", s, c)
	}
}
