package check

import (
	"bytes"
	"os"
	"path/filepath"
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
