// Package closure works on the closures of store paths: copying them from
// substituters into the local store, walking their blobs, listing their
// requisites.
package closure

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// Store is what closure operations read and write.
type Store struct {
	Blobs     castore.BlobService
	Dirs      castore.DirectoryService
	PathInfos pathinfo.Service
}

// Lookup returns a store path's PathInfo, with an error saying the path is
// not in the store when it is not.
func (s Store) Lookup(ctx context.Context, sp storepath.StorePath) (*storev1.PathInfo, error) {
	info, err := s.PathInfos.Get(ctx, sp.Digest)
	if errors.Is(err, pathinfo.ErrNotFound) {
		return nil, fmt.Errorf("path '%s' is not in the store: %w", sp, err)
	}
	return info, err
}

// copyParallel is how many paths Copy fetches at once.
const copyParallel = 8

// Progress is told of each path as it arrives: how many so far, their
// NAR bytes, and the path.
type Progress func(done int, narBytes uint64, path string)

// Copy asks the (substituting) path info service for every path of the
// closures of roots, so each is fetched into the local store, and makes
// contents lent read-through by a tvix upstream local too. Up to
// copyParallel paths are fetched at once; references are queued as each
// path arrives. It returns how many paths and NAR bytes the closure has.
func Copy(ctx context.Context, s Store, roots []storepath.StorePath, progress Progress) (int, uint64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu       sync.Mutex
		seen     = map[[storepath.DigestSize]byte]bool{}
		done     int
		narBytes uint64
		wg       sync.WaitGroup
		sem      = make(chan struct{}, copyParallel)
	)
	var fetch func(sp storepath.StorePath)
	fetch = func(sp storepath.StorePath) {
		mu.Lock()
		if seen[sp.Digest] || ctx.Err() != nil {
			mu.Unlock()
			return
		}
		seen[sp.Digest] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			info, err := s.PathInfos.Get(ctx, sp.Digest)
			if err == nil {
				err = Materialize(ctx, s, castore.RenameNode(info.GetNode(), nil))
			}
			if err != nil {
				cancel(fmt.Errorf("copy %s: %w", sp, err))
				return
			}
			mu.Lock()
			done++
			narBytes += info.GetNarinfo().GetNarSize()
			if progress != nil {
				progress(done, narBytes, sp.String())
			}
			mu.Unlock()
			for _, r := range info.GetNarinfo().GetReferenceNames() {
				rp, err := storepath.FromBasename(r)
				if err != nil {
					cancel(fmt.Errorf("copy %s: reference: %w", sp, err))
					return
				}
				fetch(rp)
			}
		}()
	}
	for _, r := range roots {
		fetch(r)
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return done, narBytes, err
	}
	return done, narBytes, nil
}

// Materialize copies the blobs of node's tree that a read-through upstream
// lends into the near store (reading the tree's directories already keeps
// them near); with only local services it has nothing to do.
func Materialize(ctx context.Context, s Store, node *castorev1.Node) error {
	m, ok := castore.As[castore.Materializer](s.Blobs)
	if !ok {
		return nil
	}
	return ForEachBlob(ctx, s.Dirs, node, func(d castore.Digest) error { return m.Materialize(ctx, d) })
}

// CheckPresent checks every directory and blob of node's tree is there,
// without reading blob contents.
func CheckPresent(ctx context.Context, s Store, node *castorev1.Node) error {
	return ForEachBlob(ctx, s.Dirs, node, func(d castore.Digest) error {
		ok, err := s.Blobs.Has(ctx, d)
		if err == nil && !ok {
			err = fmt.Errorf("blob %s missing", d)
		}
		return err
	})
}

// ForEachBlob calls fn with the digest of every file in node's tree.
func ForEachBlob(ctx context.Context, dirs castore.DirectoryService, node *castorev1.Node, fn func(castore.Digest) error) error {
	return forEachFile(ctx, dirs, node, func(d castore.Digest, _ uint64) error { return fn(d) })
}

// Requisites lists the closure of roots (roots included), each path once,
// breadth first.
func Requisites(ctx context.Context, s Store, roots []storepath.StorePath) ([]storepath.StorePath, error) {
	seen := map[[storepath.DigestSize]byte]bool{}
	var out []storepath.StorePath
	queue := append([]storepath.StorePath(nil), roots...)
	for len(queue) > 0 {
		sp := queue[0]
		queue = queue[1:]
		if seen[sp.Digest] {
			continue
		}
		seen[sp.Digest] = true
		out = append(out, sp)
		info, err := s.Lookup(ctx, sp)
		if err != nil {
			return nil, err
		}
		for _, r := range info.GetNarinfo().GetReferenceNames() {
			rp, err := storepath.FromBasename(r)
			if err != nil {
				return nil, fmt.Errorf("%s: reference %q: %w", sp, r, err)
			}
			queue = append(queue, rp)
		}
	}
	return out, nil
}
