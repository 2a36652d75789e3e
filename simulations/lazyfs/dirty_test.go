package lazyfs

import (
	"bytes"
	"testing"
)

// memFile is a file on the "disk" for the dirty pages' tests.
type memFile struct{ b []byte }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, nil
	}
	return copy(p, m.b[off:]), nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

func TestDirty_ReadsMergeTheDiskAndFlushWritesIt(t *testing.T) {
	disk := &memFile{b: bytes.Repeat([]byte("d"), 5000)}
	want := bytes.Clone(disk.b)
	var d dirty
	write := func(p string, off int64) {
		t.Helper()
		if err := d.write([]byte(p), off, disk, int64(len(disk.b))); err != nil {
			t.Fatal(err)
		}
		if end := off + int64(len(p)); end > int64(len(want)) {
			want = append(want, make([]byte, end-int64(len(want)))...)
		}
		copy(want[off:], p)
	}
	write("abc", 10)            // inside page 0, the rest from the disk
	write("xyz", pageSize-1)    // across pages 0 and 1
	write("tail", 3*pageSize+5) // past the disk's end: a hole of zeroes before
	if string(disk.b) != string(bytes.Repeat([]byte("d"), 5000)) {
		t.Fatal("a write reached the disk before the flush")
	}
	got := make([]byte, 5*pageSize)
	n, err := d.read(got, 0, disk, int64(len(disk.b)))
	if err != nil || !bytes.Equal(got[:n], want) {
		t.Fatalf("read %d bytes (%v), want the %d written over the disk", n, err, len(want))
	}
	// A truncate (on the disk at once) cuts the unsynced pages too.
	d.truncate(4500)
	disk.b, want = disk.b[:4500], want[:4500]
	if n, _ := d.read(got, 0, disk, 4500); !bytes.Equal(got[:n], want) {
		t.Fatalf("after the truncate, read %d bytes, want %d", n, len(want))
	}
	if err := d.flush(disk); err != nil || d.pending() {
		t.Fatalf("flush: %v, pending %v", err, d.pending())
	}
	if !bytes.Equal(disk.b, want) {
		t.Fatalf("the disk after the flush: %d bytes, equal %v", len(disk.b), bytes.Equal(disk.b, want))
	}
}
