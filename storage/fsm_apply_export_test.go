package storage

import "time"

// StartSyncing switches the test FSM to commits without fsync, fsynced in
// the background every `every`, as Store.Open does (fsmsync.go).
func (t *TestFSM) StartSyncing(every time.Duration) { t.f.startSyncing(every) }
