//go:build !unix

package cluster

// diskSpace is unknown on this platform.
func diskSpace(string) (avail, size float64) { return -1, -1 }
