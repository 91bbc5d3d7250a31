package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/chunkedread"
	"github.com/tvix-go/tvix/castore/chunker"
	"github.com/tvix-go/tvix/internal/touchlog"
)

// Store is a chunking BlobService over a backend.
type Store struct {
	b                   backend
	cdc                 *chunker.Chunker
	smallBufs, fullBufs sync.Pool
	backing             verifiedBacking
	cache               atomic.Pointer[chunkCache] // nil: none
	// touch remembers what uploads and readers use, which a sweep keeps
	// (see castore.Collectable).
	touch *touchlog.Log
}

var _ castore.BlobService = (*Store)(nil)

func newStore(b backend) *Store {
	s := &Store{b: b, cdc: chunker.MustNew(chunker.Default), touch: touchlog.New()}
	if t, ok := b.(touchingBackend); ok {
		t.setTouchLog(s.touch)
	}
	return s
}

// Has counts as a use: a caller that skips an upload because the blob is
// there will name it soon, and a sweep must not take it meanwhile.
func (s *Store) Has(_ context.Context, d castore.Digest) (ok bool, err error) {
	s.touch.Guard(func() {
		var l manifestLookup
		if ok, l, err = s.has(d); ok && err == nil {
			ok = s.touchBlob(d, l)
		}
	})
	return ok, err
}

// manifestLookup is a blob's chunk list as has found it, so that touching
// the blob does not ask the backend again (an S3 GET, for the object-store
// layout); looked is false when has did not read it.
type manifestLookup struct {
	m      []castore.ChunkMeta
	looked bool
}

func (s *Store) has(d castore.Digest) (bool, manifestLookup, error) {
	if sb, ok := s.b.(syncingBackend); ok {
		ok, err := sb.hasDurable(d)
		return ok, manifestLookup{}, err
	}
	m, ok, err := s.b.manifest(d)
	if err != nil || ok {
		return ok, manifestLookup{m, true}, err
	}
	ok, err = s.b.hasChunk(d)
	return ok, manifestLookup{nil, true}, err // a single chunk: no list
}

// touchBlob touches a blob and its chunks: a sweep decides about chunks
// one by one, and a blob whose chunk list stays is of no use without them.
// It reports false when a store shared with other processes lost the
// blob to one of their sweeps meanwhile.
func (s *Store) touchBlob(d castore.Digest, l manifestLookup) bool {
	s.touch.Touch(d)
	m := l.m
	if !l.looked {
		var ok bool
		var err error
		if m, ok, err = s.b.manifest(d); err != nil || !ok {
			m = nil
		}
	}
	for _, c := range m {
		s.touch.Touch(c.Digest)
	}
	if st, shared := s.b.(sharedToucher); shared {
		return st.touchShared(d, m)
	}
	return true
}

// Chunks counts as a use: a client reads the chunks it lists next.
func (s *Store) Chunks(_ context.Context, d castore.Digest) (m []castore.ChunkMeta, err error) {
	s.touch.Guard(func() { m, err = s.chunks(d) })
	return m, err
}

func (s *Store) chunks(d castore.Digest) ([]castore.ChunkMeta, error) {
	m, ok, err := s.b.manifest(d)
	if err != nil {
		return nil, fmt.Errorf("stat blob %s: %w", d, err)
	}
	if ok {
		s.touch.Touch(d)
		for _, c := range m {
			s.touch.Touch(c.Digest)
		}
		return m, nil
	}
	has, err := s.b.hasChunk(d)
	if err != nil {
		return nil, fmt.Errorf("stat blob %s: %w", d, err)
	}
	if !has {
		return nil, fmt.Errorf("stat blob %s: %w", d, castore.ErrNotFound)
	}
	s.touch.Touch(d)
	return nil, nil
}

