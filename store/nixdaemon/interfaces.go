package nixdaemon

import (
	"context"
	"io"
	"time"

	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/nix/storepath"
)

// Builder builds what clients ask for.
type Builder interface {
	// Realise builds the derivations at drvPaths (in the store) and what
	// they need, as BuildPaths asks; it reports each derivation it deals
	// with to ev.
	Realise(ctx context.Context, drvPaths []string, opts BuildOptions, ev BuildEvents) error
	// BuildDerivation builds one derivation sent inline, whose inputs are
	// its input sources (a remote builder's client sends the closure).
	BuildDerivation(ctx context.Context, drvPath string, drv *derivation.Derivation, opts BuildOptions, ev BuildEvents) error
}

// BuildOptions are the client's settings that builds honour.
type BuildOptions struct {
	MaxJobs       int
	Cores         int
	Timeout       time.Duration
	MaxSilentTime time.Duration
	KeepGoing     bool
}

// BuildEvents receives what happens to each derivation of a build.
type BuildEvents interface {
	// Started: drvPath is being built; its log goes to the writer.
	Started(drvPath string) io.Writer
	// Finished: drvPath was built (err nil), or failed. timedOut says
	// the failure was a timeout.
	Finished(drvPath string, err error, timedOut bool)
}

// Roots are the garbage collector's roots, as Nix keeps them.
type Roots interface {
	// Session holds temporary roots for one client until it is closed.
	Session() RootSession
	// AddIndirectRoot records link, a symlink outside the store pointing
	// at a store path (or at another link), as a root while it resolves.
	AddIndirectRoot(ctx context.Context, link string) error
	// FindRoots lists the roots: link (or a description of a temporary
	// root) → store path.
	FindRoots(ctx context.Context) (map[string]storepath.StorePath, error)
	// Collect runs the collector.
	Collect(ctx context.Context, req GCRequest) (GCResult, error)
}

// RootSession is one client's temporary roots.
type RootSession interface {
	AddTempRoot(ctx context.Context, p storepath.StorePath) error
	Close() error
}

// GCRequest is CollectGarbage's request.
type GCRequest struct {
	// Action: 0 return live paths, 1 return dead paths, 2 delete dead
	// paths, 3 delete Paths (refused if one is alive).
	Action   uint64
	Paths    []storepath.StorePath
	MaxFreed uint64 // 0: no limit
}

// GCResult is what the collector did or found.
type GCResult struct {
	Paths      []storepath.StorePath
	BytesFreed uint64
}
