package storage

import (
	"errors"
	"testing"
	"time"
)

func TestParseFailpoints(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want map[string]failpointAction // nil: an error is expected
	}{
		{"", map[string]failpointAction{}},
		{" , ", map[string]failpointAction{}},
		{"snapshot-restore=crash", map[string]failpointAction{fpSnapshotRestore: {kind: fpCrash}}},
		{" snapshot-restore = crash ,", map[string]failpointAction{fpSnapshotRestore: {kind: fpCrash}}},
		{"snapshot-restore=sleep(150ms)", map[string]failpointAction{fpSnapshotRestore: {kind: fpSleep, sleep: 150 * time.Millisecond}}},
		{"snapshot-restore=sleep(0s)", map[string]failpointAction{fpSnapshotRestore: {kind: fpSleep}}},
		{"raft-log-nosync=on", map[string]failpointAction{fpRaftLogNoSync: {kind: fpOn}}},
		{"snapshot-restore=crash,raft-log-nosync=on", map[string]failpointAction{fpSnapshotRestore: {kind: fpCrash}, fpRaftLogNoSync: {kind: fpOn}}},
		{"raft-log-nosync=off", nil},
		{"snapshot-restore", nil},
		{"snapshot-restore=", nil},
		{"=crash", nil},
		{"snapshot-restor=crash", nil},
		{"snapshot-restore=panic", nil},
		{"snapshot-restore=sleep(abc)", nil},
		{"snapshot-restore=sleep(-1s)", nil},
		{"snapshot-restore=sleep(1s", nil},
		{"snapshot-restore=crash,snapshot-restore=sleep(1ms)", nil},
	} {
		got, err := parseFailpoints(tc.spec)
		if tc.want == nil {
			if err == nil || !errors.Is(err, errFailpointSpec) {
				t.Errorf("parseFailpoints(%q) = %v, %v; want an errFailpointSpec error", tc.spec, got, err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("parseFailpoints(%q) = %v, %v; want %v", tc.spec, got, err, tc.want)
			continue
		}
		for name, a := range tc.want {
			if got[name] != a {
				t.Errorf("parseFailpoints(%q)[%s] = %v; want %v", tc.spec, name, got[name], a)
			}
		}
	}
}
