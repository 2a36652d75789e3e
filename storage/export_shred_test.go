package storage

// NoteErasureApplied counts one more EraseHealthData as applied by s's FSM,
// as the FSM's apply does, so tests can drive the shred loop.
func NoteErasureApplied(s *Store) { s.fsm.erasures.Add(1) }
