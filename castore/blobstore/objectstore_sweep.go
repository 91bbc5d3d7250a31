package blobstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"iter"
	"path"
	"time"

	"golang.org/x/sync/errgroup"

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
// whose epoch is older keeps it, whichever daemon the writer is.
type ObjectSweeper interface {
	ObjectStorage
	List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error]
	Delete(ctx context.Context, key string) error
	Touch(ctx context.Context, key string) error
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

// touchShared renews the times of blob d's chunk list (if m is set) and
// chunks, so that a sweep by any daemon whose epoch is older keeps what
// a Has just reported or a reader opened (see Store.touchBlob). False
// when one is gone: another daemon's sweep took it.
func (b *objectBackend) touchShared(d castore.Digest, m []castore.ChunkMeta) bool {
	sw, ok := b.s.(ObjectSweeper)
	if !ok {
		return true
	}
	keys := []string{ObjectKey(ChunkObjects, d)}
	if m != nil {
		keys = []string{ObjectKey(BlobObjects, d)}
		for _, c := range m {
			keys = append(keys, ObjectKey(ChunkObjects, c.Digest))
		}
	}
	var g errgroup.Group
	g.SetLimit(8)
	for _, key := range keys {
		g.Go(func() error { return sw.Touch(b.ctx(), key) })
	}
	return g.Wait() == nil
}
