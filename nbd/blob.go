package nbd

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/tvix-go/tvix/castore"
)

// BlobDisk is a read-only disk whose bytes are a castore blob (an image
// ingested by `tvix castore import-image`). It fetches the blob's chunks
// from the BlobService only when a read touches them and keeps the most
// recent ones, so a guest that reads a few files of a large image costs a
// few chunks, not the image.
type BlobDisk struct {
	ctx    context.Context
	blobs  castore.BlobService
	digest castore.Digest
	size   int64

	// chunks and offsets describe a chunked blob; offsets[i] is where
	// chunk i starts, offsets[len(chunks)] the size.
	chunks  []castore.ChunkMeta
	offsets []int64
	// whole reads a blob the service does not split any finer (it then
	// decides what to fetch).
	whole castore.BlobReader

	mu       sync.Mutex
	cache    map[int]*list.Element // chunk index → LRU element holding *cached
	lru      *list.List
	maxCache int

	chunksFetched, bytesFetched, bytesRead atomic.Int64
}

type cached struct {
	idx  int
	data []byte
	err  error
	done chan struct{} // closed once data/err are set
}

// DiskStats are what a BlobDisk fetched from the BlobService.
type DiskStats struct {
	Size          int64 // blob (disk) size
	Chunks        int   // chunks the blob is stored as (1 if unsplit)
	ChunksFetched int64 // chunk fetches from the BlobService (a chunk evicted and read again counts twice)
	BytesFetched  int64 // bytes those fetches returned
	BytesRead     int64 // bytes the NBD client asked for
}

// DefaultCacheChunks is how many chunks a BlobDisk keeps (with the
// default chunker, about 256 KiB each).
const DefaultCacheChunks = 64

// OpenBlob opens the blob d of blobs as a disk. ctx bounds the fetches.
func OpenBlob(ctx context.Context, blobs castore.BlobService, d castore.Digest) (*BlobDisk, error) {
	chunks, err := blobs.Chunks(ctx, d)
	if err != nil {
		if errors.Is(err, castore.ErrNotFound) {
			return nil, fmt.Errorf("disk %s: no such blob in the blob service (import the image with `tvix castore import-image`): %w", d, err)
		}
		return nil, fmt.Errorf("disk %s: list chunks: %w", d, err)
	}
	b := &BlobDisk{ctx: ctx, blobs: blobs, digest: d, cache: map[int]*list.Element{}, lru: list.New(), maxCache: DefaultCacheChunks}
	if len(chunks) == 0 {
		r, err := blobs.Open(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("disk %s: open blob: %w", d, err)
		}
		b.whole, b.size = r, r.Size()
		return b, nil
	}
	b.chunks = chunks
	b.offsets = make([]int64, len(chunks)+1)
	for i, c := range chunks {
		b.offsets[i+1] = b.offsets[i] + int64(c.Size)
	}
	b.size = b.offsets[len(chunks)]
	return b, nil
}

// Size is the disk size in bytes.
func (b *BlobDisk) Size() int64 { return b.size }

// Digest is the blob served.
func (b *BlobDisk) Digest() castore.Digest { return b.digest }

// Stats reports what was fetched so far.
func (b *BlobDisk) Stats() DiskStats {
	n := len(b.chunks)
	if b.whole != nil {
		n = 1
	}
	return DiskStats{Size: b.size, Chunks: n, ChunksFetched: b.chunksFetched.Load(),
		BytesFetched: b.bytesFetched.Load(), BytesRead: b.bytesRead.Load()}
}

// Export is the disk as an NBD export called name.
func (b *BlobDisk) Export(name string) Export {
	return Export{Name: name, Size: b.size, Data: b}
}

// Close releases the reader of an unsplit blob.
func (b *BlobDisk) Close() error {
	if b.whole != nil {
		return b.whole.Close()
	}
	return nil
}

// ReadAt reads from the chunks covering [off, off+len(p)), fetching those
// not cached. It is safe for concurrent use; concurrent reads of the same
// chunk fetch it once.
func (b *BlobDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("disk %s: negative offset", b.digest)
	}
	b.bytesRead.Add(int64(len(p)))
	if b.whole != nil {
		n, err := b.whole.ReadAt(p, off)
		if n > 0 {
			// The service decides what it fetches; count what was asked.
			b.bytesFetched.Add(int64(n))
		}
		return n, err
	}
	n := 0
	for len(p) > 0 {
		if off >= b.size {
			return n, io.EOF
		}
		i := sort.Search(len(b.chunks), func(i int) bool { return b.offsets[i+1] > off })
		data, err := b.chunk(i)
		if err != nil {
			return n, err
		}
		m := copy(p, data[off-b.offsets[i]:])
		n += m
		off += int64(m)
		p = p[m:]
	}
	return n, nil
}

// chunk returns chunk i's bytes from the cache or the BlobService.
func (b *BlobDisk) chunk(i int) ([]byte, error) {
	b.mu.Lock()
	if e, ok := b.cache[i]; ok {
		b.lru.MoveToFront(e)
		c := e.Value.(*cached)
		b.mu.Unlock()
		<-c.done
		return c.data, c.err
	}
	c := &cached{idx: i, done: make(chan struct{})}
	b.cache[i] = b.lru.PushFront(c)
	for b.lru.Len() > b.maxCache {
		old := b.lru.Back()
		b.lru.Remove(old)
		delete(b.cache, old.Value.(*cached).idx)
	}
	b.mu.Unlock()

	c.data, c.err = b.fetch(i)
	if c.err != nil {
		// Do not keep a failure: the next read tries again.
		b.mu.Lock()
		if e, ok := b.cache[i]; ok && e.Value.(*cached) == c {
			b.lru.Remove(e)
			delete(b.cache, i)
		}
		b.mu.Unlock()
	}
	close(c.done)
	return c.data, c.err
}

func (b *BlobDisk) fetch(i int) ([]byte, error) {
	ch := b.chunks[i]
	r, err := b.blobs.Open(b.ctx, ch.Digest)
	if err != nil {
		return nil, fmt.Errorf("disk %s: chunk %d (%s): %w", b.digest, i, ch.Digest, err)
	}
	defer r.Close()
	data := make([]byte, ch.Size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, fmt.Errorf("disk %s: read chunk %d (%s): %w", b.digest, i, ch.Digest, err)
	}
	// A chunk is content-addressed: check it, as a guest would otherwise
	// read silently corrupted bytes.
	if got := castore.HashBlob(data); got != ch.Digest {
		return nil, fmt.Errorf("disk %s: chunk %d should hash to %s, got %s", b.digest, i, ch.Digest, got)
	}
	b.chunksFetched.Add(1)
	b.bytesFetched.Add(int64(len(data)))
	return data, nil
}
