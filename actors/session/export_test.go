package session

import "time"

// SetIdle sets how long a session actor stays active without requests (tests).
func SetIdle(s *Sessions, d time.Duration) { s.idle = d }

// ActiveLocal counts the session actors of the in-process directory (tests).
func ActiveLocal(s *Sessions) int {
	s.mu.Lock()
	d := s.dir
	s.mu.Unlock()
	if d == nil {
		return 0
	}
	return d.Active()
}
