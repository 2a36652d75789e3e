package load

import (
	"testing"

	"github.com/google/uuid"
)

// TestNewKey_RandomUUIDs: the bench's idempotency keys are random version-4
// UUIDs, as client apps send, not a counter (which lands on few of the
// store's pages and flatters it).
func TestNewKey_RandomUUIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		k := newKey()
		u, err := uuid.Parse(k)
		if err != nil || u.Version() != 4 || len(k) != 36 {
			t.Fatalf("key %q is not a version-4 UUID (%v)", k, err)
		}
		if seen[k] {
			t.Fatalf("key %q drawn twice", k)
		}
		seen[k] = true
	}
}
