package blobstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"lukechampine.com/blake3"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/chunkedread"
)

// ErrCorrupt marks stored bytes that do not hash to their digest: the
// disk (or whoever wrote to the store's files) changed them. Readers get
// this error instead of the bytes; nothing in the store is repaired.
var ErrCorrupt = errors.New("stored bytes do not match their digest")

// verifyBufSize is the piece a chunk is hashed in: a whole maximum chunk,
// since BLAKE3 hashes larger inputs faster (more of its 1 KiB chunks at
// once: 1.15 GB/s instead of 0.85 with 128 KiB on the benchmark machine).
// Buffers are pooled and held only while hashing.
const verifyBufSize = 1 << 20

var verifyBufs = sync.Pool{New: func() any { b := make([]byte, verifyBufSize); return &b }}

// hashRange is the BLAKE3 of size bytes of r from off.
func hashRange(r io.ReaderAt, off, size int64) (castore.Digest, error) {
	bp := verifyBufs.Get().(*[]byte)
	defer verifyBufs.Put(bp)
	buf := *bp
	if size <= int64(len(buf)) {
		// A chunk: read whole, hashed on this goroutine.
		n, err := r.ReadAt(buf[:size], off)
		if int64(n) == size {
			return blake3Serial(buf[:size]), nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return castore.Digest{}, err
	}
	h := blake3.New(32, nil)
	for done := int64(0); done < size; {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-done)], off+done)
		h.Write(buf[:n])
		done += int64(n)
		if err != nil && !(err == io.EOF && done == size) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return castore.Digest{}, err
		}
	}
	var d castore.Digest
	h.Sum(d[:0])
	return d, nil
}

// where names the file holding a chunk's bytes, for error messages: the
// pack file and offset, or the chunk file.
func where(c chunkReader) string {
	switch c := c.(type) {
	case fileChunk:
		return fmt.Sprintf("%s at offset %d", c.f.Name(), c.off)
	case interface{ Name() string }: // a chunk file, an object's key
		return c.Name()
	}
	return "unknown file"
}

// unverifiedReads turns verification off, for one purpose: measuring what
// it costs (scripts/bench-narbridge serves the same store both ways). It
// is read from the environment, not configured, so that no store URL or
// flag can ask for it.
var unverifiedReads = os.Getenv("TVIX_BENCH_UNVERIFIED_READS") == "1"

// openVerified opens chunk d and checks its bytes hash to d before anyone
// reads them. The bytes are then read again from the file (the page cache
// has them): keeping each open chunk in memory would cost up to a chunk
// per open reader, and a FUSE mount keeps many open. With a chunk cache
// (SetChunkCache), a chunk it holds is served from memory without being
// read or hashed again, and one it admits is read once, into memory.
func (s *Store) openVerified(d castore.Digest) (chunkReader, int64, error) {
	return s.openCounted(d, true)
}

// openCounted is openVerified for a reader that says whether this open is
// its first request for d (what the chunk cache counts).
func (s *Store) openCounted(d castore.Digest, count bool) (chunkReader, int64, error) {
	cache := s.cache.Load()
	if unverifiedReads {
		cache = nil
	}
	if cache != nil {
		if e, ok := cache.get(d, count); ok {
			// The store is asked all the same (a cheap question, not a
			// read): a chunk it no longer has is not served from memory.
			if has, err := s.b.hasChunk(d); err != nil || !has {
				cache.release(e)
				if err == nil {
					err = castore.ErrNotFound
				}
				return nil, 0, fmt.Errorf("chunk %s: %w", d, err)
			}
			return newMemChunk(cache, e), int64(len(e.data)), nil
		}
	}
	c, size, err := s.b.openChunk(d)
	if err != nil || unverifiedReads {
		return c, size, err
	}
	if cache != nil && cache.admits(d, size) {
		defer c.Close()
		e, err := readIntoCache(cache, c, d, size)
		if err != nil {
			return nil, 0, err
		}
		return newMemChunk(cache, e), size, nil
	}
	got, err := hashRange(c, 0, size)
	if err := chunkError(c, d, got, err); err != nil {
		c.Close()
		return nil, 0, err
	}
	return c, size, nil
}

// chunkError is what reading chunk d from c to verify it found: the read's
// error, or bytes that hash to got instead of d.
func chunkError(c chunkReader, d, got castore.Digest, err error) error {
	if err != nil {
		return fmt.Errorf("verify chunk %s in %s: %w", d, where(c), err)
	}
	if got != d {
		return fmt.Errorf("%w: chunk %s in %s hashes to %s", ErrCorrupt, d, where(c), got)
	}
	return nil
}

