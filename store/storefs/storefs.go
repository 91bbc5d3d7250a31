// Package storefs puts the store paths a PathInfoService knows at the root
// of a castore/fs tree, each named by its basename, as Tvix's store
// filesystem does: castore/fs knows nothing of Nix, so what a store path is
// (and that anything else is not there) is decided here.
//
// It does not import castore/fs, so that package's tests can use it; it
// implements castore/fs.RootNodes structurally.
package storefs

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// PathInfoService is what the root needs from a pathinfo.Service.
type PathInfoService interface {
	Get(ctx context.Context, digest [storepath.DigestSize]byte) (*storev1.PathInfo, error)
	List(ctx context.Context) iter.Seq2[*storev1.PathInfo, error]
}

// RootNodes serves the root node of every store path in a PathInfoService
// under the path's basename.
type RootNodes struct {
	svc PathInfoService
	log *slog.Logger
}

// New serves svc's store paths; log (nil: slog.Default()) receives what
// the tree cannot report to the reader: path infos skipped because their
// root node is not named by a store path.
func New(svc PathInfoService, log *slog.Logger) *RootNodes {
	if log == nil {
		log = slog.Default()
	}
	return &RootNodes{svc: svc, log: log}
}

// Get returns the root node of the store path with basename name.
func (r *RootNodes) Get(ctx context.Context, name string) (*castorev1.Node, error) {
	sp, err := storepath.FromBasename(name)
	if err != nil {
		// Not a store path basename: nothing to ask the service about.
		return nil, fmt.Errorf("%q: %w", name, castore.ErrNotFound)
	}
	info, err := r.svc.Get(ctx, sp.Digest)
	if errors.Is(err, pathinfo.ErrNotFound) {
		return nil, fmt.Errorf("store path %s: %w", name, castore.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get path info %s: %w", name, err)
	}
	n := info.GetNode()
	if err := castore.ValidateNode(n); err != nil {
		return nil, fmt.Errorf("path info %s: %w", name, err)
	}
	// The service is asked by digest; a path with this digest but another
	// name is a different path, which does not exist.
	if got := string(castore.NodeName(n)); got != name {
		r.log.Debug("store path name mismatch", "looked_up", name, "path_info", got)
		return nil, fmt.Errorf("store path %s: %w", name, castore.ErrNotFound)
	}
	return n, nil
}

// List yields the root node of every store path; a path info whose node
// is not named by a store path basename is skipped, since Get could never
// find it.
func (r *RootNodes) List(ctx context.Context) iter.Seq2[*castorev1.Node, error] {
	return func(yield func(*castorev1.Node, error) bool) {
		for info, err := range r.svc.List(ctx) {
			if err != nil {
				yield(nil, fmt.Errorf("list path infos: %w", err))
				return
			}
			n := info.GetNode()
			if _, err := storepath.FromBasename(string(castore.NodeName(n))); err != nil {
				r.log.Warn("skipping invalid path info in root listing", "err", err)
				continue
			}
			if !yield(n, nil) {
				return
			}
		}
	}
}
