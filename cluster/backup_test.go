package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestPruneBackups: the oldest files of the jurisdiction beyond keep go,
// whichever node wrote them; other jurisdictions' files, other files and keep
// 0 are left alone.
func TestPruneBackups(t *testing.T) {
	dir := t.TempDir()
	names := []string{
		"ar-20260101T000000Z-000000000010-ba-1.bpbackup",
		"ar-20260101T010000Z-000000000020-cba-1.bpbackup",
		"ar-20260101T020000Z-000000000030-ba-1.bpbackup",
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

// TestRemoveStaleTaking: what a crashed backup of this node left (its .taking
// file, the temporary file of its atomic write) goes when the scheduler
// starts; another node's (it may be writing) and backups stay, and so does an
// earlier release's .taking file unless it is old.
func TestRemoveStaleTaking(t *testing.T) {
	dir := t.TempDir()
	names := []string{
		".taking-ba-1.bpbackup", ".taking-ba-1.bpbackup.tmp-123", // ours: go
		".taking-cba-1.bpbackup", ".taking-cba-1.bpbackup.tmp-9", // another node's: stay
		".taking.bpbackup.tmp-7",                         // an earlier release's, old: goes
		".taking.bpbackup",                               // an earlier release's, new: stays
		"ar-20260101T000000Z-000000000010-ba-1.bpbackup", // a backup: stays
	}
	for _, n := range names {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	old := time.Now().Add(-2 * staleTakingAge)
	os.Chtimes(filepath.Join(dir, ".taking.bpbackup.tmp-7"), old, old)
	if err := removeStaleTaking(dir, "ba-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	var left []string
	es, _ := os.ReadDir(dir)
	for _, e := range es {
		left = append(left, e.Name())
	}
	want := []string{names[2], names[3], names[5], names[6]}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
	if err := removeStaleTaking(filepath.Join(dir, "absent"), "ba-1", time.Now()); err != nil {
		t.Fatalf("an absent dir: %v", err)
	}
}
