// Package procs runs BarberPro nodes as real operating-system processes on
// loopback: one `barberpro node start` per node, each on its own 127.0.0.x address
// with the default ports. The demo, the end-to-end tests and the failover
// simulations start, kill -9, pause and restart nodes through it.
package procs

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/barberpro/edge/edge/client"
)

// Default ports every node of a local cluster uses on its own IP.
const (
	HTTPPort   = 8080
	GossipPort = 7946
	RaftPort   = 7000
	ActorPort  = 8090
	// PprofPort serves a node's runtime profiles when asked (demo --pprof).
	PprofPort = 6060
)

// Spec describes one node process.
type Spec struct {
	ID, City, IP, DataDir string
	// Bootstrap is set on the node of a single-node jurisdiction (`--bootstrap`:
	// it founds the group unless a member holding state shows up within the
	// founding wait).
	Bootstrap bool
	// BootstrapExpect (`--bootstrap-expect N`), set on every node of a
	// multi-node jurisdiction: the group is founded once N new nodes of it are
	// up, and never by a wiped node while the group exists.
	BootstrapExpect int
	// Join lists gossip addresses (ip:port) to join.
	Join []string
	// GossipKey is the cluster's shared key (16, 24 or 32 bytes).
	GossipKey []byte
	// TLSDir is the node's `--tls-dir` (ca.crt, node.crt, node.key) and
	// TokenKeys its `--token-keys` (the public key set of bearer tokens); see
	// Secrets.
	TLSDir, TokenKeys string
	// KEKFile is the node's `--kek-file`: its jurisdiction's key-encryption
	// key, which seals health data (see Secrets.KEKFile); "" for none.
	KEKFile string
	// Env adds environment variables (KEY=VALUE) to the process.
	Env []string
	// LogLevel is the node's --log-level. Default info.
	LogLevel string
}

// URL is the node's API base URL.
func (s Spec) URL() string { return fmt.Sprintf("http://%s:%d", s.IP, HTTPPort) }

// GossipAddr is the address other nodes join.
func (s Spec) GossipAddr() string { return fmt.Sprintf("%s:%d", s.IP, GossipPort) }

// Args is the node's `barberpro node start` command line (the gossip key goes in
// the environment, not on the command line).
func (s Spec) Args() []string {
	args := []string{"node", "start", "--id", s.ID, "--city", s.City, "--data-dir", s.DataDir, "--bind", s.IP,
		"--tls-dir", s.TLSDir, "--token-keys", s.TokenKeys}
	if s.BootstrapExpect > 0 {
		args = append(args, "--bootstrap-expect", strconv.Itoa(s.BootstrapExpect))
	} else if s.Bootstrap {
		args = append(args, "--bootstrap")
	}
	if len(s.Join) > 0 {
		args = append(args, "--join", strings.Join(s.Join, ","))
	}
	if s.KEKFile != "" {
		args = append(args, "--kek-file", s.KEKFile)
	}
	if s.LogLevel != "" {
		args = append(args, "--log-level", s.LogLevel)
	}
	return args
}

// Clone returns a copy of s that shares no slice with it, so a caller may keep
// the spec a node was first started with while faults change Join or Env.
func (s Spec) Clone() Spec {
	c := s
	c.Join = slices.Clone(s.Join)
	c.GossipKey = slices.Clone(s.GossipKey)
	c.Env = slices.Clone(s.Env)
	return c
}

// Exit is one end of a node process.
type Exit struct {
	// Node is the node id.
	Node string
	// At is when the process was seen gone; Started when that run began.
	At, Started time.Time
	// Err is the wait error ("signal: killed", "exit status 2"), empty for
	// status 0.
	Err string
	// Expected is true when the harness ended the process (Kill, Stop) or said
	// it would end by itself (ExpectExit); false is a crash.
	Expected bool
}

// Proc is a running (or stopped) node process.
type Proc struct {
	Spec   Spec
	Binary string
	// LogPath receives the node's stderr and stdout, appended across restarts.
	LogPath string

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	err      error
	expected bool // the current run's end is the harness's doing
	exits    []Exit
}

// ErrNotRunning is returned when a process is not running.
var ErrNotRunning = errors.New("procs: not running")

