// Package lazyfs is a lazy loopback FUSE file system: mounted over a
// directory (the disk), it passes every operation through to it except file
// data writes, which it keeps in memory until the file is fsynced (fsync or
// fdatasync). A power cut — every process using the mount killed, then the
// server killed and the mount replaced by a fresh one — loses exactly the data
// written and not yet fsynced, as Jepsen's and etcd's LazyFS does.
//
// Only unsynced data is modelled as lost: creating, renaming, linking and
// removing files and directories, truncates and attribute changes reach the
// disk at once (they are durable as soon as they return), and a write is never
// torn (a cut keeps all of a file's unsynced pages or none, per file, and it
// keeps none). See DESIGN.md.
//
// The simulations run the server in a process of its own (Start, and Serve in
// that process): a page fault on a mapped file of a FUSE mount served by the
// same Go process can deadlock its garbage collector.
package lazyfs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FSType is the file system type of a lazyfs mount in /proc/self/mounts.
const FSType = "fuse.lazyfs"

// ErrUnavailable wraps the reason a lazyfs cannot be mounted here.
var ErrUnavailable = errors.New("lazyfs: unavailable")

// Available reports why a lazyfs cannot be mounted on this machine (nil if
// it can): it mounts with mount(2) itself, which needs root, and /dev/fuse.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: mounting needs root", ErrUnavailable)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("%w: no /dev/fuse: %v", ErrUnavailable, err)
	}
	return nil
}

// cacheTimeout is how long the kernel may trust the names and attributes it
// was given: every change goes through the mount, which invalidates them.
const cacheTimeout = time.Second

// Mount mounts a lazyfs of directory under at mountpoint, served by this
// process until the returned server is unmounted.
func Mount(under, mountpoint string) (*fuse.Server, error) {
	srv, _, err := mount(under, mountpoint)
	return srv, err
}

