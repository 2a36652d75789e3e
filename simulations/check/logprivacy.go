package check

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// LogPrivacy scans every node's log files (node → files) for needles: client ids
// and other personal data that no log line may carry, on any node of any
// jurisdiction (security.md: logs carry request ids, route patterns, status codes
// and node ids, never client ids). Any needle in any log is a CheckLogPrivacy
// violation naming the node, the file and the needle.
//
// Its control: every file is scanned with the line `planted` appended to what
// is on disk, and the scan must find planted in every file, else a
// CheckLogPrivacyControl violation says that file was not (wholly) read and the
// scan cannot be trusted. planted must look like a needle (e.g. a client id the
// history never used) and must not be empty. No log files at all is a control
// violation too.
func LogPrivacy(logs map[string][]string, needles []string, planted string) Result {
	var res Result
	res.count("log-privacy.needles", len(needles))
	if planted == "" {
		res.violate(CheckLogPrivacyControl, nil, nil, "no planted needle: the log scan proves nothing")
		return res
	}
	patterns := make([][][]byte, 0, len(needles)+1)
	maxLen := len(planted)
	for _, n := range needles {
		patterns = append(patterns, [][]byte{[]byte(n)})
		maxLen = max(maxLen, len(n))
	}
	patterns = append(patterns, [][]byte{[]byte(planted)})
	want := make([]bool, len(patterns))
	for i := range want {
		want[i] = true
	}
	files := 0
	for _, node := range slices.Sorted(maps.Keys(logs)) {
		for _, path := range logs[node] {
			files++
			f, err := os.Open(path)
			if err != nil {
				res.violate(CheckLogPrivacyControl, nil, []string{node, path}, "node %s: cannot read log %s: %v", node, path, err)
				continue
			}
			found, n, err := scanReader(io.MultiReader(f, strings.NewReader("\n"+planted+"\n")), patterns, want, maxLen)
			f.Close()
			res.count("log-privacy.files", 1)
			res.count("log-privacy.bytes", int(n))
			if err != nil {
				res.violate(CheckLogPrivacyControl, nil, []string{node, path}, "node %s: reading log %s: %v", node, path, err)
				continue
			}
			if !found[len(found)-1] {
				res.violate(CheckLogPrivacyControl, nil, []string{node, path},
					"node %s: the planted needle appended to %s was not found: the log scan cannot be trusted", node, path)
			}
			var hit []string
			for i, ok := range found[:len(found)-1] {
				if ok {
					hit = append(hit, needles[i])
				}
			}
			if len(hit) > 0 {
				shown := hit
				if len(shown) > 5 {
					shown = shown[:5]
				}
				res.violate(CheckLogPrivacy, nil, append([]string{node}, shown...),
					"node %s: log %s holds %d personal id(s) no log may carry (e.g. %s)", node, path, len(hit), strings.Join(shown, ", "))
			}
		}
	}
	if files == 0 {
		res.violate(CheckLogPrivacyControl, nil, nil, "no log files to scan: the log scan proves nothing")
	}
	return res
}

// PlantedNeedle is the control needle of a simulation run with seed: shaped
// like the run's client ids, used by none of them.
func PlantedNeedle(seed int64) string { return fmt.Sprintf("sim-planted-%d-c0", seed) }
