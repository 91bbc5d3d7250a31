package glue

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// WriteBehind is a pathinfo.Service for instantiation: Puts are queued
// and stored in batches (one bbolt transaction and one blob sync per
// batch instead of a few syncs per .drv, which made writing 10,000
// derivations take minutes), while the evaluator goes on. Gets see queued
// paths, so what evaluation wrote can be read back at once (import of a
// toFile result). A full batch is stored in the background; Flush (or
// Close) stores the rest and reports any failure. A crash loses the
// unstored tail, never leaves a PathInfo whose blobs are not durable:
// Blobs are synced before each batch (blobs are put with deferred sync).
type WriteBehind struct {
	Inner pathinfo.Service
	Blobs castore.BlobService
	// Batch is how many puts are stored at once (default 2048).
	Batch int

	mu       sync.Mutex
	pending  map[[storepath.DigestSize]byte]*storev1.PathInfo // queued or being stored
	queue    []*storev1.PathInfo
	inflight chan struct{} // closed when the background batch is stored
	err      error
}

var _ pathinfo.Service = (*WriteBehind)(nil)

// NewWriteBehind queues puts in front of inner.
func NewWriteBehind(inner pathinfo.Service, blobs castore.BlobService) *WriteBehind {
	return &WriteBehind{Inner: inner, Blobs: blobs, pending: map[[storepath.DigestSize]byte]*storev1.PathInfo{}}
}

func (w *WriteBehind) Get(ctx context.Context, digest [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	w.mu.Lock()
	info, ok := w.pending[digest]
	w.mu.Unlock()
	if ok {
		return info, nil
	}
	return w.Inner.Get(ctx, digest)
}

// known says whether a path is queued, or stored when Inner is local.
func (w *WriteBehind) known(ctx context.Context, digest [storepath.DigestSize]byte) (bool, error) {
	w.mu.Lock()
	_, ok := w.pending[digest]
	w.mu.Unlock()
	// A service in this process (embedded bbolt, memory) is asked whether
	// a path is there before writing; a daemon's may ask its substituters
	// instead, one network round trip per .drv, so then only the queue is.
	if ok || !castore.InProcess(w.Inner) {
		return ok, nil
	}
	_, err := w.Inner.Get(ctx, digest)
	if errors.Is(err, pathinfo.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (w *WriteBehind) Put(ctx context.Context, info *storev1.PathInfo) (*storev1.PathInfo, error) {
	sp, err := pathinfo.Validate(info)
	if err != nil {
		return nil, fmt.Errorf("put path info: %w", err)
	}
	batch := w.Batch
	if batch <= 0 {
		batch = 2048
	}
	w.mu.Lock()
	if err := w.err; err != nil {
		w.mu.Unlock()
		return nil, err
	}
	if _, ok := w.pending[sp.Digest]; !ok {
		w.pending[sp.Digest] = info
		w.queue = append(w.queue, info)
	}
	full := len(w.queue) >= batch
	w.mu.Unlock()
	if full {
		w.startBatch(ctx)
	}
	return info, nil
}

// startBatch waits for the batch being stored, then stores the queue in
// the background.
func (w *WriteBehind) startBatch(ctx context.Context) {
	w.wait()
	w.mu.Lock()
	q := w.queue
	w.queue = nil
	done := make(chan struct{})
	w.inflight = done
	w.mu.Unlock()
	go func() {
		defer close(done)
		w.store(ctx, q)
	}()
}

// store makes q's blobs durable, then q's path infos, and forgets them.
func (w *WriteBehind) store(ctx context.Context, q []*storev1.PathInfo) {
	if len(q) == 0 {
		return
	}
	err := castore.SyncBlobs(ctx, w.Blobs)
	if err != nil {
		err = fmt.Errorf("sync blobs: %w", err)
	} else {
		err = pathinfo.PutAll(ctx, w.Inner, q)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.err == nil {
			w.err = fmt.Errorf("store %d path infos: %w", len(q), err)
		}
		return
	}
	for _, info := range q {
		sp, _ := storepath.FromBasename(string(castore.NodeName(info.GetNode())))
		delete(w.pending, sp.Digest)
	}
}

func (w *WriteBehind) wait() {
	w.mu.Lock()
	c := w.inflight
	w.mu.Unlock()
	if c != nil {
		<-c
	}
}

// Flush stores everything queued and returns the first failure.
func (w *WriteBehind) Flush(ctx context.Context) error {
	w.wait()
	w.mu.Lock()
	q := w.queue
	w.queue = nil
	w.mu.Unlock()
	w.store(ctx, q)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *WriteBehind) List(ctx context.Context) iter.Seq2[*storev1.PathInfo, error] {
	if err := w.Flush(ctx); err != nil {
		return func(yield func(*storev1.PathInfo, error) bool) { yield(nil, err) }
	}
	return w.Inner.List(ctx)
}

// InProcess forwards Inner's locality: queued puts are answered here, the
// rest by Inner.
func (w *WriteBehind) InProcess() bool { return castore.InProcess(w.Inner) }

// Close flushes, then closes Inner.
func (w *WriteBehind) Close() error {
	err := w.Flush(context.Background())
	if cerr := w.Inner.Close(); err == nil {
		err = cerr
	}
	return err
}
