package storage

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Failpoints are named places in the code where a binary built with the build
// tag `failpoints` can be told, through the environment variable
// BARBERPRO_FAILPOINTS, to crash or stall, so a simulation can reproduce a
// fault at an exact point (as etcd's gofail does). Without the tag the hook
// (failpoint_off.go) is an empty function the compiler removes, and nothing
// reads the variable.
//
// Syntax: a comma-separated list of name=action, e.g.
//
//	BARBERPRO_FAILPOINTS=snapshot-restore=crash
//	BARBERPRO_FAILPOINTS=snapshot-restore=sleep(200ms)
//	BARBERPRO_FAILPOINTS=raft-log-nosync=on
//
// Actions: crash (the process kills itself with SIGKILL, no deferred code, no
// flush: a power cut as far as the data dir can tell), sleep(d) (d is a
// time.ParseDuration string) and on (for a failpoint that is a mode, not a
// point: failpointOn reports it). Unknown names and malformed actions are errors:
// a tagged binary refuses to start with them rather than silently never fire.

// FailpointsEnv is the environment variable a binary built with the
// `failpoints` tag reads its failpoints from.
const FailpointsEnv = "BARBERPRO_FAILPOINTS"

// Failpoint names.
const (
	// fpSnapshotRestore fires in the FSM's Restore when raft installs a
	// snapshot (InstallSnapshot from the leader, or a user restore): raft has
	// already persisted the snapshot in snapshots/, the FSM has written and
	// fsynced its copy beside fsm.db, and the rename that would make it live
	// has not happened. It does not fire in Open's own catch-up restore.
	fpSnapshotRestore = "snapshot-restore"
	// fpRaftLogNoSync, on, makes the segment log skip its fdatasyncs and
	// opens raft.db with bbolt's NoSync: the Raft log and stable store
	// commit without fsync. A deliberate bug, the control
	// of the power-loss simulation (an acknowledged write lost on a cut).
	fpRaftLogNoSync = "raft-log-nosync"
)

var knownFailpoints = []string{fpSnapshotRestore, fpRaftLogNoSync}

type failpointKind int

const (
	fpCrash failpointKind = iota + 1
	fpSleep
	fpOn
)

// failpointAction is what a failpoint does when it fires.
type failpointAction struct {
	kind  failpointKind
	sleep time.Duration // for fpSleep
}

func (a failpointAction) String() string {
	switch a.kind {
	case fpCrash:
		return "crash"
	case fpSleep:
		return fmt.Sprintf("sleep(%s)", a.sleep)
	case fpOn:
		return "on"
	}
	return "?"
}

var errFailpointSpec = errors.New("storage: bad " + FailpointsEnv)

// parseFailpoints parses a BARBERPRO_FAILPOINTS value. Blank entries (and a
// blank value) are ignored; a name given twice is an error.
func parseFailpoints(spec string) (map[string]failpointAction, error) {
	out := map[string]failpointAction{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, act, ok := strings.Cut(item, "=")
		name, act = strings.TrimSpace(name), strings.TrimSpace(act)
		if !ok || name == "" || act == "" {
			return nil, fmt.Errorf("%w: %q is not name=action", errFailpointSpec, item)
		}
		known := false
		for _, k := range knownFailpoints {
			known = known || k == name
		}
		if !known {
			return nil, fmt.Errorf("%w: unknown failpoint %q (known: %s)", errFailpointSpec, name, strings.Join(knownFailpoints, ", "))
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%w: failpoint %q given twice", errFailpointSpec, name)
		}
		a, err := parseFailpointAction(act)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", errFailpointSpec, name, err)
		}
		out[name] = a
	}
	return out, nil
}

func parseFailpointAction(s string) (failpointAction, error) {
	switch s {
	case "crash":
		return failpointAction{kind: fpCrash}, nil
	case "on":
		return failpointAction{kind: fpOn}, nil
	}
	if arg, ok := strings.CutPrefix(s, "sleep("); ok {
		if arg, ok = strings.CutSuffix(arg, ")"); ok {
			d, err := time.ParseDuration(arg)
			if err != nil || d < 0 {
				return failpointAction{}, fmt.Errorf("bad duration in %q", s)
			}
			return failpointAction{kind: fpSleep, sleep: d}, nil
		}
	}
	return failpointAction{}, fmt.Errorf("unknown action %q (want crash, sleep(duration) or on)", s)
}
