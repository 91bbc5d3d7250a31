package castoregrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"lukechampine.com/blake3"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/chunkedread"
	"github.com/tvix-go/tvix/internal/grpcstatus"
)

// fromWire lets errors.Is see castore.ErrNotFound and the context errors
// in what the server or the transport answered.
func fromWire(err error) error { return grpcstatus.FromStatus(err, castore.ErrNotFound) }

func fromStatus(what string, err error) error { return fmt.Errorf("%s: %w", what, fromWire(err)) }

// BlobClient is a BlobService backed by a remote one. Blobs the server
// reports as chunked are read chunk by chunk, each verified against its
// digest, so a read at an offset transfers only the chunks covering it.
type BlobClient struct {
	c     castorev1.BlobServiceClient
	conn  io.Closer
	cache *chunkCache
	// received counts blob bytes read from the server, for reports of
	// what a lazy reader (a remote builder) fetched.
	received atomic.Uint64
}

// ReceivedBytes is how many blob bytes this client has read from the
// server so far.
func (c *BlobClient) ReceivedBytes() uint64 { return c.received.Load() }

// NewBlobClient uses conn; closing the client closes conn if closer is set.
func NewBlobClient(conn grpc.ClientConnInterface, closer io.Closer) *BlobClient {
	return &BlobClient{c: castorev1.NewBlobServiceClient(conn), conn: closer, cache: newChunkCache(64)}
}

func (c *BlobClient) Has(ctx context.Context, d castore.Digest) (bool, error) {
	_, err := c.c.Stat(ctx, &castorev1.StatBlobRequest{Digest: d.Bytes()})
	if err = fromWire(err); errors.Is(err, castore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return true, nil
}

func (c *BlobClient) Chunks(ctx context.Context, d castore.Digest) ([]castore.ChunkMeta, error) {
	resp, err := c.c.Stat(ctx, &castorev1.StatBlobRequest{Digest: d.Bytes(), SendChunks: true})
	if err != nil {
		return nil, fromStatus("stat blob "+d.String(), err)
	}
	out := make([]castore.ChunkMeta, len(resp.GetChunks()))
	for i, ch := range resp.GetChunks() {
		cd, err := castore.DigestFromBytes(ch.GetDigest())
		if err != nil {
			return nil, fmt.Errorf("stat blob %s: chunk %d: %w", d, i, err)
		}
		out[i] = castore.ChunkMeta{Digest: cd, Size: ch.GetSize()}
	}
	return out, nil
}

// fetch reads a whole blob that is known to be small (a chunk, or a blob
// of one chunk) and verifies it: the server is not trusted.
func (c *BlobClient) fetch(ctx context.Context, d castore.Digest) ([]byte, error) {
	if b, ok := c.cache.get(d); ok {
		return b, nil
	}
	stream, err := c.c.Read(ctx, &castorev1.ReadBlobRequest{Digest: d.Bytes()})
	if err != nil {
		return nil, fromStatus("read blob "+d.String(), err)
	}
	var buf bytes.Buffer
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fromStatus("read blob "+d.String(), err)
		}
		buf.Write(msg.GetData())
		c.received.Add(uint64(len(msg.GetData())))
	}
	if got := castore.Digest(blake3.Sum256(buf.Bytes())); got != d {
		return nil, fmt.Errorf("read blob %s: server sent data hashing to %s", d, got)
	}
	c.cache.put(d, buf.Bytes())
	return buf.Bytes(), nil
}

func (c *BlobClient) Open(ctx context.Context, d castore.Digest) (castore.BlobReader, error) {
	chunks, err := c.Chunks(ctx, d)
	if err != nil {
		return nil, err
	}
	if len(chunks) <= 1 {
		return newStreamReader(ctx, c.c, d, &c.received)
	}
	return newRemoteChunkedReader(ctx, c, d, chunks), nil
}

func (c *BlobClient) Put(ctx context.Context, opts ...castore.PutOption) (castore.BlobWriter, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.c.Put(ctx)
	if err != nil {
		cancel()
		return nil, fromStatus("put blob", err)
	}
	return &remoteWriter{stream: stream, cancel: cancel, opts: castore.ApplyPutOptions(opts), h: blake3.New(32, nil)}, nil
}

func (c *BlobClient) Close() error {
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
}

type remoteWriter struct {
	stream castorev1.BlobService_PutClient
	cancel context.CancelFunc
	opts   castore.PutOptions
	h      *blake3.Hasher
	err    error
}

func (w *remoteWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.h.Write(p)
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), readChunkSize)
		if err := w.stream.Send(&castorev1.BlobChunk{Data: p[:k]}); err != nil {
			w.err = fromStatus("put blob", err)
			return 0, w.err
		}
		p = p[k:]
	}
	return n, nil
}

