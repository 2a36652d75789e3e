package lazyfs

import (
	"io"
	"maps"
	"slices"
)

// pageSize is the granularity of the unsynced data kept in memory.
const pageSize = 4096

// dirty is the data of one file written since its last fsync: whole pages
// (read from the disk first when a write covers a page only in part) and the
// file's size as the writers see it. A zero dirty has nothing pending. Not
// safe for concurrent use: the node holding it locks.
type dirty struct {
	pages map[int64][]byte // page number → pageSize bytes
	size  int64            // the file's size as written; valid when pages != nil
}

// pending reports whether anything was written since the last fsync.
func (d *dirty) pending() bool { return d.pages != nil }

// write records p at off. disk is the file as it is on the disk, for the
// part of a page the write does not cover; diskSize is its size there.
func (d *dirty) write(p []byte, off int64, disk io.ReaderAt, diskSize int64) error {
	if d.pages == nil {
		d.pages, d.size = map[int64][]byte{}, diskSize
	}
	for done := 0; done < len(p); {
		at := off + int64(done)
		n, in := at/pageSize, int(at%pageSize)
		pg, ok := d.pages[n]
		if !ok {
			pg = make([]byte, pageSize)
			if in != 0 || len(p)-done < pageSize {
				if err := readFull(disk, pg, n*pageSize); err != nil {
					return err
				}
				d.clip(pg, n)
			}
			d.pages[n] = pg
		}
		done += copy(pg[in:], p[done:])
	}
	d.size = max(d.size, off+int64(len(p)))
	return nil
}

// clip zeroes the part of page n past the file's size: bytes the disk still
// has there were cut off by a truncate the writers saw.
func (d *dirty) clip(pg []byte, n int64) {
	if end := d.size - n*pageSize; end < pageSize {
		clear(pg[max(end, 0):])
	}
}

// readFull reads len(b) bytes at off, zeroes past the end of the file.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if err == io.EOF {
		err = nil
	}
	clear(b[n:])
	return err
}

// read fills b with the file's content at off (the disk's, with the unsynced
// pages over it) and returns how many bytes the file has there.
func (d *dirty) read(b []byte, off int64, disk io.ReaderAt, diskSize int64) (int, error) {
	size := diskSize
	if d.pending() {
		size = d.size
	}
	if off >= size {
		return 0, nil
	}
	b = b[:min(int64(len(b)), size-off)]
	if err := readFull(disk, b, off); err != nil {
		return 0, err
	}
	if !d.pending() {
		return len(b), nil
	}
	for n := off / pageSize; n*pageSize < off+int64(len(b)); n++ {
		if pg, ok := d.pages[n]; ok {
			from := max(off, n*pageSize)
			copy(b[from-off:], pg[from-n*pageSize:])
		}
	}
	return len(b), nil
}

// truncate records a truncate to size, which reached the disk at once: pages
// past it are dropped, the one it cuts is zeroed past it.
func (d *dirty) truncate(size int64) {
	if !d.pending() {
		return
	}
	d.size = size
	for n, pg := range d.pages {
		if n*pageSize >= size {
			delete(d.pages, n)
			continue
		}
		d.clip(pg, n)
	}
}

// flush writes the unsynced pages to w (the file on the disk) up to the
// file's size, and forgets them.
func (d *dirty) flush(w io.WriterAt) error {
	if !d.pending() {
		return nil
	}
	for _, n := range slices.Sorted(maps.Keys(d.pages)) {
		pg := d.pages[n][:min(pageSize, d.size-n*pageSize)]
		if _, err := w.WriteAt(pg, n*pageSize); err != nil {
			return err
		}
	}
	*d = dirty{}
	return nil
}
