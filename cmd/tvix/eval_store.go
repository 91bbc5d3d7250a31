package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/tvix-go/tvix/castore/castoreurl"
	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/glue"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/pathinfourl"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// installStore is where the evaluator meets the store: --eval and
// --readonly-mode compute paths without writing; instantiation writes
// sources and .drv files into the store the service addresses (env
// BLOB_SERVICE_ADDR, ...) name.
func installStore(opts *eval.Options, writable bool) (func(*eval.Evaluator, eval.Value) []string, func(), error) {
	ctx := context.Background()
	if !writable {
		g := glue.New(ctx, glue.ComputeStore{})
		g.Install(opts)
		return func(ev *eval.Evaluator, v eval.Value) []string { return glue.InstantiatedPaths(ev, v) }, func() {}, nil
	}
	d := dataDir()
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, nil, err
	}
	blobs, err := castoreurl.OpenBlobService(ctx, envOr("BLOB_SERVICE_ADDR", defaultBlobServiceAddr(d)))
	if err != nil {
		return nil, nil, err
	}
	dirs, err := castoreurl.OpenDirectoryService(ctx, envOr("DIRECTORY_SERVICE_ADDR", "bbolt://"+d+"/db.bolt"))
	if err != nil {
		blobs.Close()
		return nil, nil, err
	}
	piAddr := envOr("PATH_INFO_SERVICE_ADDR", "bbolt://"+d+"/db.bolt")
	pis, err := pathinfourl.Open(ctx, piAddr, blobs, dirs)
	if err != nil {
		dirs.Close()
		blobs.Close()
		return nil, nil, err
	}
	// .drv files and sources are stored in batches while evaluation goes
	// on; what was written is flushed before its paths are printed.
	wb := glue.NewWriteBehind(pis, blobs)
	wb.LocalInner = strings.HasPrefix(piAddr, "bbolt:") || strings.HasPrefix(piAddr, "memory:")
	st := importer.Store{Blobs: blobs, Dirs: dirs, PathInfo: wb}
	sio := glue.StoreIO{Base: eval.OSIO{}, Ctx: ctx, Blobs: blobs, Dirs: dirs, PathInfo: wb}
	if opts.IO != nil {
		sio.Base = opts.IO
	}
	opts.IO = sio
	g := glue.New(ctx, glue.CastoreStore{Store: st})
	g.ReadDerivation = sio.ReadFile
	g.Install(opts)
	done := func() {
		// Only --eval --read-write-mode gets here with unflushed writes
		// (toFile results); the paths were printed already.
		if err := wb.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
		}
		dirs.Close()
		blobs.Close()
	}
	instantiate := func(ev *eval.Evaluator, v eval.Value) []string {
		paths := glue.InstantiatedPaths(ev, v)
		if err := wb.Flush(ctx); err != nil {
			ev.Throwf("writing to the store: %v", err)
		}
		return paths
	}
	return instantiate, done, nil
}