func mount(under, mountpoint string) (*fuse.Server, *node, error) {
	under, err := filepath.Abs(under)
	if err != nil {
		return nil, nil, err
	}
	lroot, err := fs.NewLoopbackRoot(under)
	if err != nil {
		return nil, nil, fmt.Errorf("lazyfs: %w", err)
	}
	root := &node{LoopbackNode: lroot.(*fs.LoopbackNode)}
	t := cacheTimeout
	srv, err := fs.Mount(mountpoint, root, &fs.Options{
		EntryTimeout: &t, AttrTimeout: &t, NegativeTimeout: &t,
		MountOptions: fuse.MountOptions{
			FsName: "lazyfs:" + under, Name: "lazyfs",
			// mount(2) as root, no fusermount; no direct_io, no writeback
			// cache: the kernel's page cache serves mmap, writes reach us.
			DirectMount: true,
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("lazyfs: mount %s on %s: %w", under, mountpoint, err)
	}
	return srv, root, nil
}

// Pending is what a cut loses: the data written and not yet fsynced.
type Pending struct {
	// Bytes in whole pages (a page written in part counts whole).
	Bytes int64
	// Files holding them, by path in the mount, sorted.
	Files []string
}

func (p Pending) String() string {
	if len(p.Files) == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%d KiB in %s", p.Bytes>>10, strings.Join(p.Files, ", "))
}

// pending sums the unsynced pages of n (at path) and of every node below it
// that the kernel still knows by name.
func (n *node) pending(path string, out *Pending) {
	n.mu.Lock()
	if n.d.pending() {
		out.Bytes += int64(len(n.d.pages)) * pageSize
		out.Files = append(out.Files, path)
	}
	n.mu.Unlock()
	for name, ch := range n.Children() {
		if c, ok := ch.Operations().(*node); ok {
			c.pending(filepath.Join(path, name), out)
		}
	}
}

// ReadyLine is what Serve prints on its standard output once the mount
// serves; pendingLine, followed by the bytes and the files (JSON) of
// Pending, what it prints on SIGUSR1.
const (
	ReadyLine   = "lazyfs: ready"
	pendingLine = "lazyfs: pending"
)

// Serve mounts a lazyfs of under at mountpoint, prints ReadyLine, and serves
// until ctx ends (then it unmounts) or the mount goes away. On SIGUSR1 it
// prints what a cut would lose. It is the body of the server process Start
// runs.
func Serve(ctx context.Context, under, mountpoint string) error {
	srv, root, err := mount(under, mountpoint)
	if err != nil {
		return err
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	fmt.Println(ReadyLine)
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	for {
		select {
		case <-usr1:
			var p Pending
			root.pending("", &p)
			slices.Sort(p.Files)
			files, _ := json.Marshal(p.Files)
			fmt.Println(pendingLine, p.Bytes, string(files))
		case <-done:
			return nil
		case <-ctx.Done():
			return srv.Unmount()
		}
	}
}

// Process is a lazyfs served by another process.
type Process struct {
	// Mountpoint is where the lazyfs is mounted.
	Mountpoint string

	cmd     *exec.Cmd
	exited  chan struct{}
	pending chan Pending
	stderr  bytes.Buffer
}

// Start runs cmd, a process that calls Serve for mountpoint (its standard
// output is Start's), and waits until it prints ReadyLine or timeout passes.
func Start(cmd *exec.Cmd, mountpoint string, timeout time.Duration) (*Process, error) {
	p := &Process{Mountpoint: mountpoint, cmd: cmd, exited: make(chan struct{}), pending: make(chan Pending, 1)}
	if cmd.Stderr == nil {
		cmd.Stderr = &p.stderr
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("lazyfs: start server for %s: %w", mountpoint, err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			switch pd, isPending := parsePending(sc.Text()); {
			case isPending:
				select {
				case p.pending <- pd:
				default:
				}
			case !ok && sc.Text() == ReadyLine:
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
		cmd.Wait()
		close(p.exited)
	}()
	select {
	case ok := <-ready:
		if ok {
			return p, nil
		}
		<-p.exited
		return nil, fmt.Errorf("lazyfs: server for %s exited: %v: %s", mountpoint, cmd.ProcessState, strings.TrimSpace(p.stderr.String()))
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.exited
		Unmount(mountpoint)
		return nil, fmt.Errorf("lazyfs: server for %s not ready within %v: %s", mountpoint, timeout, strings.TrimSpace(p.stderr.String()))
	}
}

// parsePending reads a line Serve printed on SIGUSR1.
func parsePending(line string) (Pending, bool) {
	var pd Pending
	rest, ok := strings.CutPrefix(line, pendingLine+" ")
	if !ok {
		return pd, false
	}
	n, files, _ := strings.Cut(rest, " ")
	var err error
	if pd.Bytes, err = strconv.ParseInt(n, 10, 64); err != nil || json.Unmarshal([]byte(files), &pd.Files) != nil {
		return pd, false
	}
	return pd, true
}

// Cut cuts the power: it kills the server (SIGKILL), so every write not yet
// fsynced is gone with its memory, and detaches the mount, so the kernel's
// page cache of it goes too. It returns what was lost, as the server said
// just before (zero if it did not say within a second). The caller must have
// killed every process using the mount first. Mount a fresh one (Start) to
// read what survived.
func (p *Process) Cut() (Pending, error) {
	var lost Pending
	if p.cmd.Process.Signal(syscall.SIGUSR1) == nil {
		select {
		case lost = <-p.pending:
		case <-p.exited:
		case <-time.After(time.Second):
		}
	}
	p.cmd.Process.Kill()
	<-p.exited
	return lost, Unmount(p.Mountpoint)
}

// Stop stops the server (SIGTERM: it unmounts) and detaches the mount if it
// is still there. Unsynced data is not written: as after a cut, the disk
// holds only what was fsynced.
func (p *Process) Stop(timeout time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.exited
	}
	if Mounted(p.Mountpoint) {
		return Unmount(p.Mountpoint)
	}
	return nil
}

// Mounted reports whether a lazyfs is mounted at mountpoint.
func Mounted(mountpoint string) bool {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == FSType && unescapeMount(f[1]) == abs {
			return true
		}
	}
	return false
}

// Unmount unmounts the lazyfs at mountpoint, detaching it if it is busy;
// nothing mounted there is not an error.
func Unmount(mountpoint string) error {
	for Mounted(mountpoint) {
		if err := syscall.Unmount(mountpoint, 0); err != nil {
			if err2 := syscall.Unmount(mountpoint, syscall.MNT_DETACH); err2 != nil {
				return fmt.Errorf("lazyfs: umount %s: %w", mountpoint, err)
			}
		}
	}
	return nil
}

// unescapeMount undoes the octal escapes of /proc/self/mounts (\040 for a
// space), which are Go's too.
func unescapeMount(s string) string {
	if u, err := strconv.Unquote(`"` + s + `"`); err == nil {
		return u
	}
	return s
}