// Open holds the blob and its chunks until the reader is closed: a sweep
// never takes a chunk from under a reader.
func (s *Store) Open(_ context.Context, d castore.Digest) (r castore.BlobReader, err error) {
	var release func()
	s.touch.Guard(func() {
		if r, err = s.open(d); err == nil {
			ds := []castore.Digest{d}
			m, _, _ := s.b.manifest(d)
			for _, c := range m {
				ds = append(ds, c.Digest)
			}
			release = touchlog.Hold(s.touch, ds...)
			if st, shared := s.b.(sharedToucher); shared {
				// Other processes' sweeps see the read by the files' times.
				st.touchShared(d, m)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return &heldReader{BlobReader: r, release: release}, nil
}

func (s *Store) open(d castore.Digest) (castore.BlobReader, error) {
	m, ok, err := s.b.manifest(d)
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	if !ok {
		cr, size, err := s.openVerified(d)
		if err != nil {
			return nil, fmt.Errorf("open blob %s: %w", d, err)
		}
		sr := &singleReader{SectionReader: io.NewSectionReader(cr, 0, size), c: cr}
		if pc, ok := cr.(fileChunk); ok {
			sr.f, sr.fileOff = pc.f, pc.off
		}
		return sr, nil
	}
	l, ok := s.b.(locator)
	if !ok {
		return chunkedread.New(d, m, s.openVerified, nil), nil
	}
	return newVerifiedRanges(s, d, m, l), nil
}

func (s *Store) Put(_ context.Context, opts ...castore.PutOption) (castore.BlobWriter, error) {
	t, err := s.b.newTxn()
	if err != nil {
		return nil, fmt.Errorf("put blob: %w", err)
	}
	return &writer{s: s, t: t, opts: castore.ApplyPutOptions(opts), buf: s.getBuf()}, nil
}

// A writer's buffer starts at smallWriterBuf and is replaced by one of
// two maximum chunks (what chunking a larger blob needs) once its blob
// outgrows it: most blobs (a .drv, a source file) are far smaller than a
// chunk, and a process writing many of them at once kept megabytes of
// buffers for kilobytes of data. Two sizes, each pooled, keep imports of
// many files from allocating a buffer per file and cost a larger blob at
// most one copy of smallWriterBuf bytes.
const smallWriterBuf = 64 << 10

func (s *Store) getBuf() []byte {
	if b, ok := s.smallBufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, smallWriterBuf)
}

func (s *Store) fullBufSize() int { return 2 * s.cdc.Params().Max }

func (s *Store) getFullBuf() []byte {
	if b, ok := s.fullBufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, s.fullBufSize())
}

func (s *Store) putBuf(b []byte) {
	switch cap(b) {
	case smallWriterBuf:
		s.smallBufs.Put(&b)
	case s.fullBufSize():
		s.fullBufs.Put(&b)
	}
}

// BackingFile returns a local file whose contents are exactly the blob,
// when the store keeps it that way (castore.BackingFiler).
func (s *Store) BackingFile(_ context.Context, d castore.Digest) (*os.File, int64, bool) {
	bf, ok := s.b.(backingFiler)
	if !ok {
		return nil, 0, false
	}
	f, size, ok := bf.backingFile(d)
	if !ok || !s.backing.check(d, f, size) {
		// A corrupt file is not handed out: reads then go through Open,
		// whose chunks are verified, and fail there naming the chunk.
		return nil, 0, false
	}
	return f, size, true
}

// Sync makes every blob closed so far durable (castore.Syncer). Once a
// failed flush has lost deferred blobs that is no longer true, and Sync
// says so until the store is reopened.
func (s *Store) Sync(context.Context) error {
	if sb, ok := s.b.(syncingBackend); ok {
		if err := sb.sync(); err != nil {
			return fmt.Errorf("sync blobs: %w", err)
		}
	}
	return nil
}

// Close makes deferred blobs durable first: a clean exit keeps everything
// whose Put was closed.
func (s *Store) Close() error {
	s.SetChunkCache(0)
	var err error
	if sb, ok := s.b.(syncingBackend); ok {
		err = sb.sync()
	}
	if cerr := s.b.close(); err == nil {
		err = cerr
	}
	return err
}

// writer hashes the whole blob as it streams by and cuts the stream into
// chunks, staging each as soon as its boundary is known, so memory stays at
// two maximum chunk sizes whatever the blob size.
type writer struct {
	s      *Store
	t      txn
	opts   castore.PutOptions
	h      *serialHasher
	buf    []byte
	chunks []castore.ChunkMeta
	size   uint64
	err    error
	done   bool
	// spilled: chunks were cut before Close, and h has seen every byte.
	// Until then h is not fed: a blob that turns out to be one chunk is
	// named by that chunk's digest, so most files are hashed once, not
	// twice.
	spilled bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("put blob: write after close")
	}
	w.size += uint64(len(p))
	n := len(p)
	max := w.s.cdc.Params().Max
	for len(p) > 0 {
		if err := w.makeRoom(); err != nil {
			return 0, err
		}
		k := cap(w.buf) - len(w.buf)
		if k > len(p) {
			k = len(p)
		}
		w.buf = append(w.buf, p[:k]...)
		if w.spilled {
			w.h.Write(p[:k])
		}
		p = p[k:]
		if len(w.buf) >= max {
			if err := w.flush(false); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// ReadFrom reads straight into the chunking buffer, saving the copy that
// io.Copy's own buffer would cost.
func (w *writer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	max := w.s.cdc.Params().Max
	for {
		if w.err != nil {
			return total, w.err
		}
		if w.done {
			return total, errors.New("put blob: write after close")
		}
		if err := w.makeRoom(); err != nil {
			return total, err
		}
		n, err := r.Read(w.buf[len(w.buf):cap(w.buf)])
		if n > 0 {
			if w.spilled {
				w.h.Write(w.buf[len(w.buf) : len(w.buf)+n])
			}
			w.size += uint64(n)
			w.buf = w.buf[:len(w.buf)+n]
			total += int64(n)
			if len(w.buf) >= max {
				if err := w.flush(false); err != nil {
					return total, err
				}
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// makeRoom swaps a full small buffer for a full-size one. A full-size
// buffer does not fill (once a maximum chunk has arrived, flush cuts it
// and leaves less than one behind); if it did, a flush makes room.
func (w *writer) makeRoom() error {
	if len(w.buf) < cap(w.buf) {
		return nil
	}
	if cap(w.buf) >= w.s.fullBufSize() {
		return w.flush(false)
	}
	full := w.s.getFullBuf()[:len(w.buf)]
	copy(full, w.buf)
	w.s.putBuf(w.buf)
	w.buf = full
	return nil
}

// flush stages chunks from the buffer; without final it keeps the tail
// whose boundary depends on bytes still to come.
func (w *writer) flush(final bool) error {
	if !w.spilled {
		// The whole-blob hasher is made only now: most blobs are one
		// chunk and never need it (a hasher is several KiB).
		w.h = new(serialHasher)
		w.h.Write(w.buf)
		w.spilled = true
		if lh, ok := w.t.(largeBlobHinter); ok && !final {
			lh.largeBlob()
		}
	}
	max := w.s.cdc.Params().Max
	off := 0
	for len(w.buf)-off >= max || (final && off < len(w.buf)) {
		n := w.s.cdc.Cut(w.buf[off:])
		if err := w.stage(w.buf[off : off+n]); err != nil {
			return err
		}
		off += n
	}
	w.buf = w.buf[:copy(w.buf, w.buf[off:])]
	return nil
}

func (w *writer) stage(chunk []byte) error {
	d := blake3Serial(chunk)
	if err := w.t.stageChunk(d, chunk); err != nil {
		w.err = fmt.Errorf("put blob: stage chunk %s: %w", d, err)
		w.t.abort()
		return w.err
	}
	w.chunks = append(w.chunks, castore.ChunkMeta{Digest: d, Size: uint64(len(chunk))})
	return nil
}

func (w *writer) Close() (castore.Digest, error) {
	if w.err != nil {
		return castore.Digest{}, w.err
	}
	if w.done {
		return castore.Digest{}, errors.New("put blob: closed twice")
	}
	w.done = true
	var err error
	single := false
	if !w.spilled && len(w.buf) > 0 && w.s.cdc.Cut(w.buf) == len(w.buf) {
		single = true
		err = w.stage(w.buf)
	} else {
		err = w.flush(true)
	}
	w.s.putBuf(w.buf)
	w.buf = nil
	if err != nil {
		return castore.Digest{}, err
	}
	var d castore.Digest
	if single {
		d = w.chunks[0].Digest // the blob is its only chunk
	} else {
		d = w.h.Sum()
	}
	if w.opts.HasExpected && d != w.opts.Expected {
		w.t.abort()
		w.err = fmt.Errorf("put blob: contents hash to %s, not the expected %s", d, w.opts.Expected)
		return castore.Digest{}, w.err
	}
	if w.size == 0 {
		// The empty blob has no chunk to hold it; store it as one empty chunk.
		if err := w.stage(nil); err != nil {
			return castore.Digest{}, err
		}
	}
	var manifest []castore.ChunkMeta
	if len(w.chunks) > 1 {
		manifest = w.chunks
	}
	// The writer names the blob next: a sweep keeps it (and its chunks,
	// some perhaps found stored and not written) until then. Touched
	// before the commit: a sweep that sees the blob indexed sees it
	// touched too.
	w.s.touch.Touch(d)
	for _, c := range w.chunks {
		w.s.touch.Touch(c.Digest)
	}
	if err := w.t.commit(d, manifest, w.opts.DeferSync); err != nil {
		w.err = fmt.Errorf("put blob %s: %w", d, err)
		return castore.Digest{}, w.err
	}
	return d, nil
}

func (w *writer) Abort() {
	if !w.done {
		w.done = true
		w.s.putBuf(w.buf)
		w.buf = nil
		w.err = errors.New("put blob: aborted")
		w.t.abort()
	}
}

type singleReader struct {
	*io.SectionReader
	c chunkReader
	// f, when set, holds the blob's bytes from fileOff on.
	f       *os.File
	fileOff int64
}

func (r *singleReader) FileRange(off int64, n int) (*os.File, int64, int) {
	if r.f == nil || off < 0 || off >= r.Size() {
		return nil, 0, 0
	}
	return r.f, r.fileOff + off, int(min(int64(n), r.Size()-off))
}

// MemRange serves memRanger when the chunk cache holds the blob.
func (r *singleReader) MemRange(off int64, n int) []byte {
	mc, ok := r.c.(*memChunk)
	if !ok || off < 0 || off >= int64(len(mc.e.data)) || n <= 0 {
		return nil
	}
	return mc.e.data[off:min(int64(len(mc.e.data)), off+int64(n))]
}

func (r *singleReader) Close() error { return r.c.Close() }

// heldReader releases the sweep's hold on a blob when closed.
type heldReader struct {
	castore.BlobReader
	release func()
}

func (r *heldReader) Close() error {
	err := r.BlobReader.Close()
	r.release()
	return err
}

func (r *heldReader) FileRange(off int64, n int) (*os.File, int64, int) {
	if fr, ok := r.BlobReader.(castore.FileRanger); ok {
		return fr.FileRange(off, n)
	}
	return nil, 0, 0
}

// memRanger is a blob reader that can hand out verified bytes it holds in
// memory (the chunk cache's), so a server writes them without a copy.
type memRanger interface {
	MemRange(off int64, n int) []byte
}

func (r *heldReader) MemRange(off int64, n int) []byte {
	if mr, ok := r.BlobReader.(memRanger); ok {
		return mr.MemRange(off, n)
	}
	return nil
}

// SetChunkCache keeps up to max bytes of verified chunks in memory (0 or
// less: none), so that chunks read often are not read from disk and
// hashed on every read; see chunkCache. Servers of many readers (nar-bridge)
// set it; a process that reads each blob once gains nothing from it. Call
// it again to resize it (it starts empty). While the system is short of
// memory the cache holds less than max (chunkCache.adapt).
func (s *Store) SetChunkCache(max int64) {
	var c *chunkCache
	if max > 0 {
		c = newChunkCache(max)
		go c.watchMemory()
	}
	if old := s.cache.Swap(c); old != nil {
		old.drop()
	}
}
