package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/barberpro/edge/edge/auth"
)

// runCLI runs the barberpro command tree in-process with args and returns its
// standard output and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestCLI_TokenInitIssue makes a key directory and a token with the CLI and
// checks the token verifies against the key set it wrote, as the role and
// subject asked; a second init overwrites nothing, a bad role is bad usage.
func TestCLI_TokenInitIssue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokens")
	if out, err := runCLI(t, "token", "init", "--dir", dir); err != nil {
		t.Fatalf("token init: %v\n%s", err, out)
	}
	var u usageError
	if _, err := runCLI(t, "token", "init", "--dir", dir); !errors.As(err, &u) || !errors.Is(err, auth.ErrKeyExists) {
		t.Fatalf("second token init: %v, want bad usage wrapping ErrKeyExists", err)
	}
	out, err := runCLI(t, "token", "issue", "--dir", dir, "--role", "client", "--sub", "cli-ana", "--ttl", "1h")
	if err != nil {
		t.Fatalf("token issue: %v\n%s", err, out)
	}
	v, err := auth.LoadKeySet(filepath.Join(dir, auth.KeySetFile))
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(strings.TrimSpace(out))
	if err != nil || p != (auth.Principal{Subject: "cli-ana", Role: auth.RoleClient}) {
		t.Fatalf("issued token: %+v, %v", p, err)
	}
	if _, err := runCLI(t, "token", "issue", "--dir", dir, "--role", "admin", "--sub", "x"); !errors.As(err, &u) {
		t.Fatalf("role admin: %v, want bad usage", err)
	}
	if _, err := runCLI(t, "token", "rotate", "--dir", dir); err != nil {
		t.Fatalf("token rotate: %v", err)
	}
	v, err = auth.LoadKeySet(filepath.Join(dir, auth.KeySetFile))
	if err != nil || len(v.KeyIDs()) != 2 {
		t.Fatalf("after rotate: %v kids, %v", v, err)
	}
	if _, err := v.Verify(strings.TrimSpace(out)); err != nil {
		t.Fatalf("a token of the old key after rotate: %v", err)
	}
}

// TestCLI_ClusterCommandsNeedAToken checks the cluster commands refuse to run
// without an operator token (bad usage), before calling any node.
func TestCLI_ClusterCommandsNeedAToken(t *testing.T) {
	t.Setenv("BARBERPRO_TOKEN", "")
	for _, args := range [][]string{
		{"cluster", "status", "--addr", "http://127.0.0.1:1"},
		{"cluster", "members", "--addr", "http://127.0.0.1:1"},
		{"cluster", "remove", "x", "--force", "--addr", "http://127.0.0.1:1"},
	} {
		_, err := runCLI(t, args...)
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), "--token") {
			t.Errorf("%v: %v, want bad usage naming --token", args, err)
		}
	}
}

// TestCLI_TokenLifetimeAndIssuerFlags (review8 finding 6): token issue makes no
// token over the nodes' default --token-max-ttl (30 days), and node start
// refuses an empty --token-issuer or a --token-max-ttl that is not positive.
func TestCLI_TokenLifetimeAndIssuerFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokens")
	if out, err := runCLI(t, "token", "init", "--dir", dir); err != nil {
		t.Fatalf("token init: %v\n%s", err, out)
	}
	var u usageError
	if _, err := runCLI(t, "token", "issue", "--dir", dir, "--role", "client", "--sub", "cli-ana", "--ttl", "721h"); !errors.As(err, &u) || !strings.Contains(err.Error(), "--ttl") {
		t.Errorf("token issue --ttl 721h: %v, want bad usage naming --ttl", err)
	}
	if out, err := runCLI(t, "token", "issue", "--dir", dir, "--role", "client", "--sub", "cli-ana", "--ttl", "720h"); err != nil {
		t.Errorf("token issue --ttl 720h: %v\n%s", err, out)
	}
	start := []string{"node", "start", "--id", "ba-1", "--city", "buenos-aires", "--data-dir", t.TempDir(),
		"--tls-dir", t.TempDir(), "--gossip-key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "--token-keys", filepath.Join(dir, auth.KeySetFile)}
	for _, bad := range [][]string{{"--token-issuer", ""}, {"--token-max-ttl", "0s"}, {"--token-max-ttl", "-1h"}} {
		if _, err := runCLI(t, append(append([]string{}, start...), bad...)...); !errors.As(err, &u) || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("node start %v: %v, want bad usage naming %s", bad, err, bad[0])
		}
	}
}
