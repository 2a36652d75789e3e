package check

import (
	"bytes"
	"encoding/base64"
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
	// Extra are more files or dirs of the node scanned with Dir (its log file,
	// kept outside the data dir).
	Extra []string
}

// Needle is one thing a residency scan looks for.
type Needle struct {
	// Value is looked for as its bytes; when it is a UUID in text form, also as
	// the UUID's 16 raw bytes (the form a binary encoding would store).
	Value string
	// What says what the value is ("psychology booking", "note marker"), for
	// findings; a finding names the value too unless Secret.
	What string
	// Base64 also looks for the value inside base64 text (standard and URL
	// alphabets, at any alignment): a JSON encoding of bytes would hide it so.
	Base64 bool
	// Sealed marks a value that no node may hold in any of its forms, at home
	// included (sealed note text): no control (it is found nowhere when all is
	// well), and a hit on a home node is a violation too.
	Sealed bool
	// Secret keeps the value out of findings (key bytes, note text): they say
	// What only.
	Secret bool
	// NoControl exempts the needle from the control (a prefix every record of a
	// kind starts with, of which there may be none yet).
	NoControl bool
}

// Label is how findings name the needle.
func (n Needle) Label() string {
	switch {
	case n.Secret && n.What != "":
		return n.What
	case n.Secret:
		return "a secret value"
	case n.What != "":
		return n.What + " " + n.Value
	}
	return n.Value
}