// StartOptions change one run of a process.
type StartOptions struct {
	// Binary replaces Proc.Binary for this run (e.g. a build with failpoints).
	Binary string
	// Env adds environment variables (KEY=VALUE) for this run only.
	Env []string
	// ExpectExit marks the run as one that may end by itself (see ExpectExit).
	ExpectExit bool
}

// Start launches the process. It does not wait for readiness (see WaitReady).
func (p *Proc) Start() error { return p.StartWith(StartOptions{}) }

// StartWith launches the process as Start does, changed by o for this run.
func (p *Proc) StartWith(o StartOptions) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.exited != nil {
		select {
		case <-p.exited:
		default:
			return fmt.Errorf("procs: %s already running", p.Spec.ID)
		}
	}
	if err := os.MkdirAll(filepath.Dir(p.LogPath), 0o750); err != nil {
		return err
	}
	log, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	bin := p.Binary
	if o.Binary != "" {
		bin = o.Binary
	}
	cmd := exec.Command(bin, p.Spec.Args()...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(append(os.Environ(), p.Spec.Env...), o.Env...)
	if len(p.Spec.GossipKey) > 0 {
		cmd.Env = append(cmd.Env, "BARBERPRO_GOSSIP_KEY="+base64.StdEncoding.EncodeToString(p.Spec.GossipKey))
	}
	// Its own process group: a Ctrl-C on the parent does not reach it directly;
	// the parent decides how each node stops.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("procs: start %s: %w", p.Spec.ID, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.expected = cmd, exited, o.ExpectExit
	started := time.Now()
	go func() {
		err := cmd.Wait()
		log.Close()
		p.mu.Lock()
		p.err = err
		e := Exit{Node: p.Spec.ID, At: time.Now(), Started: started, Expected: p.expected}
		if err != nil {
			e.Err = err.Error()
		}
		p.exits = append(p.exits, e)
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

// ExpectExit marks the current run of the process as one that may end by
// itself (a node started with a crash failpoint): its exit is not a crash.
func (p *Proc) ExpectExit() {
	p.mu.Lock()
	p.expected = true
	p.mu.Unlock()
}

// Exits lists every end of the process so far, oldest first.
func (p *Proc) Exits() []Exit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.exits)
}

// Exited returns a channel closed when the current run of the process ends
// (nil if it was never started).
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// Running reports whether the process is alive (paused counts as alive).
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Pid is the process id, or 0.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return ErrNotRunning
	}
	select {
	case <-exited:
		return ErrNotRunning
	default:
	}
	return cmd.Process.Signal(sig)
}

