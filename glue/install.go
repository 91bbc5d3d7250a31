package glue

import (
	"context"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// InstantiateFunc turns an evaluated value into the lines nix-instantiate
// prints (.drv paths, or output paths with their outputs).
type InstantiateFunc func(ev *eval.Evaluator, v eval.Value) []string

// InstallComputing adds the store-aware builtins for --eval, --parse and
// --readonly-mode: paths are computed, nothing is written.
func InstallComputing(ctx context.Context, opts *eval.Options) InstantiateFunc {
	g := New(ctx, ComputeStore{})
	g.Install(opts)
	return InstantiatedPaths
}

// InstallWriting adds the store-aware builtins for instantiation: sources
// and .drv files are written into the services, in batches while
// evaluation goes on (see WriteBehind); what was written is flushed
// before its paths are returned. close flushes what is left (toFile
// results of --eval --read-write-mode) and closes pis.
func InstallWriting(ctx context.Context, opts *eval.Options, blobs castore.BlobService, dirs castore.DirectoryService, pis pathinfo.Service) (instantiate InstantiateFunc, close func() error) {
	_, wb := installWriting(ctx, opts, blobs, dirs, pis)
	instantiate = func(ev *eval.Evaluator, v eval.Value) []string {
		paths := InstantiatedPaths(ev, v)
		if err := wb.Flush(ctx); err != nil {
			ev.Throwf("writing to the store: %v", err)
		}
		return paths
	}
	return instantiate, wb.Close
}

// installWriting wires the builtins to write into the services through a
// WriteBehind queue, which the caller flushes.
func installWriting(ctx context.Context, opts *eval.Options, blobs castore.BlobService, dirs castore.DirectoryService, pis pathinfo.Service) (*Glue, *WriteBehind) {
	wb := NewWriteBehind(pis, blobs)
	st := importer.Store{Blobs: blobs, Dirs: dirs, PathInfo: wb}
	sio := StoreIO{Base: eval.OSIO{}, Ctx: ctx, Blobs: blobs, Dirs: dirs, PathInfo: wb}
	if opts.IO != nil {
		sio.Base = opts.IO
	}
	opts.IO = sio
	g := New(ctx, CastoreStore{Store: st})
	g.ReadDerivation = sio.ReadFile
	g.Install(opts)
	return g, wb
}
