package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/tvix-go/tvix/castore"
)

// Tvix's object-store layout names every object by kind and digest:
// chunks/b3/<first 2 bytes hex>/<hex> holds a chunk, blobs/b3/… the chunk
// list (a serialized StatBlobResponse) of a blob of more than one chunk.
// The local directory (NewFile) and remote object stores
// (NewObjectStore: S3) share it.

// Object kinds of the layout.
const (
	ChunkObjects = "chunks"
	BlobObjects  = "blobs"
)

// ObjectKey is where the layout keeps the object of kind for digest d.
func ObjectKey(kind string, d castore.Digest) string {
	h := d.Hex()
	return kind + "/b3/" + h[:4] + "/" + h
}

// ObjectStorage is a flat namespace of immutable objects, where
// NewObjectStore keeps the layout: an S3 bucket, say. Implementations
// retry what is worth retrying; an error they return is final.
type ObjectStorage interface {
	// Exists reports whether key is stored.
	Exists(ctx context.Context, key string) (bool, error)
	// Get returns an object's bytes; a missing object is
	// castore.ErrNotFound, wrapped. The result is bounded by what Put was
	// given: objects here are chunks and chunk lists.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores an object whole or not at all: a reader sees the old
	// state or the complete object, never a part.
	Put(ctx context.Context, key string, data []byte) error
	Close() error
}

// ObjectStoreOptions tune NewObjectStore.
type ObjectStoreOptions struct {
	// Uploads bounds the chunk uploads in flight, over all writers (0:
	// 8). Each holds one compressed chunk, so memory stays at Uploads
	// maximum chunks however many blobs are written at once.
	Uploads int
	// TouchRefresh: a use of an object modified less than this ago does
	// not touch it again (0: DefaultTouchRefresh; negative: every use
	// touches). A touch is a write (S3 has no cheaper way to renew a
	// time); renewing only what has aged keeps reads free of writes.
	// Sweeps allow for it: they keep what was modified less than
	// TouchRefresh before their epoch.
	TouchRefresh time.Duration
}

// DefaultTouchRefresh is well below gc's default grace (an hour), so a
// collection with the default grace loses nothing to the coarser times.
const DefaultTouchRefresh = 10 * time.Minute

// NewObjectStore is a chunking BlobService keeping Tvix's object-store
// layout in storage, chunks zstd-compressed as Tvix stores them. A blob
// becomes visible when its chunk list is stored, which happens only after
// every chunk it names is (a single-chunk blob is its chunk, stored at
// Close once the digest was checked). A large blob's chunks are uploaded
// while it is still being written, in parallel; an aborted or refused put
// leaves only such chunks behind, each a complete, correctly named object
// nothing refers to.
func NewObjectStore(storage ObjectStorage, opts ObjectStoreOptions) (*Store, error) {
	if opts.Uploads <= 0 {
		opts.Uploads = 8
	}
	switch {
	case opts.TouchRefresh == 0:
		opts.TouchRefresh = DefaultTouchRefresh
	case opts.TouchRefresh < 0:
		opts.TouchRefresh = 0
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return nil, fmt.Errorf("object store: zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return nil, fmt.Errorf("object store: zstd decoder: %w", err)
	}
	b := &objectBackend{s: storage, enc: enc, dec: dec, uploads: make(chan struct{}, opts.Uploads),
		fresh: freshTimes{refresh: opts.TouchRefresh}}
	b.ahead = newReadAheader(b.fetchChunk)
	return newStore(b), nil
}

type objectBackend struct {
	s       ObjectStorage
	enc     *zstd.Encoder // EncodeAll and DecodeAll are safe for concurrent use
	dec     *zstd.Decoder
	uploads chan struct{} // semaphore of chunk uploads in flight
	ahead   *readAheader
	fresh   freshTimes
}

// The backend interface has no context; the storage's own timeouts and
// retries bound each call.
func (b *objectBackend) ctx() context.Context { return context.Background() }

func (b *objectBackend) hasChunk(d castore.Digest) (bool, error) {
	return b.s.Exists(b.ctx(), ObjectKey(ChunkObjects, d))
}

func (b *objectBackend) openChunk(d castore.Digest) (chunkReader, int64, error) {
	data, ok := b.ahead.take(d)
	if !ok {
		var err error
		if data, err = b.fetchChunk(d); err != nil {
			return nil, 0, err
		}
	}
	return objectChunk{bytes.NewReader(data), ObjectKey(ChunkObjects, d)}, int64(len(data)), nil
}

// fetchChunk gets and decompresses a chunk; its digest is checked by the
// caller (Store.openVerified), also for chunks fetched ahead.
func (b *objectBackend) fetchChunk(d castore.Digest) ([]byte, error) {
	key := ObjectKey(ChunkObjects, d)
	raw, err := b.s.Get(b.ctx(), key)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", d, err)
	}
	data, err := b.dec.DecodeAll(raw, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: chunk %s (%s) does not decompress: %v", ErrCorrupt, d, key, err)
	}
	return data, nil
}

