package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long a stopped process has to exit after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// pollEvery is the interval of readiness checks.
const pollEvery = 200 * time.Millisecond

// errExited is wrapped when a process ended before it was stopped.
var errExited = errors.New("process exited")

// proc is one child process of the harness (an etcd member or a barberpro node),
// its output going to a log file in the run's temp dir.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // the exit status, once done is closed
}

// startProc starts bin with args and env (added to the harness's own), output to
// dir/name.log.
func startProc(dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// stop ends the process: SIGTERM, then SIGKILL after stopGrace. It returns once
// the process has exited; stopping an exited process does nothing.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited returns an error wrapping errExited, with the log's tail, once the
// process has ended; nil while it runs.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s: %w (%v); last lines of %s:\n%s", p.name, errExited, p.err, p.log, p.tail(20))
	default:
		return nil
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// stopAll stops every process, in parallel.
func stopAll(ps []*proc) {
	done := make(chan struct{})
	for _, p := range ps {
		go func() { p.stop(); done <- struct{}{} }()
	}
	for range ps {
		<-done
	}
}

// waitReady calls ready every pollEvery until it returns nil for every process's
// check, a process exits, ctx ends or timeout passes.
func waitReady(ctx context.Context, ps []*proc, timeout time.Duration, ready func(i int) error) error {
	deadline := time.Now().Add(timeout)
	for i, p := range ps {
		for {
			if err := p.exited(); err != nil {
				return err
			}
			err := ready(i)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %v: %v; last lines of %s:\n%s", p.name, timeout, err, p.log, p.tail(20))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pollEvery):
			}
		}
	}
	return nil
}

// output runs bin with args to completion and returns its standard output; on
// failure the error carries its standard error.
func output(ctx context.Context, bin string, args ...string) ([]byte, error) {
	return outputEnv(ctx, nil, bin, args...)
}

// outputEnv is output with the environment env (nil: this process's).
func outputEnv(ctx context.Context, env []string, bin string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
