// Package lazyfstest gives tests a lazyfs mount (package lazyfs) served by a
// child process, and a power cut of it. The child is the test binary itself:
// a test package that mounts one calls ServeIfAsked first in its TestMain.
package lazyfstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/barberpro/edge/simulations/lazyfs"
)

// serveEnv makes the test binary a lazyfs server ("<under>\n<mountpoint>").
const serveEnv = "LAZYFS_TEST_SERVE"

// ServeIfAsked serves a lazyfs and exits when this process is the server a
// Disk started; otherwise it returns at once. Call it first in TestMain.
func ServeIfAsked() {
	v := os.Getenv(serveEnv)
	if v == "" {
		return
	}
	under, mnt, _ := strings.Cut(v, "\n")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := lazyfs.Serve(ctx, under, mnt)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Disk is a lazyfs mount (Mnt) over a directory of the test (Under), with
// its server.
type Disk struct {
	Under, Mnt string
	p          *lazyfs.Process
}

// Mount mounts a lazyfs over a fresh directory, stopped at cleanup; it skips
// the test where none can be mounted (it needs root and /dev/fuse).
func Mount(t *testing.T) *Disk {
	t.Helper()
	if err := lazyfs.Available(); err != nil {
		t.Skipf("lazyfs needs root and /dev/fuse: %v", err)
	}
	root := t.TempDir()
	d := &Disk{Under: filepath.Join(root, "disk"), Mnt: filepath.Join(root, "mnt")}
	for _, dir := range []string{d.Under, d.Mnt} {
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	d.start(t)
	t.Cleanup(func() {
		if err := d.p.Stop(5 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return d
}

func (d *Disk) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serveEnv+"="+d.Under+"\n"+d.Mnt)
	p, err := lazyfs.Start(cmd, d.Mnt, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	d.p = p
}

// Cut cuts the power and mounts a fresh lazyfs over the same directory; it
// returns what the cut lost. Files the test still holds open on the old
// mount answer errors from then on.
func (d *Disk) Cut(t *testing.T) lazyfs.Pending {
	t.Helper()
	lost, err := d.p.Cut()
	if err != nil {
		t.Fatal(err)
	}
	if lazyfs.Mounted(d.Mnt) {
		t.Fatal("still mounted after the cut")
	}
	d.start(t)
	return lost
}

// Path is name in the mount.
func (d *Disk) Path(name string) string { return filepath.Join(d.Mnt, name) }