// readIntoCache reads chunk d (size bytes of c) into a buffer of the
// cache's and, if it hashes to d, adds it; the entry returned is held for
// the caller.
func readIntoCache(cache *chunkCache, c chunkReader, d castore.Digest, size int64) (*cachedChunk, error) {
	data, mapped := allocChunk(size)
	n, err := c.ReadAt(data, 0)
	if int64(n) != size {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		err = chunkError(c, d, castore.Digest{}, err)
	} else {
		err = chunkError(c, d, blake3Serial(data), nil)
	}
	if err != nil {
		freeChunk(data, mapped)
		return nil, err
	}
	return cache.add(d, data, mapped), nil
}

// memChunk is a verified chunk in the chunk cache, held until Close. A
// read racing with Close (a reader closed while a read of it is still
// running elsewhere) gets an error, never unmapped memory.
type memChunk struct {
	e     *cachedChunk
	cache *chunkCache

	mu     sync.RWMutex
	closed bool
}

func newMemChunk(cache *chunkCache, e *cachedChunk) *memChunk {
	return &memChunk{e: e, cache: cache}
}

func (m *memChunk) ReadAt(p []byte, off int64) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, errMemChunkClosed
	}
	if off < 0 {
		return 0, errors.New("read cached chunk: negative offset")
	}
	if off >= int64(len(m.e.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.e.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

var errMemChunkClosed = errors.New("read cached chunk: closed")

func (m *memChunk) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		m.cache.release(m.e)
	}
	return nil
}

// verifiedRanges is a chunked blob's reader whose file ranges (handed to
// the kernel to splice, so their bytes never pass through here) are of
// chunks verified first, each once per reader. The files its chunks were
// located in stay open until Close: the kernel may still be reading a
// range handed out.
type verifiedRanges struct {
	*chunkedread.Reader
	s       *Store
	cache   *chunkCache // the store's when the reader was opened, or nil
	l       locator
	chunks  []castore.ChunkMeta
	offsets []int64

	mu       sync.Mutex
	verified map[filePlace]bool // by this reader, for reads or ranges
	asked    map[castore.Digest]bool
	pinned   map[castore.Digest]*cachedChunk // what MemRange handed out, held until Close
	releases []func()
}

// filePlace is where a chunk's bytes were verified: what a range hands
// out must be the very bytes checked, not the same digest elsewhere (a
// chunk moved by compaction while the reader is open).
type filePlace struct {
	f   *os.File
	off int64
}

func newVerifiedRanges(s *Store, d castore.Digest, chunks []castore.ChunkMeta, l locator) *verifiedRanges {
	offs := make([]int64, len(chunks)+1)
	for i, c := range chunks {
		offs[i+1] = offs[i] + int64(c.Size)
	}
	r := &verifiedRanges{s: s, l: l, chunks: chunks, offsets: offs, verified: map[filePlace]bool{}, asked: map[castore.Digest]bool{}, cache: s.cache.Load()}
	r.Reader = chunkedread.New(d, chunks, r.open, r.locate)
	return r
}

// open is the reader's OpenFunc: it verifies as openVerified does and
// remembers it, so a range of the same chunk handed out afterwards (a NAR
// served by sendfile after its first bytes were read) is not hashed again.
func (r *verifiedRanges) open(d castore.Digest) (chunkedread.Chunk, int64, error) {
	r.mu.Lock()
	first := r.firstAskLocked(d)
	r.mu.Unlock()
	c, size, err := r.s.openCounted(d, first)
	if err != nil {
		return nil, 0, err
	}
	if fc, ok := c.(fileChunk); ok {
		r.mu.Lock()
		r.verified[filePlace{fc.f, fc.off}] = true
		r.mu.Unlock()
	}
	return c, size, nil
}

// locate is the reader's LocateFunc; chunkedread asks once per chunk.
func (r *verifiedRanges) locate(d castore.Digest) (*os.File, int64, int64, bool) {
	f, off, size, release, ok := r.l.locate(d)
	if ok && release != nil {
		r.mu.Lock()
		r.releases = append(r.releases, release)
		r.mu.Unlock()
	}
	return f, off, size, ok
}

func (r *verifiedRanges) Close() error {
	err := r.Reader.Close()
	r.mu.Lock()
	releases := r.releases
	r.releases = nil
	r.mu.Unlock()
	for _, release := range releases {
		release()
	}
	r.mu.Lock()
	pinned := r.pinned
	r.pinned = nil
	r.mu.Unlock()
	for _, e := range pinned {
		r.cache.release(e)
	}
	return err
}

