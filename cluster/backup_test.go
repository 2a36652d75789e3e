package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestPruneBackups: the oldest files of the jurisdiction beyond keep go; other
// jurisdictions' files, other files and keep 0 are left alone.
func TestPruneBackups(t *testing.T) {
	dir := t.TempDir()
	names := []string{
		"ar-20260101T000000Z-000000000010.bpbackup",
		"ar-20260101T010000Z-000000000020.bpbackup",
		"ar-20260101T020000Z-000000000030.bpbackup",
		"us-20260101T000000Z-000000000005.bpbackup",
		"notes.txt",
	}
	for _, n := range names {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	if err := pruneBackups(dir, "ar", 0); err != nil {
		t.Fatal(err)
	}
	if err := pruneBackups(dir, "ar", 2); err != nil {
		t.Fatal(err)
	}
	var left []string
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		left = append(left, e.Name())
	}
	want := []string{names[1], names[2], "notes.txt", names[3]}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
}