// wait blocks until the process exits or timeout passes.
func (p *Proc) wait(timeout time.Duration) error {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited == nil {
		return nil
	}
	select {
	case <-exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("procs: %s did not exit within %v", p.Spec.ID, timeout)
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *Proc) Kill() error {
	p.ExpectExit()
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	return p.wait(10 * time.Second)
}

// Stop sends SIGTERM and waits up to timeout for a clean exit, then kills.
func (p *Proc) Stop(timeout time.Duration) error {
	p.Resume() // a paused process cannot handle SIGTERM
	p.ExpectExit()
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if err := p.wait(timeout); err != nil {
		p.Kill()
		return err
	}
	return nil
}

// Pause sends SIGSTOP; Resume sends SIGCONT.
func (p *Proc) Pause() error { return p.signal(syscall.SIGSTOP) }

// Resume sends SIGCONT.
func (p *Proc) Resume() error { return p.signal(syscall.SIGCONT) }

// ExitErr is the process's exit error once it exited (nil for status 0).
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// WaitReady polls the node's /readyz until 200, the process exits, or ctx ends.
func (p *Proc) WaitReady(ctx context.Context) error {
	c := client.New(p.Spec.URL(), nil)
	for {
		if err := c.Ready(ctx); err == nil {
			return nil
		}
		if !p.Running() {
			return fmt.Errorf("procs: %s exited before it was ready (%v); log: %s", p.Spec.ID, p.ExitErr(), p.LogPath)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("procs: %s not ready: %w; log: %s", p.Spec.ID, ctx.Err(), p.LogPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Cluster is a set of node processes.
type Cluster struct {
	Procs []*Proc
	// Secrets is the cluster's key material (certificates, gossip and token
	// keys); clients of its API get their tokens from it.
	Secrets *Secrets
}

// ByID returns the process of node id, or nil.
func (c *Cluster) ByID(id string) *Proc {
	for _, p := range c.Procs {
		if p.Spec.ID == id {
			return p
		}
	}
	return nil
}

// StartAll starts every process in order, each once the gossip addresses it
// joins accept connections, and waits until all are ready. (A group founded with
// --bootstrap-expect has no ready node before enough of its nodes have started.)
func (c *Cluster) StartAll(ctx context.Context) error {
	for _, p := range c.Procs {
		for _, addr := range p.Spec.Join {
			if err := c.waitListening(ctx, addr); err != nil {
				return err
			}
		}
		if err := p.Start(); err != nil {
			return err
		}
	}
	for _, p := range c.Procs {
		if err := p.WaitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// waitListening waits until addr (a node's gossip address) accepts TCP
// connections, or the process that should listen there has exited.
func (c *Cluster) waitListening(ctx context.Context, addr string) error {
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		for _, q := range c.Procs {
			if q.Spec.GossipAddr() == addr && !q.Running() {
				return fmt.Errorf("procs: %s exited before listening on %s (%v); log: %s", q.Spec.ID, addr, q.ExitErr(), q.LogPath)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("procs: nothing listens on %s: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StopAll stops every running process with SIGTERM (in reverse order), killing
// those that do not exit within timeout.
func (c *Cluster) StopAll(timeout time.Duration) {
	var wg sync.WaitGroup
	for i := len(c.Procs) - 1; i >= 0; i-- {
		p := c.Procs[i]
		if p.Running() {
			wg.Add(1)
			go func() { defer wg.Done(); p.Stop(timeout) }()
		}
	}
	wg.Wait()
}

// KillAll kills every running process.
func (c *Cluster) KillAll() {
	for _, p := range c.Procs {
		if p.Running() {
			p.Kill()
		}
	}
}

// FiveCities is the standard local layout: Buenos Aires, Córdoba, Rosario and La
// Plata (jurisdiction ar, each with --bootstrap-expect 3) and us-east (us,
// --bootstrap), on 127.0.0.11-15 with the default ports, under dataRoot; every
// node but ba-1 joins ba-1. ipBase shifts the addresses (11 gives .11-.15) so several
// clusters can run at once. Each node gets its certificate from sec, and the
// gossip key, token keys and its jurisdiction's key-encryption key of sec.
func FiveCities(binary, dataRoot string, sec *Secrets, ipBase int) (*Cluster, error) {
	ip := func(i int) string { return "127.0.0." + strconv.Itoa(ipBase+i) }
	ba := ip(0) + ":" + strconv.Itoa(GossipPort)
	nodes := []struct {
		id, city  string
		expect    int
		bootstrap bool
	}{
		{"ba-1", "buenos-aires", 3, false},
		{"cba-1", "cordoba", 3, false},
		{"ros-1", "rosario", 3, false},
		{"lp-1", "la-plata", 3, false},
		{"us-1", "us-east", 0, true},
	}
	c := &Cluster{Secrets: sec}
	for i, n := range nodes {
		tlsDir, err := sec.NodeTLS(n.id, n.city, ip(i))
		if err != nil {
			return nil, err
		}
		j, err := sec.Jurisdiction(n.city)
		if err != nil {
			return nil, err
		}
		kek, err := sec.NodeKEKFile(n.id, j)
		if err != nil {
			return nil, err
		}
		s := Spec{ID: n.id, City: n.city, IP: ip(i), DataDir: filepath.Join(dataRoot, n.id), Bootstrap: n.bootstrap,
			BootstrapExpect: n.expect, GossipKey: sec.GossipKey, TLSDir: tlsDir, TokenKeys: sec.KeySet(), KEKFile: kek}
		if i > 0 {
			s.Join = []string{ba}
		}
		c.Procs = append(c.Procs, &Proc{Spec: s, Binary: binary, LogPath: filepath.Join(dataRoot, n.id+".log")})
	}
	return c, nil
}
