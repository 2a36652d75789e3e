package failpoint

import (
	"os"
	"path/filepath"

	"github.com/barberpro/edge/storage"
)

func removeAll(dir string) error { return os.RemoveAll(dir) }

// snapshotCount is how many Raft snapshots a data dir holds.
func snapshotCount(dataDir string) int {
	entries, err := os.ReadDir(filepath.Join(dataDir, storage.SnapshotsDir))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() {
			n++
		}
	}
	return n
}
