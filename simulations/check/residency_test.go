package check

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResidency(t *testing.T) {
	const (
		psyBooking = "0b8f9a52-3c1e-4d7a-9f3e-2a6b1c4d5e6f"
		psyClient  = "client-psy-77"
	)
	rawUUID, _ := uuidBytes(psyBooking)
	needles := []string{psyBooking, psyClient}
	// A file of 3 MiB with the needle across the 1 MiB chunk boundary.
	big := bytes.Repeat([]byte{'x'}, 3<<20)
	copy(big[(1<<20)-5:], psyClient)

	type files map[string][]byte
	tests := []struct {
		name  string
		ar    files  // buenos-aires (ar)
		ar2   files  // cordoba (ar)
		us    files  // us-east (us)
		check string // "" when clean
		refs  []string
	}{
		{
			name: "clean",
			ar:   files{"raft/bookings.db": []byte("..." + psyBooking + "...")},
			ar2:  files{"logs/node.log": []byte("client=" + psyClient)},
			us:   files{"raft/bookings.db": []byte("barber bookings only"), "logs/node.log": []byte("forwarded to ar")},
		},
		{
			name:  "psychology booking id on the US node",
			ar:    files{"raft/bookings.db": []byte(psyBooking + psyClient)},
			us:    files{"raft/snapshots/1-2/state.bin": []byte("..." + psyBooking + "...")},
			check: CheckResidency, refs: []string{psyBooking, "us-east"},
		},
		{
			name:  "client id in a US log",
			ar:    files{"raft/bookings.db": []byte(psyBooking + psyClient)},
			us:    files{"logs/node.log": []byte("booking for " + psyClient)},
			check: CheckResidency, refs: []string{psyClient, "us-east"},
		},
		{
			name:  "binary UUID on the US node",
			ar:    files{"raft/bookings.db": []byte(psyBooking + psyClient)},
			us:    files{"cache.bin": append([]byte{0, 1}, rawUUID...)},
			check: CheckResidency, refs: []string{psyBooking},
		},
		{
			name:  "needle across a chunk boundary",
			ar:    files{"raft/bookings.db": []byte(psyBooking + psyClient)},
			us:    files{"big.db": big},
			check: CheckResidency, refs: []string{psyClient},
		},
		{
			name:  "control: the scan finds a needle nowhere in Argentina",
			ar:    files{"raft/bookings.db": []byte(psyBooking)},
			us:    files{"raft/bookings.db": []byte("nothing")},
			check: CheckResidencyControl, refs: []string{psyClient},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dirs := map[string]NodeDir{}
			for node, fs := range map[string]struct {
				files
				j string
			}{"buenos-aires": {tt.ar, "ar"}, "cordoba": {tt.ar2, "ar"}, "us-east": {tt.us, "us"}} {
				dir := filepath.Join(root, node)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for name, data := range fs.files {
					writeFile(t, filepath.Join(dir, name), data)
				}
				dirs[node] = NodeDir{Dir: dir, Jurisdiction: fs.j}
			}
			res := Residency(dirs, needles)
			if res.Checked["residency.files"] == 0 {
				t.Fatal("scanned no file")
			}
			if tt.check == "" {
				if !res.OK() {
					t.Fatalf("want OK, got %v", res.Violations)
				}
				return
			}
			wantViolation(t, res, tt.check, nil, tt.refs...)
			for _, v := range res.Violations {
				if v.Check != tt.check {
					t.Errorf("unexpected violation %s", v)
				}
			}
		})
	}
}

func TestResidencyNoNeedles(t *testing.T) {
	res := Residency(map[string]NodeDir{"ba": {Dir: t.TempDir(), Jurisdiction: "ar"}}, nil)
	wantViolation(t, res, CheckResidencyControl, nil)
}

func TestBase64FormsFindTheValueAtAnyOffset(t *testing.T) {
	marker := []byte("PSYNOTE-7f3a9c-marker")
	forms := base64Forms(marker)
	for pre := range 7 {
		for post := range 4 {
			blob := append(append(bytes.Repeat([]byte{0xA5}, pre), marker...), bytes.Repeat([]byte{0x5A}, post)...)
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
				text := []byte(enc.EncodeToString(blob))
				found := false
				for _, f := range forms {
					found = found || bytes.Contains(text, f)
				}
				if !found {
					t.Errorf("marker at offset %d (+%d after) not found in %s", pre, post, text)
				}
			}
		}
	}
	// And not in the base64 of something else.
	other := []byte(base64.StdEncoding.EncodeToString([]byte("PSYNOTE-7f3a9c-markex and more")))
	for _, f := range forms {
		if bytes.Contains(other, f) && len(f) > 20 {
			t.Errorf("form %s found in the base64 of another text", f)
		}
	}
}

func TestResidencyScanSealedAndExtra(t *testing.T) {
	const marker = "PSYNOTE-run42-secret"
	root := t.TempDir()
	ar, us, usLog := filepath.Join(root, "ba-1"), filepath.Join(root, "us-1"), filepath.Join(root, "us-1.log")
	writeFile(t, filepath.Join(ar, "fsm.db"), []byte("bkg_buenos-aires_x cns_buenos-aires_y"))
	writeFile(t, filepath.Join(us, "fsm.db"), []byte("barbers"))
	writeFile(t, usLog, []byte(`{"msg":"relayed","object":"cns_buenos-aires_y"}`))
	needles := []Needle{
		{Value: "bkg_buenos-aires_x", What: "psychology booking"},
		{Value: "cns_buenos-aires_y", What: "consent"},
		{Value: marker, What: "note marker", Base64: true, Sealed: true, Secret: true},
	}
	nodes := map[string]NodeDir{"ba-1": {Dir: ar, Jurisdiction: "ar"}, "us-1": {Dir: us, Jurisdiction: "us", Extra: []string{usLog}}}

	res := ResidencyScan("ar", nodes, needles, true)
	wantViolation(t, res, CheckResidency, nil, "cns_buenos-aires_y", "us-1")
	if len(res.Violations) != 1 {
		t.Fatalf("want one violation (the consent in the US log), got %v", res.Violations)
	}

	// The sealed marker, base64'd in a home node's Raft log: a violation at home
	// too, naming what and not the text.
	writeFile(t, filepath.Join(ar, "raft.db"), []byte(`{"text":"`+base64.StdEncoding.EncodeToString([]byte("x: "+marker+" y"))+`"}`))
	res = ResidencyScan("ar", nodes, needles, true)
	wantViolation(t, res, CheckResidency, nil, "note marker", "ba-1")
	for _, v := range res.Violations {
		if strings.Contains(v.Detail, marker) {
			t.Errorf("a violation shows the secret: %s", v)
		}
	}

	// Without control, a needle nowhere at home is no violation.
	res = ResidencyScan("ar", map[string]NodeDir{"us-1": {Dir: us, Jurisdiction: "us"}}, PlainNeedles("consent", "cns_cordoba_z"), false)
	if !res.OK() || res.Checked["residency.files"] != 1 {
		t.Fatalf("foreign dir alone, clean, no control: %v %v", res.Violations, res.Checked)
	}

	// Scan: plain findings per file.
	fs, files, _, errs := Scan([]string{ar, usLog, filepath.Join(root, "missing")}, needles)
	if files < 3 || len(errs) != 1 || len(fs) != 4 {
		t.Fatalf("Scan: %v files=%d errs=%v", fs, files, errs)
	}
}
