package storage_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/barberpro/edge/storage"
	st "github.com/barberpro/edge/storage/storagetest"
)

// TestStore_NotFoundNamesWhatIsMissing: a missing record is ErrNotFound for
// errors.Is, and its text names the bucket and the key.
func TestStore_NotFoundNamesWhatIsMissing(t *testing.T) {
	s := st.MustOpen(t, st.Config(t))
	ctx := context.Background()
	_, err := s.Idempotency(ctx, "no-such-key")
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Idempotency of a missing key = %v, want ErrNotFound", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "storage: not found") || !strings.Contains(msg, "idempotency") || !strings.Contains(msg, `"no-such-key"`) {
		t.Errorf("error text %q names neither the bucket nor the key", msg)
	}
}
