package auth

// CacheLen is how many verified tokens v remembers (tests only).
func CacheLen(v *Verifier) int {
	if v.cache == nil {
		return 0
	}
	v.cache.mu.Lock()
	defer v.cache.mu.Unlock()
	return len(v.cache.cur) + len(v.cache.older)
}