// objectChunk is a fetched, decompressed chunk; Name says where it came
// from in errors.
type objectChunk struct {
	*bytes.Reader
	key string
}

func (c objectChunk) Name() string { return c.key }
func (objectChunk) Close() error   { return nil }

func (b *objectBackend) manifest(d castore.Digest) ([]castore.ChunkMeta, bool, error) {
	raw, err := b.s.Get(b.ctx(), ObjectKey(BlobObjects, d))
	if errors.Is(err, castore.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	chunks, ok, err := decodeManifest(d, raw)
	if err == nil && len(chunks) > 1 {
		b.ahead.remember(chunks)
	}
	return chunks, ok, err
}

func (b *objectBackend) newTxn() (txn, error) {
	ctx, cancel := context.WithCancel(context.Background())
	return &objectTxn{b: b, ctx: ctx, cancel: cancel}, nil
}

func (b *objectBackend) close() error {
	b.enc.Close()
	b.dec.Close()
	return b.s.Close()
}

// objectTxn stages one blob's chunks. Until the blob is known to be large
// (see largeBlob), chunks are held: a blob of a chunk or two is checked
// against its expected digest before anything of it is stored. Once it
// is large, each chunk is uploaded as soon as it is staged.
type objectTxn struct {
	b      *objectBackend
	ctx    context.Context
	cancel context.CancelFunc
	eager  bool
	held   []heldObject
	seen   map[castore.Digest]bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

type heldObject struct {
	d    castore.Digest
	data []byte
}

func (t *objectTxn) largeBlob() { t.eager = true }

func (t *objectTxn) stageChunk(d castore.Digest, data []byte) error {
	if t.seen[d] {
		return nil
	}
	if t.seen == nil {
		t.seen = map[castore.Digest]bool{}
	}
	t.seen[d] = true
	if err := t.failed(); err != nil {
		return err
	}
	if !t.eager {
		t.held = append(t.held, heldObject{d, bytes.Clone(data)})
		return nil
	}
	// Compress before taking an upload slot: data is only valid during
	// the call, and the slot bounds what is held, compressed.
	return t.upload(d, t.b.enc.EncodeAll(data, nil))
}

// upload stores one compressed chunk in the background, once a slot is
// free; chunks already stored (by anyone: they are named by content) are
// not sent again.
func (t *objectTxn) upload(d castore.Digest, compressed []byte) error {
	select {
	case t.b.uploads <- struct{}{}:
	case <-t.ctx.Done():
		return t.ctx.Err()
	}
	t.wg.Add(1)
	go func() {
		defer func() { <-t.b.uploads; t.wg.Done() }()
		key := ObjectKey(ChunkObjects, d)
		var err error
		if sw, canTouch := t.b.s.(ObjectSweeper); canTouch {
			// Another writer's chunk is now ours too: its time must
			// say so, or a sweep whose epoch is older takes it. Gone
			// (swept, or never there): store it.
			var present bool
			if present, err = t.b.renew(t.ctx, sw, key); err == nil && !present {
				err = t.b.put(t.ctx, key, compressed)
			}
		} else {
			var has bool
			if has, err = t.b.s.Exists(t.ctx, key); err == nil && !has {
				err = t.b.s.Put(t.ctx, key, compressed)
			}
		}
		if err != nil {
			t.mu.Lock()
			if t.err == nil {
				t.err = fmt.Errorf("upload chunk %s: %w", d, err)
			}
			t.mu.Unlock()
		}
	}()
	return nil
}

// put stores an object, which is then as fresh as a touch makes it.
func (b *objectBackend) put(ctx context.Context, key string, data []byte) error {
	if err := b.s.Put(ctx, key, data); err != nil {
		return err
	}
	b.fresh.saw(key, time.Now())
	return nil
}

func (t *objectTxn) failed() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

func (t *objectTxn) commit(blob castore.Digest, manifest []castore.ChunkMeta, _ bool) error {
	defer t.cancel()
	var err error
	for _, h := range t.held {
		if err = t.upload(h.d, t.b.enc.EncodeAll(h.data, nil)); err != nil {
			break
		}
	}
	t.held = nil
	t.wg.Wait()
	if ferr := t.failed(); ferr != nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if manifest == nil {
		return nil
	}
	// The chunk list goes last: once it is visible, every chunk it names is.
	if err := t.b.put(t.ctx, ObjectKey(BlobObjects, blob), encodeManifest(manifest)); err != nil {
		return fmt.Errorf("store chunk list: %w", err)
	}
	return nil
}

func (t *objectTxn) abort() {
	t.cancel()
	t.wg.Wait()
	t.held = nil
}
