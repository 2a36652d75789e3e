package failpoint

import "os"

func removeAll(dir string) error { return os.RemoveAll(dir) }

// snapshotCount is how many complete Raft snapshots a data dir holds.
func snapshotCount(dataDir string) int { return len(snapshots(dataDir)) }
