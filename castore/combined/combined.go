// Package combined layers a near castore (local) over a far one (another
// tvix): reads try near first and fall back to far, writes go near. Blobs
// are read from far only when read, chunk by chunk; directory closures are
// copied near on first use, so a remote builder mounting its store from an
// orchestrator transfers only what a build reads.
package combined

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

// Blobs reads through Near to Far.
type Blobs struct {
	Near, Far castore.BlobService
}

var (
	_ castore.BlobService  = Blobs{}
	_ castore.BackingFiler = Blobs{}
	_ castore.Syncer       = Blobs{}
	_ castore.Materializer = Blobs{}
	_ castore.Locality     = Blobs{}
)

func (b Blobs) Has(ctx context.Context, d castore.Digest) (bool, error) {
	ok, err := b.Near.Has(ctx, d)
	if err != nil || ok {
		return ok, err
	}
	return b.Far.Has(ctx, d)
}

func (b Blobs) Open(ctx context.Context, d castore.Digest) (castore.BlobReader, error) {
	r, err := b.Near.Open(ctx, d)
	if !errors.Is(err, castore.ErrNotFound) {
		return r, err
	}
	return b.Far.Open(ctx, d)
}

func (b Blobs) Chunks(ctx context.Context, d castore.Digest) ([]castore.ChunkMeta, error) {
	c, err := b.Near.Chunks(ctx, d)
	if !errors.Is(err, castore.ErrNotFound) {
		return c, err
	}
	return b.Far.Chunks(ctx, d)
}

func (b Blobs) Put(ctx context.Context, opts ...castore.PutOption) (castore.BlobWriter, error) {
	return b.Near.Put(ctx, opts...)
}

func (b Blobs) Close() error { return errors.Join(b.Near.Close(), b.Far.Close()) }

// BackingFile names Near's file for a blob kept there in one piece, so a
// mount over a near store that also reads through to another tvix still
// lets the kernel read local blobs directly (FUSE passthrough).
func (b Blobs) BackingFile(ctx context.Context, d castore.Digest) (*os.File, int64, bool) {
	if bf, ok := castore.As[castore.BackingFiler](b.Near); ok {
		return bf.BackingFile(ctx, d)
	}
	return nil, 0, false
}

// Sync makes Near's deferred puts durable: every write went there, and an
// import that syncs before recording directories and PathInfos must get
// the same guarantee through this layer as without it.
func (b Blobs) Sync(ctx context.Context) error { return castore.SyncBlobs(ctx, b.Near) }

// InProcess is true only when both layers are: a read may go to Far.
func (b Blobs) InProcess() bool { return castore.InProcess(b.Near) && castore.InProcess(b.Far) }

// Materialize copies a blob only Far has into Near, verified against its
// digest, and durable before it returns.
func (b Blobs) Materialize(ctx context.Context, d castore.Digest) error {
	if ok, err := b.Near.Has(ctx, d); err != nil || ok {
		return err
	}
	r, err := b.Far.Open(ctx, d)
	if err != nil {
		return fmt.Errorf("materialize blob %s: %w", d, err)
	}
	defer r.Close()
	w, err := b.Near.Put(ctx, castore.WithExpectedDigest(d))
	if err != nil {
		return fmt.Errorf("materialize blob %s: %w", d, err)
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return fmt.Errorf("materialize blob %s: %w", d, err)
	}
	if _, err := w.Close(); err != nil {
		return fmt.Errorf("materialize blob %s: %w", d, err)
	}
	return nil
}

// Directories reads through Near to Far, keeping closures it fetched.
type Directories struct {
	Near, Far castore.DirectoryService
}

var (
	_ castore.DirectoryService = Directories{}
	_ castore.Locality         = Directories{}
)

// InProcess is true only when both layers are: a read may go to Far.
func (d Directories) InProcess() bool { return castore.InProcess(d.Near) && castore.InProcess(d.Far) }

func (d Directories) Get(ctx context.Context, dg castore.Digest) (*castorev1.Directory, error) {
	dir, err := d.Near.Get(ctx, dg)
	if !errors.Is(err, castore.ErrNotFound) {
		return dir, err
	}
	return d.Far.Get(ctx, dg)
}

func (d Directories) GetRecursive(ctx context.Context, root castore.Digest) iter.Seq2[*castorev1.Directory, error] {
	return func(yield func(*castorev1.Directory, error) bool) {
		if _, err := d.Near.Get(ctx, root); err == nil {
			for dir, err := range d.Near.GetRecursive(ctx, root) {
				if !yield(dir, err) || err != nil {
					return
				}
			}
			return
		} else if !errors.Is(err, castore.ErrNotFound) {
			yield(nil, err)
			return
		}
		var closure []*castorev1.Directory
		for dir, err := range d.Far.GetRecursive(ctx, root) {
			if err != nil {
				yield(nil, err)
				return
			}
			closure = append(closure, dir)
		}
		if err := putClosure(ctx, d.Near, closure); err != nil {
			yield(nil, fmt.Errorf("keep closure of %s: %w", root, err))
			return
		}
		for _, dir := range closure {
			if !yield(dir, nil) {
				return
			}
		}
	}
}

// putClosure stores a root-first closure leaves first (post-order), the
// order a DirectoryPutter accepts.
func putClosure(ctx context.Context, svc castore.DirectoryService, closure []*castorev1.Directory) error {
	if len(closure) == 0 {
		return nil
	}
	byDigest := make(map[castore.Digest]*castorev1.Directory, len(closure))
	for _, dir := range closure {
		byDigest[castore.DirectoryDigest(dir)] = dir
	}
	p := svc.PutMultiple(ctx)
	// Post-order with a stack of its own: a closure nested a million deep
	// is as legal as a wide one, and recursion would hold a frame per level.
	type frame struct {
		dir  *castorev1.Directory
		next int // index of the next child to visit
	}
	done := map[castore.Digest]bool{}
	root := castore.DirectoryDigest(closure[0])
	done[root] = true
	stack := []frame{{dir: byDigest[root]}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if children := top.dir.GetDirectories(); top.next < len(children) {
			n := children[top.next]
			top.next++
			cd, err := castore.DigestFromBytes(n.GetDigest())
			if err != nil {
				return err
			}
			if done[cd] {
				continue
			}
			done[cd] = true
			child, ok := byDigest[cd]
			if !ok {
				return fmt.Errorf("directory %s: %w", cd, castore.ErrNotFound)
			}
			stack = append(stack, frame{dir: child})
			continue
		}
		if err := p.Put(top.dir); err != nil {
			return err
		}
		stack = stack[:len(stack)-1]
	}
	_, err := p.Close()
	return err
}

func (d Directories) Put(ctx context.Context, dir *castorev1.Directory) (castore.Digest, error) {
	return d.Near.Put(ctx, dir)
}

func (d Directories) PutMultiple(ctx context.Context) castore.DirectoryPutter {
	return d.Near.PutMultiple(ctx)
}

func (d Directories) Close() error { return errors.Join(d.Near.Close(), d.Far.Close()) }
