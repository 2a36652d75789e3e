//go:build failpoints

package storage

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestFailpoint_CrashKillsTheProcess runs this test binary again with
// BARBERPRO_FAILPOINTS=snapshot-restore=crash and checks that the child dies
// of SIGKILL at the failpoint, before the line after it. Only with -tags
// failpoints.
func TestFailpoint_CrashKillsTheProcess(t *testing.T) {
	if os.Getenv("STORAGE_FAILPOINT_CHILD") == "1" {
		failpoint(fpSnapshotRestore)
		os.Stdout.WriteString("survived the failpoint\n")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFailpoint_CrashKillsTheProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STORAGE_FAILPOINT_CHILD=1", FailpointsEnv+"="+fpSnapshotRestore+"=crash")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL\n%s", err, out)
	}
	if strings.Contains(string(out), "survived") || !strings.Contains(string(out), "failpoint snapshot-restore: crash") {
		t.Fatalf("child output:\n%s", out)
	}
}

// TestFailpoint_UnsetDoesNothing: with the tag but no variable, failpoints do
// not fire.
func TestFailpoint_UnsetDoesNothing(t *testing.T) {
	if os.Getenv(FailpointsEnv) != "" {
		t.Skip(FailpointsEnv + " is set")
	}
	failpoint(fpSnapshotRestore)
}
