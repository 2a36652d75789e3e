package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestRestore_CLI: `barberpro restore` refuses (exit 1, saying why) a file
// that is not a backup, a city of another jurisdiction and a non-empty data
// dir; it seeds an empty one (restored.json written); bad usage exits 2.
func TestRestore_CLI(t *testing.T) {
	cfg := st.Config(t)
	cfg.Jurisdiction = "ar"
	s := st.MustOpen(t, cfg)
	file := filepath.Join(t.TempDir(), "ar.bpbackup")
	if _, err := s.BackupToFile(context.Background(), file); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("not a backup at all"), 0o600)
	used := t.TempDir()
	os.WriteFile(filepath.Join(used, "fsm.db"), []byte("x"), 0o600)

	run := func(args ...string) (int, string) {
		out, err := exec.Command(binary, append([]string{"restore"}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	for _, c := range []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"no flags", nil, 2, "required"},
		{"garbage", []string{"--from", garbage, "--data-dir", filepath.Join(t.TempDir(), "d"), "--id", "ba-1", "--city", "buenos-aires"}, 1, "not a valid backup"},
		{"another jurisdiction", []string{"--from", file, "--data-dir", filepath.Join(t.TempDir(), "d"), "--id", "us-1", "--city", "us-east"}, 1, "jurisdiction"},
		{"used data dir", []string{"--from", file, "--data-dir", used, "--id", "ba-1", "--city", "buenos-aires"}, 1, "not empty"},
	} {
		code, out := run(c.args...)
		if code != c.code || !strings.Contains(out, c.contains) {
			t.Errorf("%s: exit %d %q, want %d and %q", c.name, code, out, c.code, c.contains)
		}
	}
	dir := filepath.Join(t.TempDir(), "ba-1")
	if code, out := run("--from", file, "--data-dir", dir, "--id", "ba-1", "--city", "buenos-aires"); code != 0 {
		t.Fatalf("restore: exit %d %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, storage.RestoredMarker)); err != nil {
		t.Fatal(err)
	}
}
