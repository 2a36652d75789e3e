package failpoint

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{"64k": 64 << 10, "256m": 256 << 20, "1G": 1 << 30, "4096": 4096, " 2M ": 2 << 20} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "1.5m", "-1k", "lots"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) accepted", in)
		}
	}
}

// TestSnapshots reads a data dir laid out as raft's FileSnapshotStore under
// storage.SnapshotsDir leaves it: complete snapshots only, by index.
func TestSnapshots(t *testing.T) {
	dir := t.TempDir()
	write := func(name, meta string) {
		d := filepath.Join(snapshotDir(dir), name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if meta != "" {
			if err := os.WriteFile(filepath.Join(d, "meta.json"), []byte(meta), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if snapshotCount(dir) != 0 || latestSnapshotIndex(dir) != 0 {
		t.Fatal("an empty data dir has snapshots")
	}
	write("3-2408-1795801870453", `{"Version":1,"ID":"3-2408-1795801870453","Index":2408,"Term":3,"Size":10}`)
	write("2-1281-1795801839482", `{"Version":1,"ID":"2-1281-1795801839482","Index":1281,"Term":2,"Size":10}`)
	write("3-3000-1795801899999.tmp", `{"Version":1,"ID":"3-3000-1795801899999","Index":3000,"Term":3}`) // being written
	write("3-3100-1795801999999", "")                                                                    // no meta yet
	got := snapshots(dir)
	if len(got) != 2 || got[0].Index != 1281 || got[1].Index != 2408 || got[1].ID != "3-2408-1795801870453" {
		t.Fatalf("snapshots %+v", got)
	}
	if snapshotCount(dir) != 2 || latestSnapshotIndex(dir) != 2408 {
		t.Fatalf("count %d, latest %d", snapshotCount(dir), latestSnapshotIndex(dir))
	}
}

func TestLogHas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.log")
	os.WriteFile(path, []byte("write fsm.db: No space left on device\nlater line\n"), 0o644)
	if !logHas(path, 0, "no space left on device") {
		t.Fatal("not found from the start")
	}
	if logHas(path, 20, "no space left on device") {
		t.Fatal("found before the offset")
	}
	if logHas(filepath.Join(t.TempDir(), "missing.log"), 0, "x") {
		t.Fatal("found in a missing file")
	}
}
