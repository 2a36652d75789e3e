package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// setGCPercent applies a positive --gc-percent, leaves Go's target alone for
// 0 or less, and lets GOGC win.
func TestSetGCPercent(t *testing.T) {
	withoutGOGC(t)
	setGCPercent(333)
	if got := debug.SetGCPercent(100); got != 333 {
		t.Fatalf("--gc-percent 333: GC target %d", got)
	}
	setGCPercent(0)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("--gc-percent 0 changed the GC target to %d", got)
	}
	t.Setenv("GOGC", "150")
	setGCPercent(333)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC set: --gc-percent changed the GC target to %d", got)
	}
}

// Both the node and the bench take --gc-percent, defaulting to
// defaultGCPercent, and the bench applies it (a node's is applied as it
// starts).
func TestGCPercentFlags(t *testing.T) {
	withoutGOGC(t)
	if _, err := runCLI(t, "bench", "--gc-percent", "321"); err == nil {
		t.Fatal("bench without --target ran")
	}
	if got := debug.SetGCPercent(100); got != 321 {
		t.Fatalf("bench --gc-percent 321: GC target %d", got)
	}
	root := newRootCmd()
	for _, path := range [][]string{{"node", "start"}, {"bench"}} {
		c, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		f := c.Flags().Lookup("gc-percent")
		if f == nil || f.DefValue != "400" {
			t.Fatalf("%v --gc-percent: %+v", path, f)
		}
	}
}

// withoutGOGC runs the test with GOGC unset and the GC target at 100; both
// are restored when it ends.
func withoutGOGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	t.Setenv("GOGC", "") // restored when the test ends
	os.Unsetenv("GOGC")
}
