// Package chunkedread reads a blob stored as a list of chunks: a read at
// any offset opens only the chunks it covers. The local blob stores and
// the gRPC client share it; where a chunk comes from (a pack file, a chunk
// file, a verified fetch from a server) is the caller's.
package chunkedread

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tvix-go/tvix/castore"
)

// Chunk is one opened chunk.
type Chunk interface {
	io.ReaderAt
	io.Closer
}

// OpenFunc opens a chunk and returns its size, which the reader checks
// against the chunk list.
type OpenFunc func(d castore.Digest) (Chunk, int64, error)

// LocateFunc finds the local file and offset holding a chunk's bytes, for
// chunks that have one (ok=false otherwise).
type LocateFunc func(d castore.Digest) (f *os.File, off, size int64, ok bool)

// Reader is a castore.BlobReader over a chunk list. It keeps the chunk it
// read last open, so sequential reads open each chunk once. Reads at
// offsets may run concurrently; a chunk is closed only once no read uses
// it. With a LocateFunc it also serves castore.FileRanger and asks the
// kernel to read ahead of a sequential reader.
type Reader struct {
	blob    castore.Digest
	chunks  []castore.ChunkMeta
	offsets []int64 // offsets[i] = start of chunk i; len = len(chunks)+1
	open    OpenFunc
	// locate, when set, finds chunks in local files; places caches its
	// answers, so each chunk is looked up once per reader however many
	// reads cover it. prefetched is the last chunk read-ahead asked the
	// kernel for.
	locate LocateFunc

	mu         sync.Mutex
	cur        *heldChunk // the chunk opened last
	closed     bool
	places     []chunkPlace
	prefetched int
	seq        int // last chunk FileRange served, for read-ahead

	posMu sync.Mutex // Read and Seek
	pos   int64
}

// heldChunk is an open chunk and how many hold it: the reader while it is
// the current chunk, and each read using it.
type heldChunk struct {
	i    int
	c    Chunk
	refs int
}

// New reads blob from chunks through open; locate may be nil.
func New(blob castore.Digest, chunks []castore.ChunkMeta, open OpenFunc, locate LocateFunc) *Reader {
	offs := make([]int64, len(chunks)+1)
	for i, c := range chunks {
		offs[i+1] = offs[i] + int64(c.Size)
	}
	return &Reader{blob: blob, chunks: chunks, offsets: offs, open: open, locate: locate, seq: -1, prefetched: -1}
}

func (r *Reader) Size() int64 { return r.offsets[len(r.chunks)] }

// chunkAt is the chunk holding byte off of the blob.
func (r *Reader) chunkAt(off int64) int {
	return sort.Search(len(r.chunks), func(i int) bool { return r.offsets[i+1] > off })
}

var errClosed = errors.New("read blob: reader closed")

func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read blob %s: negative offset", r.blob)
	}
	n := 0
	for len(p) > 0 {
		if off >= r.Size() {
			return n, io.EOF
		}
		i := r.chunkAt(off)
		h, err := r.hold(i)
		if err != nil {
			return n, err
		}
		want := min(r.offsets[i+1]-off, int64(len(p)))
		m, err := h.c.ReadAt(p[:want], off-r.offsets[i])
		r.letGo(h)
		n += m
		off += int64(m)
		p = p[m:]
		if err != nil && !(err == io.EOF && int64(m) == want) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("read blob %s: chunk %s: %w", r.blob, r.chunks[i].Digest, err)
		}
	}
	return n, nil
}

// hold returns chunk i open, for one read; letGo gives it back. The open
// itself runs unlocked, so reads of other chunks (a fetch from a server)
// proceed meanwhile.
func (r *Reader) hold(i int) (*heldChunk, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errClosed
	}
	if h := r.cur; h != nil && h.i == i {
		h.refs++
		r.mu.Unlock()
		return h, nil
	}
	r.mu.Unlock()
	c, size, err := r.open(r.chunks[i].Digest)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: chunk %d (%s): %w", r.blob, i, r.chunks[i].Digest, err)
	}
	if uint64(size) != r.chunks[i].Size {
		c.Close()
		return nil, fmt.Errorf("read blob %s: chunk %s has %d bytes, the chunk list says %d", r.blob, r.chunks[i].Digest, size, r.chunks[i].Size)
	}
	h := &heldChunk{i: i, c: c, refs: 2}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return nil, errClosed
	}
	prev := r.cur
	r.cur = h
	if prev == nil && i == 0 || prev != nil && i == prev.i+1 {
		r.readAhead(i)
	}
	r.dropLocked(prev)
	return h, nil
}

