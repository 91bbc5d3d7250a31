package narcastore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"lukechampine.com/blake3"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/dirstore"
)

// memBlobs is a minimal BlobService for these tests, independent of the
// real backends.
type memBlobs struct {
	mu    sync.Mutex
	blobs map[castore.Digest][]byte
	// discard hashes without storing (benchmarks); nohash does not even
	// hash (every blob gets the zero digest), to measure our allocations
	// without the BLAKE3 library's.
	discard, nohash bool
}

func newMemBlobs() *memBlobs { return &memBlobs{blobs: map[castore.Digest][]byte{}} }

func (m *memBlobs) Has(_ context.Context, d castore.Digest) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.blobs[d]
	return ok, nil
}

type blobReader struct{ *bytes.Reader }

func (blobReader) Close() error { return nil }

func (m *memBlobs) Open(_ context.Context, d castore.Digest) (castore.BlobReader, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[d]
	if !ok {
		return nil, fmt.Errorf("open blob %s: %w", d, castore.ErrNotFound)
	}
	return blobReader{bytes.NewReader(b)}, nil
}

type blobWriter struct {
	m   *memBlobs
	buf bytes.Buffer
	h   *blake3.Hasher
}

func (w *blobWriter) Write(p []byte) (int, error) {
	if w.m.nohash {
		return len(p), nil
	}
	w.h.Write(p)
	if !w.m.discard {
		w.buf.Write(p)
	}
	return len(p), nil
}

func (w *blobWriter) Close() (castore.Digest, error) {
	var d castore.Digest
	w.h.Sum(d[:0])
	w.h.Reset()
	hasherPool.Put(w.h)
	if !w.m.discard {
		w.m.mu.Lock()
		w.m.blobs[d] = w.buf.Bytes()
		w.m.mu.Unlock()
	}
	return d, nil
}

func (w *blobWriter) Abort() {}

// hasherPool keeps the fake's per-blob cost near what a tuned backend
// pays, so benchmarks measure the NAR side.
var hasherPool = sync.Pool{New: func() any { return blake3.New(32, nil) }}

func (m *memBlobs) Put(context.Context, ...castore.PutOption) (castore.BlobWriter, error) {
	return &blobWriter{m: m, h: hasherPool.Get().(*blake3.Hasher)}, nil
}

func (m *memBlobs) Chunks(context.Context, castore.Digest) ([]castore.ChunkMeta, error) {
	return nil, nil
}
func (m *memBlobs) Close() error { return nil }

// countingDirs records every directory that enters the store.
type countingDirs struct {
	*dirstore.Memory
	mu  sync.Mutex
	put int
}

func newCountingDirs() *countingDirs { return &countingDirs{Memory: dirstore.NewMemory()} }

type countingPutter struct {
	castore.DirectoryPutter
	c *countingDirs
	n int
}

func (p *countingPutter) Put(d *castorev1.Directory) error {
	p.n++
	return p.DirectoryPutter.Put(d)
}

func (p *countingPutter) Close() (castore.Digest, error) {
	d, err := p.DirectoryPutter.Close()
	if err == nil {
		p.c.mu.Lock()
		p.c.put += p.n
		p.c.mu.Unlock()
	}
	return d, err
}

func (c *countingDirs) PutMultiple(ctx context.Context) castore.DirectoryPutter {
	return &countingPutter{DirectoryPutter: c.Memory.PutMultiple(ctx), c: c}
}

func (c *countingDirs) stored() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.put
}

var _ io.Reader = blobReader{}
