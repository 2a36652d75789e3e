package storage

import (
	"os"
	"testing"

	"github.com/barberpro/edge/simulations/lazyfs/lazyfstest"
)

// TestMain lets the test binary serve the lazyfs mounts of the power-cut
// tests (lazyfstest.Mount starts it as their server).
func TestMain(m *testing.M) {
	lazyfstest.ServeIfAsked()
	os.Exit(m.Run())
}