func (w *remoteWriter) Close() (castore.Digest, error) {
	defer w.cancel()
	if w.err != nil {
		return castore.Digest{}, w.err
	}
	var local castore.Digest
	w.h.Sum(local[:0])
	if w.opts.HasExpected && local != w.opts.Expected {
		// Cancelling the stream makes the server drop what it received.
		w.err = fmt.Errorf("put blob: contents hash to %s, not the expected %s", local, w.opts.Expected)
		return castore.Digest{}, w.err
	}
	resp, err := w.stream.CloseAndRecv()
	if err != nil {
		return castore.Digest{}, fromStatus("put blob", err)
	}
	d, err := castore.DigestFromBytes(resp.GetDigest())
	if err != nil {
		return castore.Digest{}, fmt.Errorf("put blob: server answered: %w", err)
	}
	if d != local {
		return castore.Digest{}, fmt.Errorf("put blob: server computed %s, we computed %s", d, local)
	}
	return d, nil
}

func (w *remoteWriter) Abort() {
	if w.err == nil {
		w.err = errors.New("put blob: aborted")
	}
	w.cancel()
}

// streamReader reads an unchunked remote blob as one stream; a backwards
// seek or ReadAt restarts the stream, so it is for sequential use.
type streamReader struct {
	ctx    context.Context
	c      castorev1.BlobServiceClient
	d      castore.Digest
	mu     sync.Mutex
	stream castorev1.BlobService_ReadClient
	cancel context.CancelFunc
	buf    []byte
	pos    int64 // position of the stream (after buf)
	want   int64 // position the caller is at
	size   int64
	h      *blake3.Hasher // verifies a read from the start to the end
	// received is the client's counter.
	received *atomic.Uint64
}

func newStreamReader(ctx context.Context, c castorev1.BlobServiceClient, d castore.Digest, received *atomic.Uint64) (*streamReader, error) {
	r := &streamReader{ctx: ctx, c: c, d: d, size: -1, received: received}
	if err := r.restart(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *streamReader) restart() error {
	if r.cancel != nil {
		r.cancel()
	}
	ctx, cancel := context.WithCancel(r.ctx)
	stream, err := r.c.Read(ctx, &castorev1.ReadBlobRequest{Digest: r.d.Bytes()})
	if err != nil {
		cancel()
		return fromStatus("read blob "+r.d.String(), err)
	}
	r.stream, r.cancel, r.buf, r.pos, r.h = stream, cancel, nil, 0, blake3.New(32, nil)
	return nil
}

// Size is learnt by reading to the end once if needed: the protocol's Stat
// carries no size for an unchunked blob.
func (r *streamReader) Size() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.size < 0 {
		want := r.want
		r.want = 1 << 62
		_, _ = r.readLocked(nil)
		r.want = want
	}
	return r.size
}

func (r *streamReader) readLocked(p []byte) (int, error) {
	if r.want < r.pos-int64(len(r.buf)) {
		if err := r.restart(); err != nil {
			return 0, err
		}
	}
	for {
		start := r.pos - int64(len(r.buf))
		if r.want >= start && r.want < r.pos {
			n := copy(p, r.buf[r.want-start:])
			r.want += int64(n)
			if n > 0 || len(p) == 0 {
				return n, nil
			}
		}
		msg, err := r.stream.Recv()
		if err == io.EOF {
			r.size = r.pos
			var got castore.Digest
			r.h.Sum(got[:0])
			if got != r.d {
				return 0, fmt.Errorf("read blob %s: server sent data hashing to %s", r.d, got)
			}
			return 0, io.EOF
		}
		if err != nil {
			return 0, fromStatus("read blob "+r.d.String(), err)
		}
		r.h.Write(msg.GetData())
		r.received.Add(uint64(len(msg.GetData())))
		r.buf = msg.GetData()
		r.pos += int64(len(r.buf))
	}
}

func (r *streamReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readLocked(p)
}

func (r *streamReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	save := r.want
	defer func() { r.want = save }()
	r.want = off
	n := 0
	for n < len(p) {
		m, err := r.readLocked(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (r *streamReader) Seek(offset int64, whence int) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.want
	case io.SeekEnd:
		if r.size < 0 {
			return 0, fmt.Errorf("seek blob %s: size unknown before reading to the end", r.d)
		}
		offset += r.size
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek blob %s: negative position", r.d)
	}
	r.want = offset
	return offset, nil
}

func (r *streamReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
	return nil
}

// chunkCache keeps recently fetched chunks, so sequential and nearby reads
// do not fetch a chunk twice.
type chunkCache struct {
	mu    sync.Mutex
	max   int
	order []castore.Digest
	m     map[castore.Digest][]byte
}

func newChunkCache(max int) *chunkCache { return &chunkCache{max: max, m: map[castore.Digest][]byte{}} }

func (c *chunkCache) get(d castore.Digest) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[d]
	return b, ok
}

func (c *chunkCache) put(d castore.Digest, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[d]; ok {
		return
	}
	if len(c.order) >= c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.order = append(c.order, d)
	c.m[d] = b
}

// bytesChunk is a fetched chunk, its bytes shared with the client's cache.
type bytesChunk struct{ *bytes.Reader }

