package blobstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"path"
	"sync"
	"time"

	"github.com/tvix-go/tvix/castore"
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key      string
	Size     int64
	Modified time.Time
}

// ObjectSweeper is an ObjectStorage whose objects can be listed and
// deleted, which collecting garbage in it needs. Touch renews an object's
// Modified time without rewriting its bytes: a writer that finds a chunk
// already stored (and so does not send it) touches it, so that a sweep
// whose epoch is older keeps it, whichever daemon the writer is. Stat
// says whether key is stored and when it was last modified, so that only
// objects that have aged are touched (see ObjectStoreOptions.TouchRefresh).
type ObjectSweeper interface {
	ObjectStorage
	List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error]
	Delete(ctx context.Context, key string) error
	Touch(ctx context.Context, key string) error
	Stat(ctx context.Context, key string) (ObjectInfo, bool, error)
}

// ObjectSweepReport is what sweepObjects deleted (or, dry, would delete).
type ObjectSweepReport struct {
	Blobs, Chunks, Kept int64
	BytesFreed          int64
}

// sweepObjects deletes the blobs live does not name, and the chunks no
// live blob consists of, that were modified (written or touched) before
// since: chunk lists first, so no blob is ever visible without its
// chunks. This is the enumeration and deletion a collection of a shared
// object store needs (castore.Collectable, once store/gc lands here).
// Between the listing and a deletion another daemon may touch an object;
// the collector's grace period (its epoch lies that far back) is what
// covers an upload in flight that long.
func (b *objectBackend) sweepObjects(ctx context.Context, live func(castore.Digest) bool, since time.Time, dryRun bool) (ObjectSweepReport, error) {
	var rep ObjectSweepReport
	sw, ok := b.s.(ObjectSweeper)
	if !ok {
		return rep, fmt.Errorf("sweep: this object storage cannot list or delete")
	}
	// An object used after the epoch may carry a time up to the touch
	// refresh older (renew leaves fresh objects alone).
	since = since.Add(-b.fresh.refresh)
	digestOf := func(key string) (castore.Digest, error) {
		raw, err := hex.DecodeString(path.Base(key))
		if err != nil {
			return castore.Digest{}, err
		}
		return castore.DigestFromBytes(raw)
	}
	keep := map[castore.Digest]bool{}
	var deadLists []ObjectInfo
	for o, err := range sw.List(ctx, BlobObjects+"/") {
		if err != nil {
			return rep, err
		}
		d, err := digestOf(o.Key)
		if err != nil {
			continue // not the layout's
		}
		if !live(d) && o.Modified.Before(since) {
			deadLists = append(deadLists, o)
			continue
		}
		// A live (or too recent) blob keeps its chunks.
		raw, err := b.s.Get(ctx, o.Key)
		if err != nil {
			return rep, fmt.Errorf("sweep: read chunk list %s: %w", o.Key, err)
		}
		chunks, _, err := decodeManifest(d, raw)
		if err != nil {
			return rep, fmt.Errorf("sweep: %w", err)
		}
		for _, c := range chunks {
			keep[c.Digest] = true
		}
	}
	for _, o := range deadLists {
		if !dryRun {
			if err := sw.Delete(ctx, o.Key); err != nil {
				return rep, err
			}
			b.fresh.forget(o.Key)
		}
		rep.Blobs++
		rep.BytesFreed += o.Size
	}
	for o, err := range sw.List(ctx, ChunkObjects+"/") {
		if err != nil {
			return rep, err
		}
		d, err := digestOf(o.Key)
		if err != nil || keep[d] || live(d) {
			continue
		}
		if !o.Modified.Before(since) {
			rep.Kept++
			continue
		}
		if !dryRun {
			if err := sw.Delete(ctx, o.Key); err != nil {
				return rep, err
			}
			b.fresh.forget(o.Key)
		}
		rep.Chunks++
		rep.BytesFreed += o.Size
	}
	return rep, nil
}

// SweepObjects is sweepObjects for a store made by NewObjectStore.
func (s *Store) SweepObjects(ctx context.Context, live func(castore.Digest) bool, since time.Time, dryRun bool) (ObjectSweepReport, error) {
	b, ok := s.b.(*objectBackend)
	if !ok {
		return ObjectSweepReport{}, fmt.Errorf("sweep: not an object store")
	}
	return b.sweepObjects(ctx, live, since, dryRun)
}

// sweep is the object store's part of castore.Collectable (Store.Sweep).
// CompactBelow does not apply: every object is a file of its own.
func (b *objectBackend) sweep(ctx context.Context, req castore.SweepRequest) (castore.SweepReport, error) {
	rep, err := b.sweepObjects(ctx, req.Live, req.Since, req.DryRun)
	return castore.SweepReport{Blobs: rep.Blobs, Chunks: rep.Chunks, Kept: rep.Kept, BytesFreed: rep.BytesFreed}, err
}

// touchShared renews the time of blob d's chunk list (m set) or, for a
// single-chunk blob, of its chunk, so that a sweep by any daemon whose
// epoch is older keeps what a Has just reported or a reader opened (see
// Store.touchBlob). A recent chunk list keeps its chunks in a sweep, so
// the chunks themselves need no touch. False when the object is gone:
// another daemon's sweep took it.
func (b *objectBackend) touchShared(d castore.Digest, m []castore.ChunkMeta) bool {
	sw, ok := b.s.(ObjectSweeper)
	if !ok {
		return true
	}
	key := ObjectKey(ChunkObjects, d)
	if m != nil {
		key = ObjectKey(BlobObjects, d)
	}
	present, err := b.renew(b.ctx(), sw, key)
	return present && err == nil
}

// renew makes key's time at most the touch refresh old: objects this
// process saw (or made) that fresh are left alone, others are looked at
// and touched only if they have aged. A touch is a write to the server,
// and on some servers (MinIO on one drive rewrites its metadata file in
// place) one cut off by a crash of the server loses the object, so reads
// that touch nothing are worth the coarser times. False: key is not
// stored.
func (b *objectBackend) renew(ctx context.Context, sw ObjectSweeper, key string) (bool, error) {
	if b.fresh.recent(key) {
		return true, nil
	}
	if b.fresh.refresh > 0 {
		info, found, err := sw.Stat(ctx, key)
		if err != nil || !found {
			return false, err
		}
		if time.Since(info.Modified) < b.fresh.refresh {
			b.fresh.saw(key, info.Modified)
			return true, nil
		}
	}
	switch err := sw.Touch(ctx, key); {
	case errors.Is(err, castore.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	b.fresh.saw(key, time.Now())
	return true, nil
}

// freshTimes remembers, for a bounded number of keys, the newest
// modification time this process knows of, so that repeated uses of an
// object cost no request until it ages past refresh.
type freshTimes struct {
	refresh time.Duration
	mu      sync.Mutex
	times   map[string]time.Time
}

// maxFreshTimes bounds the memory: past it the record starts over, which
// costs one Stat per object used again.
const maxFreshTimes = 1 << 16

func (f *freshTimes) recent(key string) bool {
	if f.refresh <= 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.times[key]
	// Half the window: margin for the server's clock and its times,
	// which have whole seconds.
	return ok && time.Since(t) < f.refresh/2
}

func (f *freshTimes) saw(key string, modified time.Time) {
	if f.refresh <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.times == nil || len(f.times) >= maxFreshTimes {
		f.times = map[string]time.Time{}
	}
	f.times[key] = modified
}

// forget drops key (deleted: its time no longer says anything).
func (f *freshTimes) forget(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.times, key)
}
