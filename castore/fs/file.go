package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tvix-go/tvix/castore"
)

// fileNode is a castore file; its contents are read from the blob on demand.
type fileNode struct {
	gofs.Inode
	base
	e entry
}

var (
	_ gofs.NodeOpener      = (*fileNode)(nil)
	_ gofs.NodeGetattrer   = (*fileNode)(nil)
	_ gofs.NodeGetxattrer  = (*fileNode)(nil)
	_ gofs.NodeListxattrer = (*fileNode)(nil)
	_ gofs.NodeWriter      = (*fileNode)(nil)
)

func (n *fileNode) Getattr(_ context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.t.attr(n.e, n.StableAttr().Ino, &out.Attr, out.SetTimeout)
	return 0
}

func (n *fileNode) Access(_ context.Context, mask uint32) syscall.Errno {
	mode := uint32(0o444)
	if n.e.exec {
		mode = 0o555
	}
	return access(mask, mode)
}

func (n *fileNode) Getxattr(_ context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr != XattrBlobDigest {
		return 0, syscall.ENODATA
	}
	return xattrValue(n.e.digest.String(), dest)
}

func (n *fileNode) Listxattr(_ context.Context, dest []byte) (uint32, syscall.Errno) {
	return xattrValue(XattrBlobDigest+"\x00", dest)
}

// Open makes no service call: the blob is opened by the first read, so
// opening a file that is never read (exec checks, stat via fd) costs
// nothing, and a missing blob shows as EIO on read.
func (n *fileNode) Open(_ context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND|syscall.O_CREAT) != 0 {
		return nil, 0, syscall.EROFS
	}
	// Contents never change, so the page cache survives close and reopen,
	// and there is nothing to flush on close.
	h := newFileHandle(n)
	if bf, ok := castore.As[castore.BackingFiler](n.t.svc.Blobs); ok && n.e.size >= passthroughMinSize {
		if f, size, ok := bf.BackingFile(n.t.ctx, n.e.digest); ok && uint64(size) == n.e.size {
			return &passthroughHandle{fileHandle: h, f: f}, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH, 0
		}
	}
	return h, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH, 0
}

// passthroughMinSize: below it a file is read through the mount (spliced);
// large blobs the store keeps as a file of their own are handed to the
// kernel, which reads them like a local file without asking the mount.
const passthroughMinSize = 1 << 20

// passthroughHandle offers go-fuse the blob's backing file. If the kernel
// or the transport (virtio-fs) cannot pass through, reads arrive as usual
// and the embedded fileHandle serves them.
type passthroughHandle struct {
	*fileHandle
	f *os.File
}

var _ gofs.FilePassthroughFder = (*passthroughHandle)(nil)

func (h *passthroughHandle) PassthroughFd() (int, bool) { return int(h.f.Fd()), true }

// readersPerHandle bounds the blob readers one open file uses at once.
// The kernel sends several reads of one handle concurrently (readahead,
// async read); a BlobReader serializes its reads (a chunked one keeps one
// chunk open), so a few readers let chunk fetches overlap.
const readersPerHandle = 4

// fileHandle is one open file with a small pool of blob readers, opened
// on demand.
type fileHandle struct {
	n     *fileNode
	idle  chan castore.BlobReader
	slots chan struct{}
}

var (
	_ gofs.FileReader   = (*fileHandle)(nil)
	_ gofs.FileReleaser = (*fileHandle)(nil)
)

func newFileHandle(n *fileNode) *fileHandle {
	return &fileHandle{n: n, idle: make(chan castore.BlobReader, readersPerHandle), slots: make(chan struct{}, readersPerHandle)}
}

// acquire returns an idle reader, or opens one while fewer than
// readersPerHandle exist, or waits for one to come back.
func (h *fileHandle) acquire(ctx context.Context) (castore.BlobReader, error) {
	select {
	case r := <-h.idle:
		return r, nil
	default:
	}
	select {
	case r := <-h.idle:
		return r, nil
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r, err := h.open()
	if err != nil {
		<-h.slots
		return nil, err
	}
	return r, nil
}

func (h *fileHandle) release(r castore.BlobReader) { h.idle <- r }

func (h *fileHandle) open() (castore.BlobReader, error) {
	t, e := h.n.t, h.n.e
	// The reader outlives this request (later reads reuse it), so it gets
	// the tree's context, not the request's.
	r, err := t.svc.Blobs.Open(t.ctx, e.digest)
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", e.digest, err)
	}
	if r.Size() != int64(e.size) {
		r.Close()
		return nil, fmt.Errorf("open blob %s: blob has %d bytes, directory says %d", e.digest, r.Size(), e.size)
	}
	return r, nil
}

func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	size := int64(h.n.e.size)
	if off >= size {
		return fuse.ReadResultData(nil), 0
	}
	if rest := size - off; int64(len(dest)) > rest {
		dest = dest[:rest]
	}
	r, err := h.acquire(ctx)
	if err != nil {
		h.logReadError(off, err)
		return nil, errnoFor(ctx, err)
	}
	if fr, ok := r.(castore.FileRanger); ok {
		// Bytes that sit in a local file go to the kernel by splice,
		// never through this process's memory.
		if f, fileOff, m := fr.FileRange(off, len(dest)); m == len(dest) {
			h.release(r)
			return fuse.ReadResultFd(f.Fd(), fileOff, m), 0
		}
	}
	n, err := r.ReadAt(dest, off)
	h.release(r)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(dest)) {
		h.logReadError(off, err)
		return nil, syscall.EIO
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *fileHandle) logReadError(off int64, err error) {
	lvl := "read blob"
	if errors.Is(err, castore.ErrNotFound) {
		lvl = "blob missing"
	}
	h.n.t.log.Error(lvl, "path", h.n.Path(nil), "digest", h.n.e.digest.String(), "offset", off, "err", err)
}

// Release closes the readers; go-fuse calls it only after every read of
// the handle has returned, so all readers are idle.
func (h *fileHandle) Release(context.Context) syscall.Errno {
	for {
		select {
		case r := <-h.idle:
			if err := r.Close(); err != nil {
				h.n.t.log.Warn("close blob reader", "digest", h.n.e.digest.String(), "err", err)
			}
		default:
			return 0
		}
	}
}
