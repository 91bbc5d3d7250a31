package main

import (
	"context"
	"fmt"
	"os"

	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/eval/evalcli"
	"github.com/tvix-go/tvix/glue"
	"github.com/tvix-go/tvix/store/registry"
)

// evalStore connects evaluation to the store (see installStore).
func evalStore() *evalcli.StoreHooks { return &evalcli.StoreHooks{Install: installStore} }

// envAddrs is the store nix-instantiate's personality writes to: it takes
// Nix's flags, not ours, so the addresses come from the environment
// (TVIX_STORE, then BLOB_SERVICE_ADDR, ...).
func envAddrs() (registry.Addrs, error) {
	return resolveAddrs(os.Getenv("TVIX_STORE"), func(f serviceFlag) (string, bool) {
		v := os.Getenv(f.env)
		return v, v != ""
	})
}

// installStore is where the evaluator meets the store: --eval and
// --readonly-mode compute paths without writing; instantiation writes
// sources and .drv files into the store the service addresses (env
// BLOB_SERVICE_ADDR, ...) name.
func installStore(opts *eval.Options, writable bool) (func(*eval.Evaluator, eval.Value) []string, func(), error) {
	ctx := context.Background()
	if !writable {
		return glue.InstallComputing(ctx, opts), func() {}, nil
	}
	a, err := envAddrs()
	if err != nil {
		return nil, nil, err
	}
	s, err := registry.Default().Open(ctx, a, registry.Substitution{})
	if err != nil {
		return nil, nil, err
	}
	instantiate, closeStore := glue.InstallWriting(ctx, opts, s.Blobs, s.Directories, s.PathInfos)
	done := func() {
		// Only --eval --read-write-mode gets here with unflushed writes
		// (toFile results); the paths were printed already.
		if err := closeStore(); err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
		}
		s.Close()
	}
	return instantiate, done, nil
}