func (bytesChunk) Close() error { return nil }

// newRemoteChunkedReader reads a chunked blob chunk by chunk, each fetched
// (verified, cached) only when a read covers it.
func newRemoteChunkedReader(ctx context.Context, c *BlobClient, d castore.Digest, chunks []castore.ChunkMeta) castore.BlobReader {
	fetch := func(cd castore.Digest) (chunkedread.Chunk, int64, error) {
		data, err := c.fetch(ctx, cd)
		if err != nil {
			return nil, 0, err
		}
		return bytesChunk{bytes.NewReader(data)}, int64(len(data)), nil
	}
	return chunkedread.New(d, chunks, fetch, nil)
}

// DirectoryClient is a DirectoryService backed by a remote one; everything
// received is validated, and closures are checked to be complete.
type DirectoryClient struct {
	c    castorev1.DirectoryServiceClient
	conn io.Closer
}

func NewDirectoryClient(conn grpc.ClientConnInterface, closer io.Closer) *DirectoryClient {
	return &DirectoryClient{c: castorev1.NewDirectoryServiceClient(conn), conn: closer}
}

func (c *DirectoryClient) Get(ctx context.Context, d castore.Digest) (*castorev1.Directory, error) {
	stream, err := c.c.Get(ctx, &castorev1.GetDirectoryRequest{ByWhat: &castorev1.GetDirectoryRequest_Digest{Digest: d.Bytes()}})
	if err != nil {
		return nil, fromStatus("get directory "+d.String(), err)
	}
	dir, err := stream.Recv()
	if err != nil {
		return nil, fromStatus("get directory "+d.String(), err)
	}
	if got := castore.DirectoryDigest(dir); got != d {
		return nil, fmt.Errorf("get directory %s: server sent directory %s", d, got)
	}
	if err := castore.ValidateDirectory(dir); err != nil {
		return nil, fmt.Errorf("get directory %s: %w", d, err)
	}
	return dir, nil
}

func (c *DirectoryClient) GetRecursive(ctx context.Context, root castore.Digest) iter.Seq2[*castorev1.Directory, error] {
	return func(yield func(*castorev1.Directory, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.c.Get(ctx, &castorev1.GetDirectoryRequest{ByWhat: &castorev1.GetDirectoryRequest_Digest{Digest: root.Bytes()}, Recursive: true})
		if err != nil {
			yield(nil, fromStatus("get directory closure "+root.String(), err))
			return
		}
		expected := map[castore.Digest]bool{root: true}
		received := map[castore.Digest]bool{}
		for {
			dir, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				yield(nil, fromStatus("get directory closure "+root.String(), err))
				return
			}
			d := castore.DirectoryDigest(dir)
			if !expected[d] || received[d] {
				yield(nil, fmt.Errorf("get directory closure %s: server sent unexpected directory %s", root, d))
				return
			}
			if err := castore.ValidateDirectory(dir); err != nil {
				yield(nil, fmt.Errorf("get directory closure %s: %w", root, err))
				return
			}
			received[d] = true
			for _, n := range dir.GetDirectories() {
				cd, _ := castore.DigestFromBytes(n.GetDigest())
				expected[cd] = true
			}
			if !yield(dir, nil) {
				return
			}
		}
		for d := range expected {
			if !received[d] {
				yield(nil, fmt.Errorf("get directory closure %s: server did not send %s: %w", root, d, castore.ErrNotFound))
				return
			}
		}
	}
}

func (c *DirectoryClient) Put(ctx context.Context, d *castorev1.Directory) (castore.Digest, error) {
	p := c.PutMultiple(ctx)
	if err := p.Put(d); err != nil {
		return castore.Digest{}, err
	}
	return p.Close()
}

func (c *DirectoryClient) PutMultiple(ctx context.Context) castore.DirectoryPutter {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.c.Put(ctx)
	return &remotePutter{stream: stream, err: fromWire(err), cancel: cancel}
}

func (c *DirectoryClient) Close() error {
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
}

type remotePutter struct {
	stream castorev1.DirectoryService_PutClient
	cancel context.CancelFunc
	err    error
}

func (p *remotePutter) Put(d *castorev1.Directory) error {
	if p.err != nil {
		return fmt.Errorf("put directory: %w", p.err)
	}
	if err := p.stream.Send(d); err != nil {
		if err == io.EOF {
			// The server refused the stream; its reason comes with CloseAndRecv.
			_, err = p.stream.CloseAndRecv()
		}
		p.err = fromWire(err)
		return fmt.Errorf("put directory: %w", p.err)
	}
	return nil
}

func (p *remotePutter) Close() (castore.Digest, error) {
	defer p.cancel()
	if p.err != nil {
		return castore.Digest{}, fmt.Errorf("put directories: %w", p.err)
	}
	resp, err := p.stream.CloseAndRecv()
	if err != nil {
		return castore.Digest{}, fromStatus("put directories", err)
	}
	return castore.DigestFromBytes(resp.GetRootDigest())
}
