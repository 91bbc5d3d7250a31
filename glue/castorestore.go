package glue

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/tvix-go/tvix/castore/fstree"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/nixhash"
	"github.com/tvix-go/tvix/store/storepath"
)

// CastoreStore persists what evaluation adds into castore with a PathInfo
// each, so sources and .drv files show up in `tvix mount` and nar-bridge.
type CastoreStore struct {
	importer.Store
}

func (s CastoreStore) AddText(ctx context.Context, name string, contents []byte, refs []storepath.StorePath) (storepath.StorePath, error) {
	sp, _, err := s.Store.AddText(ctx, name, contents, refs)
	return sp, err
}

func (s CastoreStore) AddPath(ctx context.Context, name, src string, recursive bool, filter Filter) (storepath.StorePath, error) {
	if !recursive {
		sp, _, err := s.Store.AddFixed(ctx, src, name, false, nixhash.SHA256)
		return sp, err
	}
	opts := fstree.ImportOptions{}
	if filter != nil {
		// The filter is evaluator code: keep calls on the walking goroutine.
		opts.Filter = func(p, typ string) (bool, error) { return filter(p, typ) }
	}
	node, err := fstree.Import(ctx, filepath.Clean(src), s.Blobs, s.Dirs, opts)
	if err != nil {
		return storepath.StorePath{}, fmt.Errorf("add %s to the store: %w", src, err)
	}
	sp, _, err := s.Store.AddNode(ctx, node, name)
	return sp, err
}
