//go:build !linux

package failpoint

import "fmt"

func mountAvailable() error {
	return fmt.Errorf("%w: tmpfs data dirs need Linux", ErrSkip)
}

func mountTmpfs(source, dir string, size uint64) error  { return mountAvailable() }
func resizeTmpfs(source, dir string, size uint64) error { return mountAvailable() }
func unmount(dir string) error                          { return mountAvailable() }
func diskUsage(dir string) (size, used, free uint64, err error) {
	return 0, 0, 0, mountAvailable()
}
func mountsOf(source string) []string { return nil }