func (r *Reader) letGo(h *heldChunk) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropLocked(h)
}

func (r *Reader) dropLocked(h *heldChunk) error {
	if h == nil {
		return nil
	}
	if h.refs--; h.refs == 0 {
		return h.c.Close()
	}
	return nil
}

// chunkPlace is where a chunk's bytes lie in a local file.
type chunkPlace struct {
	f         *os.File
	off, size int64
}

// place finds chunk i in a local file, once; r.mu is held.
func (r *Reader) place(i int) (chunkPlace, bool) {
	if r.locate == nil {
		return chunkPlace{}, false
	}
	if r.places == nil {
		r.places = make([]chunkPlace, len(r.chunks))
	}
	if p := r.places[i]; p.f != nil {
		return p, true
	}
	f, off, size, ok := r.locate(r.chunks[i].Digest)
	if !ok || uint64(size) != r.chunks[i].Size {
		return chunkPlace{}, false
	}
	r.places[i] = chunkPlace{f, off, size}
	return r.places[i], true
}

// ReadAheadBytes is how far past a sequential reader's chunk the kernel
// is asked to load: enough to keep a disk busy while the reader (a FUSE
// request, a NAR render) consumes the current chunk.
const ReadAheadBytes = 8 << 20

// readAhead keeps ReadAheadBytes of chunks after chunk i requested from
// the kernel (FADV_WILLNEED on their file ranges), asking for each chunk
// once. Only chunks in local files can be asked for; r.mu is held.
func (r *Reader) readAhead(i int) {
	if r.locate == nil {
		return
	}
	j := max(r.prefetched+1, i+1)
	for ; j < len(r.chunks) && r.offsets[j] < r.offsets[i+1]+ReadAheadBytes; j++ {
		if p, ok := r.place(j); ok {
			// A hint: a failure shows up, if at all, in the later read.
			_ = unix.Fadvise(int(p.f.Fd()), p.off, p.size, unix.FADV_WILLNEED)
		}
	}
	r.prefetched = j - 1
}

// FileRange serves castore.FileRanger when chunks live in local files:
// consecutive chunks written together sit back to back in one pack file,
// so a range across chunk boundaries is usually one file range. Without a
// LocateFunc no range is local.
func (r *Reader) FileRange(off int64, n int) (*os.File, int64, int) {
	if r.locate == nil || off < 0 || off >= r.Size() || n <= 0 {
		return nil, 0, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i := r.chunkAt(off)
	first, ok := r.place(i)
	if !ok {
		return nil, 0, 0
	}
	if i != r.seq {
		if i == r.seq+1 {
			r.readAhead(i)
		}
		r.seq = i
	}
	fileOff := first.off + (off - r.offsets[i])
	end := first.off + first.size // file offset just past the contiguous run
	want := fileOff + int64(n)
	for j := i + 1; end < want && j < len(r.chunks); j++ {
		p, ok := r.place(j)
		if !ok || p.f != first.f || p.off != end {
			break
		}
		end += p.size
	}
	return first.f, fileOff, int(min(want, end) - fileOff)
}

func (r *Reader) Read(p []byte) (int, error) {
	r.posMu.Lock()
	defer r.posMu.Unlock()
	n, err := r.ReadAt(p, r.pos)
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	r.posMu.Lock()
	defer r.posMu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.Size()
	default:
		return 0, fmt.Errorf("seek blob %s: bad whence %d", r.blob, whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek blob %s: negative position", r.blob)
	}
	r.pos = offset
	return offset, nil
}

// Close closes the current chunk once no read uses it; reads after Close
// fail.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	h := r.cur
	r.cur = nil
	return r.dropLocked(h)
}

var (
	_ castore.BlobReader = (*Reader)(nil)
	_ castore.FileRanger = (*Reader)(nil)
)
