//go:build linux

package failpoint

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// mountAvailable reports why tmpfs mounts cannot be made here (nil if they can).
func mountAvailable() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: mounting a tmpfs needs root", ErrSkip)
	}
	return nil
}

// mountTmpfs mounts a tmpfs of size bytes named source on dir.
func mountTmpfs(source, dir string, size uint64) error {
	if err := syscall.Mount(source, dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0750", size)); err != nil {
		return fmt.Errorf("failpoint: mount -t tmpfs -o size=%d %s %s: %w", size, source, dir, err)
	}
	return nil
}

// resizeTmpfs remounts the tmpfs on dir with a new size (mount -o remount,size=).
func resizeTmpfs(source, dir string, size uint64) error {
	if err := syscall.Mount(source, dir, "tmpfs", syscall.MS_REMOUNT, fmt.Sprintf("size=%d", size)); err != nil {
		return fmt.Errorf("failpoint: mount -o remount,size=%d %s: %w", size, dir, err)
	}
	return nil
}

// unmount unmounts dir, detaching it lazily if it is busy.
func unmount(dir string) error {
	if err := syscall.Unmount(dir, 0); err != nil {
		if err2 := syscall.Unmount(dir, syscall.MNT_DETACH); err2 != nil {
			return fmt.Errorf("failpoint: umount %s: %w", dir, err)
		}
	}
	return nil
}

// diskUsage is the size, used and free bytes of the file system holding dir.
func diskUsage(dir string) (size, used, free uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, 0, err
	}
	bs := uint64(st.Bsize)
	return st.Blocks * bs, (st.Blocks - st.Bfree) * bs, st.Bavail * bs, nil
}

// mountsOf lists the mount points whose source is exactly source.
func mountsOf(source string) []string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[0] == source && fields[2] == "tmpfs" {
			out = append(out, unescapeMount(fields[1]))
		}
	}
	return out
}

// unescapeMount undoes the octal escapes of /proc/self/mounts (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
