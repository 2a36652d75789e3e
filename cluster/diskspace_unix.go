//go:build unix

package cluster

import "syscall"

// diskSpace returns the bytes available to an unprivileged user and the total
// size of the file system holding dir, or -1, -1 if it cannot tell.
func diskSpace(dir string) (avail, size float64) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1, -1
	}
	return float64(st.Bavail) * float64(st.Bsize), float64(st.Blocks) * float64(st.Bsize)
}