// firstAskLocked reports whether this is the reader's first request for
// chunk d; r.mu is held.
func (r *verifiedRanges) firstAskLocked(d castore.Digest) bool {
	if r.asked[d] {
		return false
	}
	r.asked[d] = true
	return true
}

// FileRange hands out a range only once every chunk it covers has been
// verified where the range lies; a corrupt one yields no range, so the
// caller reads instead and gets the error. A range ends before a chunk
// the chunk cache holds (one it admits is read into it here): those are
// the caller's to take from memory (MemRange), without hashing them again.
func (r *verifiedRanges) FileRange(off int64, n int) (*os.File, int64, int) {
	f, fileOff, m := r.Reader.FileRange(off, n)
	if f == nil {
		return f, fileOff, m
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	first := r.chunkAt(off)
	// The chunks of a range lie back to back in f: chunk i starts at
	// start + offsets[i] - offsets[first].
	start := fileOff - (off - r.offsets[first])
	for i := first; i < len(r.chunks) && r.offsets[i] < off+int64(m); i++ {
		at := filePlace{f, start + r.offsets[i] - r.offsets[first]}
		if r.verified[at] || unverifiedReads {
			continue
		}
		c := r.chunks[i]
		if r.cache != nil && r.cached(c, at) {
			if i == first {
				return nil, 0, 0
			}
			return f, fileOff, int(r.offsets[i] - off)
		}
		got, err := hashRange(f, at.off, int64(c.Size))
		if err != nil || got != c.Digest {
			return nil, 0, 0
		}
		r.verified[at] = true
	}
	return f, fileOff, m
}

// cached reports whether chunk c is in the chunk cache, reading it from at
// into the cache if the cache admits it; r.mu is held.
func (r *verifiedRanges) cached(c castore.ChunkMeta, at filePlace) bool {
	if e, ok := r.cache.get(c.Digest, r.firstAskLocked(c.Digest)); ok {
		r.cache.release(e)
		return true
	}
	if !r.cache.admits(c.Digest, int64(c.Size)) {
		return false
	}
	fc := fileChunk{SectionReader: io.NewSectionReader(at.f, at.off, int64(c.Size)), f: at.f, off: at.off}
	e, err := readIntoCache(r.cache, fc, c.Digest, int64(c.Size))
	if err != nil {
		return false // no range; the read that follows reports it
	}
	cached := !e.out
	r.cache.release(e)
	return cached
}

// MemRange returns the bytes of the blob from off on (at most n) when the
// chunk there is in the chunk cache: verified bytes, to be written as they
// are, valid until the reader is closed. It returns nil otherwise.
func (r *verifiedRanges) MemRange(off int64, n int) []byte {
	if r.cache == nil || off < 0 || off >= r.offsets[len(r.chunks)] || n <= 0 {
		return nil
	}
	i := r.chunkAt(off)
	d := r.chunks[i].Digest
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.pinned[d]
	if !ok {
		if e, ok = r.cache.get(d, r.firstAskLocked(d)); !ok {
			return nil
		}
		if r.pinned == nil {
			r.pinned = map[castore.Digest]*cachedChunk{}
		}
		r.pinned[d] = e
	}
	data := e.data[off-r.offsets[i]:]
	return data[:min(len(data), n)]
}

func (r *verifiedRanges) chunkAt(off int64) int {
	lo, hi := 0, len(r.chunks)
	for lo < hi {
		mid := (lo + hi) / 2
		if r.offsets[mid+1] > off {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// verifiedBacking remembers the blobs whose backing files were verified:
// a passthrough file is read by the kernel, never by us, so it is checked
// once, when first handed out, and not again for every open.
type verifiedBacking struct {
	mu   sync.Mutex
	seen map[castore.Digest]struct{}
}

// maxVerifiedBacking bounds the record; past it, it starts afresh (and
// files are checked again), which only costs time.
const maxVerifiedBacking = 1 << 16

func (v *verifiedBacking) check(d castore.Digest, f *os.File, size int64) bool {
	v.mu.Lock()
	_, ok := v.seen[d]
	v.mu.Unlock()
	if ok || unverifiedReads {
		return true
	}
	got, err := hashRange(f, 0, size)
	if err != nil || got != d {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil || len(v.seen) >= maxVerifiedBacking {
		v.seen = map[castore.Digest]struct{}{}
	}
	v.seen[d] = struct{}{}
	return true
}
