package lazyfs

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is one file or directory of the mount: a loopback node whose file
// data writes wait in memory (d) until the file is fsynced. Every node of the
// tree is one (WrapChild), so hard links share one node and its pending data.
type node struct {
	*fs.LoopbackNode

	mu sync.Mutex // guards d, and orders reads, writes, truncates and flushes of the file
	d  dirty
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeReader         = (*node)(nil)
	_ fs.NodeWriter         = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeAllocater      = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
)

// WrapChild makes every node the loopback creates one of ours.
func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if l, ok := ops.(*fs.LoopbackNode); ok {
		return &node{LoopbackNode: l}
	}
	return ops
}

// path is the node's file on the disk (the underlying directory).
func (n *node) path() string {
	return filepath.Join(n.RootData.Path, n.Path(n.RootData.RootNode.EmbeddedInode()))
}

// patchSize reports the size the writers see, unsynced growth included.
func (n *node) patchSize(a *fuse.Attr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.d.pending() {
		a.Size = uint64(n.d.size)
	}
}

// Lookup is the loopback's, with the size the writers see.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno == 0 {
		if c := n.known(name, ch); c != nil {
			c.patchSize(&out.Attr)
		}
	}
	return ch, errno
}

// known is the node that holds the pending data of the file name, which the
// loopback just returned as ch: the loopback makes a new node at every
// lookup, and go-fuse keeps the one it already has for the same file (same
// StableAttr) while the kernel holds it, so the pending data is that one's.
// Patched from the new, empty one, a lookup after the kernel's cache expired
// gave the kernel the disk's size, and unsynced growth vanished for readers.
// (Create registers its child exclusively, so go-fuse keeps the new node
// there; dropping the old one's pages on O_TRUNC is still right: the disk's
// file was truncated.) Only the name's own child is found: another hard
// link's node, or one go-fuse dropped when the kernel forgot the inode, is
// not (see DESIGN.md, "Known gaps").
func (n *node) known(name string, ch *fs.Inode) *node {
	if old := n.EmbeddedInode().GetChild(name); old != nil && old.StableAttr() == ch.StableAttr() {
		ch = old
	}
	c, _ := ch.Operations().(*node)
	return c
}

// Getattr is the loopback's, with the size the writers see.
func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := n.LoopbackNode.Getattr(ctx, f, out); errno != 0 {
		return errno
	}
	n.patchSize(&out.Attr)
	return 0
}

// Setattr passes through at once (a truncate included: only data waits for
// fsync), dropping the unsynced pages a truncate cuts off.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	n.mu.Lock()
	if sz, ok := in.GetSize(); ok {
		n.d.truncate(int64(sz))
	}
	errno := n.LoopbackNode.Setattr(ctx, f, in, out)
	n.mu.Unlock()
	if errno == 0 {
		n.patchSize(&out.Attr)
	}
	return errno
}

// Open opens the file on the disk; O_TRUNC reaches it at once.
func (n *node) Open(_ context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	flags &^= syscall.O_APPEND | fuse.FMODE_EXEC // the kernel gives append writes their offset
	n.mu.Lock()
	defer n.mu.Unlock()
	f, err := os.OpenFile(n.path(), int(flags), 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	if flags&syscall.O_TRUNC != 0 {
		n.d.truncate(0)
	}
	return newHandle(f, int(flags)), 0, 0
}

// Create creates the file on the disk at once, as the loopback does, with our
// handle on it.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ch, fh, _, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if r, ok := fh.(fs.FileReleaser); ok {
		r.Release(ctx) // the loopback's handle would let the kernel write to the disk directly
	}
	if c := n.known(name, ch); c != nil && flags&syscall.O_TRUNC != 0 {
		c.mu.Lock()
		c.d.truncate(0) // an existing file, truncated on the disk
		c.mu.Unlock()
	}
	flags &^= syscall.O_APPEND | syscall.O_CREAT | syscall.O_EXCL | syscall.O_TRUNC
	f, err := os.OpenFile(filepath.Join(n.path(), name), int(flags), 0)
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	return ch, newHandle(f, int(flags)), 0, 0
}

