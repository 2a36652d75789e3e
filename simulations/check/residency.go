package check

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// HomeJurisdiction is where psychology data of Argentine providers must stay.
const HomeJurisdiction = "ar"

// NodeDir is one node's data directory and the jurisdiction of the node.
type NodeDir struct {
	Dir          string
	Jurisdiction string
}

// Residency scans every regular file under each node's data dir (node → NodeDir)
// for needles: ids that must stay in Argentina (psychology bookings and providers,
// clients of psychology bookings). Any needle in any file of a node whose
// jurisdiction is not "ar" is a violation (one per node and needle, naming up to
// three files). The same scan is its own control: every needle must be found at
// least once on the "ar" nodes, else a "residency-control" violation says the scan
// cannot be trusted (needles that are never written in plain form, or the wrong
// dirs). No needles at all is a control violation too. See ResidencyIn.
func Residency(nodeDirs map[string]NodeDir, needles []string) Result {
	return ResidencyIn(HomeJurisdiction, nodeDirs, needles)
}

// ResidencyIn is Residency for data homed in jurisdiction home.
//
// A needle is looked for as its bytes and, when it is a UUID in text form, also as
// the UUID's 16 raw bytes (the form a binary encoding would store). Files are read
// as they are: nothing is decompressed or decrypted, which is why the control
// matters. Symlinks are not followed; a file that cannot be read is a violation
// (the scan would be incomplete).
func ResidencyIn(home string, nodeDirs map[string]NodeDir, needles []string) Result {
	var res Result
	res.count("residency.needles", len(needles))
	if len(needles) == 0 {
		res.violate(CheckResidencyControl, nil, nil, "no needles to look for: the residency scan proves nothing")
		return res
	}
	patterns := make([][][]byte, len(needles))
	maxLen := 0
	for i, n := range needles {
		patterns[i] = [][]byte{[]byte(n)}
		if raw, ok := uuidBytes(n); ok {
			patterns[i] = append(patterns[i], raw)
		}
		for _, p := range patterns[i] {
			maxLen = max(maxLen, len(p))
		}
	}

	foundHome := make([]bool, len(needles))
	homeNodes := 0
	for _, node := range slices.Sorted(maps.Keys(nodeDirs)) {
		nd := nodeDirs[node]
		isHome := nd.Jurisdiction == home
		if isHome {
			homeNodes++
		}
		res.count("residency.nodes", 1)
		hits := map[int][]string{} // needle → files (foreign nodes)
		err := filepath.WalkDir(nd.Dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				res.violate(CheckResidency, nil, []string{node, path},
					"node %s: cannot scan %s: %v", node, path, err)
				if d != nil && d.IsDir() && path != nd.Dir {
					return fs.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			// Which needles this file still has to be searched for.
			want := make([]bool, len(needles))
			some := false
			for i := range needles {
				want[i] = !isHome || !foundHome[i]
				some = some || want[i]
			}
			if !some {
				return nil
			}
			found, n, err := scanFile(path, patterns, want, maxLen)
			res.count("residency.files", 1)
			res.count("residency.bytes", int(n))
			if err != nil {
				res.violate(CheckResidency, nil, []string{node, path}, "node %s: cannot read %s: %v", node, path, err)
			}
			rel, _ := filepath.Rel(nd.Dir, path)
			for i, ok := range found {
				if !ok {
					continue
				}
				if isHome {
					foundHome[i] = true
				} else {
					hits[i] = append(hits[i], rel)
				}
			}
			return nil
		})
		if err != nil {
			res.violate(CheckResidency, nil, []string{node}, "node %s: scan of %s failed: %v", node, nd.Dir, err)
		}
		for _, i := range slices.Sorted(maps.Keys(hits)) {
			files := hits[i]
			more := ""
			if len(files) > 3 {
				more = fmt.Sprintf(" and %d more", len(files)-3)
				files = files[:3]
			}
			res.violate(CheckResidency, nil, []string{needles[i], node},
				"node %s (jurisdiction %s) holds %s, which must stay in %s: in %s%s under %s",
				node, nd.Jurisdiction, needles[i], home, strings.Join(files, ", "), more, nd.Dir)
		}
	}
	var missing []string
	for i, ok := range foundHome {
		if !ok {
			missing = append(missing, needles[i])
		}
	}
	if len(missing) > 0 {
		shown := missing
		if len(shown) > 10 {
			shown = shown[:10]
		}
		res.violate(CheckResidencyControl, nil, missing,
			"the scan found %d of %d needles nowhere on the %d %q node(s) (e.g. %s): it cannot be trusted to find them abroad",
			len(missing), len(needles), homeNodes, home, strings.Join(shown, ", "))
	}
	return res
}

// scanFile reports which of the wanted needles (any of their patterns) occur in
// the file, reading it in chunks that overlap by maxLen-1 bytes.
func scanFile(path string, patterns [][][]byte, want []bool, maxLen int) ([]bool, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return make([]bool, len(patterns)), 0, err
	}
	defer f.Close()
	return scanReader(f, patterns, want, maxLen)
}

// scanReader is scanFile over any reader.
func scanReader(f io.Reader, patterns [][][]byte, want []bool, maxLen int) ([]bool, int64, error) {
	found := make([]bool, len(patterns))
	const chunk = 1 << 20
	buf := make([]byte, 0, chunk+maxLen)
	var total int64
	left := 0
	for _, w := range want {
		if w {
			left++
		}
	}
	for left > 0 {
		n, err := io.ReadFull(f, buf[len(buf):len(buf)+chunk])
		buf = buf[:len(buf)+n]
		total += int64(n)
		for i, ps := range patterns {
			if !want[i] || found[i] {
				continue
			}
			for _, p := range ps {
				if bytes.Contains(buf, p) {
					found[i] = true
					left--
					break
				}
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return found, total, err
		}
		// Keep the tail, so a needle across the chunk boundary is found.
		keep := min(len(buf), maxLen-1)
		copy(buf[:keep], buf[len(buf)-keep:])
		buf = buf[:keep]
	}
	return found, total, nil
}

// uuidBytes parses a UUID in its 36-character text form.
func uuidBytes(s string) ([]byte, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, false
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(raw) != 16 {
		return nil, false
	}
	return raw, true
}
