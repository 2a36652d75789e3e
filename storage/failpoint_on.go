//go:build failpoints

package storage

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// activeFailpoints is parsed once, at start, from BARBERPRO_FAILPOINTS. A
// malformed value stops the binary at start.
var activeFailpoints = func() map[string]failpointAction {
	fps, err := parseFailpoints(os.Getenv(FailpointsEnv))
	if err != nil {
		panic(err)
	}
	return fps
}()

// failpoint runs the action configured for name, if any (see failpoint.go).
// crash writes one line to stderr, then sends SIGKILL to the process and never
// returns.
func failpoint(name string) {
	a, ok := activeFailpoints[name]
	if !ok {
		return
	}
	if a.kind == fpOn {
		return // a mode, read with failpointOn
	}
	fmt.Fprintf(os.Stderr, "failpoint %s: %s (pid %d)\n", name, a, os.Getpid())
	switch a.kind {
	case fpSleep:
		time.Sleep(a.sleep)
	case fpCrash:
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Kill() // SIGKILL on Unix
		}
		select {} // the signal is delivered asynchronously
	}
}

// failpointOn reports whether the mode failpoint name is on (name=on), and
// says so once on stderr when it is.
func failpointOn(name string) bool {
	a, ok := activeFailpoints[name]
	if ok && a.kind == fpOn {
		announced.Do(func() { fmt.Fprintf(os.Stderr, "failpoint %s: on (pid %d)\n", name, os.Getpid()) })
	}
	return ok && a.kind == fpOn
}

var announced sync.Once