// withDisk runs fn with the file on the disk: the handle's when it can do
// what fn needs (reading, or writing), else the file opened anew by path.
func (n *node) withDisk(f fs.FileHandle, write bool, fn func(disk *os.File, size int64) error) syscall.Errno {
	h, _ := f.(*handle)
	disk := (*os.File)(nil)
	if h != nil && (write && h.acc != syscall.O_RDONLY || !write && h.acc != syscall.O_WRONLY) {
		disk = h.f
	} else {
		flag := os.O_RDONLY
		if write {
			flag = os.O_WRONLY
		}
		var err error
		if disk, err = os.OpenFile(n.path(), flag, 0); err != nil {
			return fs.ToErrno(err)
		}
		defer disk.Close()
	}
	st, err := disk.Stat()
	if err != nil {
		return fs.ToErrno(err)
	}
	return fs.ToErrno(fn(disk, st.Size()))
}

// Read returns the disk's data with the unsynced writes over it.
func (n *node) Read(_ context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var k int
	errno := n.withDisk(f, false, func(disk *os.File, size int64) (err error) {
		k, err = n.d.read(dest, off, disk, size)
		return err
	})
	if errno != 0 {
		return nil, errno
	}
	return fuse.ReadResultData(dest[:k]), 0
}

// Write keeps data in memory until the file is fsynced.
func (n *node) Write(_ context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	n.mu.Lock()
	defer n.mu.Unlock()
	errno := n.withDisk(f, false, func(disk *os.File, size int64) error {
		return n.d.write(data, off, disk, size)
	})
	if errno != 0 {
		return 0, errno
	}
	return uint32(len(data)), 0
}

// Fsync (fsync and fdatasync alike) writes the file's unsynced data to the
// disk: from then on it survives a power cut.
func (n *node) Fsync(_ context.Context, f fs.FileHandle, _ uint32) syscall.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.d.pending() {
		return 0
	}
	return n.withDisk(f, true, func(disk *os.File, _ int64) error { return n.d.flush(disk) })
}

// Allocate is refused: fallocate would change the disk past the unsynced
// pages (callers fall back to writing).
func (n *node) Allocate(context.Context, fs.FileHandle, uint64, uint64, uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}

// CopyFileRange is refused: the kernel copies with reads and writes instead,
// which go through the unsynced pages (the loopback's copies disk to disk).
func (n *node) CopyFileRange(context.Context, fs.FileHandle, uint64, *fs.Inode, fs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// handle is an open file. It forwards what does not touch data to the
// loopback's handle on the same file, and nothing else: in particular not
// PassthroughFd, with which the kernel would read and write the disk itself.
type handle struct {
	lf  *fs.LoopbackFile
	f   *os.File
	acc int // O_RDONLY, O_WRONLY or O_RDWR
}

var (
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileGetattrer = (*handle)(nil)
	_ fs.FileSetattrer = (*handle)(nil)
)

func newHandle(f *os.File, flags int) *handle {
	return &handle{lf: fs.NewLoopbackFileFromOS(f), f: f, acc: flags & syscall.O_ACCMODE}
}

// Release closes the file on the disk. It persists nothing.
func (h *handle) Release(ctx context.Context) syscall.Errno { return h.lf.Release(ctx) }

// Flush (each close(2)) persists nothing.
func (h *handle) Flush(ctx context.Context) syscall.Errno { return h.lf.Flush(ctx) }

// Getattr is the disk file's (the node patches the size).
func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.lf.Getattr(ctx, out)
}

// Setattr passes through (the node drops what a truncate cuts off).
func (h *handle) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return h.lf.Setattr(ctx, in, out)
}