// PlainNeedles makes needles of values, each described as what.
func PlainNeedles(what string, values ...string) []Needle {
	out := make([]Needle, len(values))
	for i, v := range values {
		out[i] = Needle{Value: v, What: what}
	}
	return out
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
// Files are read as they are: nothing is decompressed or decrypted, which is why
// the control matters. Symlinks are not followed; a file that cannot be read is a
// violation (the scan would be incomplete).
func ResidencyIn(home string, nodeDirs map[string]NodeDir, needles []string) Result {
	return ResidencyScan(home, nodeDirs, PlainNeedles("", needles...), true)
}

// ResidencyScan is the residency check over needles of any kind: a needle on a
// node whose jurisdiction is not home is a violation, and so is a Sealed needle
// on any node. With control, every needle that is not Sealed (or NoControl) must be found on
// some home node, else a "residency-control" violation; without, the home nodes
// are scanned for Sealed needles only (an officer given foreign dirs alone has
// nothing to prove the scan with). No needles at all is a control violation.
func ResidencyScan(home string, nodeDirs map[string]NodeDir, needles []Needle, control bool) Result {
	var res Result
	res.count("residency.needles", len(needles))
	if len(needles) == 0 {
		res.violate(CheckResidencyControl, nil, nil, "no needles to look for: the residency scan proves nothing")
		return res
	}
	patterns, maxLen := needlePatterns(needles)

	foundHome := make([]bool, len(needles))
	homeNodes := 0
	for _, node := range slices.Sorted(maps.Keys(nodeDirs)) {
		nd := nodeDirs[node]
		isHome := nd.Jurisdiction == home
		if isHome {
			homeNodes++
		}
		res.count("residency.nodes", 1)
		hits := map[int][]string{} // needle → files where it must not be
		roots := append([]string{nd.Dir}, nd.Extra...)
		for _, root := range roots {
			// Which needles a file of this node still has to be searched for.
			want := func() []bool {
				w := make([]bool, len(needles))
				for i, n := range needles {
					w[i] = !isHome || n.Sealed || (control && !n.NoControl && !foundHome[i])
				}
				return w
			}
			scanTree(root, patterns, maxLen, want,
				func(path string, n int64, found []bool, err error) {
					res.count("residency.files", 1)
					res.count("residency.bytes", int(n))
					if err != nil {
						res.violate(CheckResidency, nil, []string{node, path}, "node %s: cannot read %s: %v", node, path, err)
					}
					rel := path
					if r, e := filepath.Rel(nd.Dir, path); e == nil && !strings.HasPrefix(r, "..") {
						rel = r
					}
					for i, ok := range found {
						switch {
						case !ok:
						case isHome && !needles[i].Sealed:
							foundHome[i] = true
						default:
							hits[i] = append(hits[i], rel)
						}
					}
				})
		}
		for _, i := range slices.Sorted(maps.Keys(hits)) {
			files := hits[i]
			more := ""
			if len(files) > 3 {
				more = fmt.Sprintf(" and %d more", len(files)-3)
				files = files[:3]
			}
			ref := needles[i].Value
			if needles[i].Secret {
				ref = needles[i].Label()
			}
			if needles[i].Sealed {
				res.violate(CheckResidency, nil, []string{ref, node},
					"node %s (jurisdiction %s) holds %s, which no node may hold unsealed: in %s%s under %s",
					node, nd.Jurisdiction, needles[i].Label(), strings.Join(files, ", "), more, nd.Dir)
				continue
			}
			res.violate(CheckResidency, nil, []string{ref, node},
				"node %s (jurisdiction %s) holds %s, which must stay in %s: in %s%s under %s",
				node, nd.Jurisdiction, needles[i].Label(), home, strings.Join(files, ", "), more, nd.Dir)
		}
	}
	if !control {
		return res
	}
	var missing []string
	for i, ok := range foundHome {
		if !ok && !needles[i].Sealed && !needles[i].NoControl {
			missing = append(missing, needles[i].Label())
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

// Finding is a needle found in a file.
type Finding struct {
	File   string
	Needle Needle
}

func (f Finding) String() string { return f.File + " holds " + f.Needle.Label() }

// Scan looks for needles (in every form: see Needle) in every regular file
// under paths (a dir is walked, a file read; symlinks not followed). It returns
// one finding per file and needle, the number of files and bytes read, and an
// error per path or file that could not be read (the scan is incomplete then).
func Scan(paths []string, needles []Needle) (findings []Finding, files int, read int64, errs []error) {
	patterns, maxLen := needlePatterns(needles)
	all := func() []bool {
		w := make([]bool, len(needles))
		for i := range w {
			w[i] = true
		}
		return w
	}
	for _, root := range paths {
		scanTree(root, patterns, maxLen, all, func(path string, n int64, found []bool, err error) {
			files++
			read += n
			if err != nil {
				errs = append(errs, fmt.Errorf("cannot read %s: %w", path, err))
			}
			for i, ok := range found {
				if ok {
					findings = append(findings, Finding{File: path, Needle: needles[i]})
				}
			}
		})
	}
	return findings, files, read, errs
}

// scanTree walks root (a dir or a file) and calls visit for every regular file
// with what scanning it for the needles want() asks for found. An unreadable
// path is visited with its error. A file needing no needle is not read.
func scanTree(root string, patterns [][][]byte, maxLen int, want func() []bool, visit func(path string, n int64, found []bool, err error)) {
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path != root {
			return nil // removed while walking: a node's temporary file (a shred's compaction copy)
		}
		if err != nil {
			visit(path, 0, make([]bool, len(patterns)), err)
			if d != nil && d.IsDir() && path != root {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		w := want()
		if !slices.Contains(w, true) {
			return nil
		}
		found, n, err := scanFile(path, patterns, w, maxLen)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		visit(path, n, found, err)
		return nil
	})
	if err != nil {
		visit(root, 0, make([]bool, len(patterns)), err)
	}
}

// needlePatterns lists every byte form of each needle, and the longest.
func needlePatterns(needles []Needle) ([][][]byte, int) {
	patterns := make([][][]byte, len(needles))
	maxLen := 1
	for i, n := range needles {
		patterns[i] = [][]byte{[]byte(n.Value)}
		if raw, ok := uuidBytes(n.Value); ok {
			patterns[i] = append(patterns[i], raw)
		}
		if n.Base64 {
			patterns[i] = append(patterns[i], base64Forms([]byte(n.Value))...)
		}
		for _, p := range patterns[i] {
			maxLen = max(maxLen, len(p))
		}
	}
	return patterns, maxLen
}

// base64Forms are the base64 texts that any base64 encoding of bytes holding v
// must contain, whatever v's offset in them: for each of the three alignments,
// the characters that depend on v's bytes only, in the standard and the URL
// alphabet. Values shorter than 4 bytes have no such form at every alignment
// and get none.
func base64Forms(v []byte) [][]byte {
	if len(v) < 4 {
		return nil
	}
	var out [][]byte
	for k := range 3 {
		buf := append(make([]byte, k), v...)
		enc := base64.StdEncoding.EncodeToString(buf)
		// Characters before skip mix the k filler bytes in; those from full on
		// mix in the padding.
		skip := [3]int{0, 2, 3}[k]
		full := len(buf) / 3 * 4
		if full <= skip {
			continue
		}
		std := enc[skip:full]
		url := strings.NewReplacer("+", "-", "/", "_").Replace(std)
		out = append(out, []byte(std))
		if url != std {
			out = append(out, []byte(url))
		}
	}
	return out
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
