// Package glue joins the evaluator and the store: the builtins that create
// store paths (derivationStrict and its `derivation` wrapper, toFile, path,
// filterSource, storePath) and the copying of ./paths used as strings, all
// computing paths exactly as C++ Nix 2.8 does. What is created goes to a
// Store; with ComputeStore nothing is written (read-only mode).
package glue

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/nix/storepath"
)

// Glue holds what one evaluation created: derivations by .drv path, their
// modulo hashes, and the references of text files, which derivations using
// them need. Safe for concurrent use, though an evaluator is not.
type Glue struct {
	ctx   context.Context
	store Store
	// ReadDerivation reads a .drv file not created by this evaluation
	// (one named with builtins.storePath, say); by default from the file
	// system.
	ReadDerivation func(drvPath string) ([]byte, error)
	// References lists the references of a store path not created by this
	// evaluation, for drvPath contexts (which pull in a .drv's closure).
	// By default a path has none.
	References func(path string) ([]string, error)
	// KeepDerivations keeps every derivation created whole, for
	// Derivation. Without it only what later derivations and Derivations
	// need is kept (outputs and references): a derivation's maps and
	// environment are most of what instantiating many of them retains.
	KeepDerivations bool

	mu     sync.Mutex
	drvs   map[string]*drvRecord // with their modulo hashes
	refs   map[string][]string
	fromFS derivation.ModuloLookup
	// outKeys are the attributes (their keys, without values) of the
	// output names seen: a derivationStrict result's attributes share
	// them instead of each making its own.
	outKeys map[string]eval.Attr
}

// New returns a Glue adding to store (ComputeStore{} for read-only mode).
func New(ctx context.Context, store Store) *Glue {
	g := &Glue{
		ctx:            ctx,
		store:          store,
		ReadDerivation: os.ReadFile,
		drvs:           map[string]*drvRecord{},
		refs:           map[string][]string{},
		outKeys:        map[string]eval.Attr{},
	}
	g.fromFS = derivation.NewModuloCache(func(p string) ([]byte, error) { return g.ReadDerivation(p) })
	return g
}

// Install adds the store builtins to evaluator options: call it before
// eval.New.
func (g *Glue) Install(opts *eval.Options) {
	if opts.Builtins == nil {
		opts.Builtins = map[string]eval.Value{}
	}
	opts.Builtins["derivationStrict"] = eval.NewPrimOp("derivationStrict", 1, g.derivationStrict)
	opts.Builtins["toFile"] = eval.NewPrimOp("toFile", 2, g.toFile)
	opts.Builtins["path"] = eval.NewPrimOp("path", 1, g.path)
	opts.Builtins["filterSource"] = eval.NewPrimOp("filterSource", 2, g.filterSource)
	opts.Builtins["storePath"] = eval.NewPrimOp("storePath", 1, g.storePath)
	if opts.NixBuiltins == nil {
		opts.NixBuiltins = map[string]string{}
	}
	opts.NixBuiltins["derivation"] = eval.DerivationNix
	opts.CopyToStore = g.copyToStore
}

// drvRecord is what is kept of a derivation: instantiating 10,000 of them
// keeps 10,000 records, so it is small (two allocations).
type drvRecord struct {
	full   *derivation.Derivation // with KeepDerivations only
	modulo [32]byte               // hashDerivationModulo, for derivations created here
	nOut   int
	// The outputs' names and paths (name, path, name, path, ...), then
	// the references: input sources and input derivations.
	strs []string
}

func newDrvRecord(d *derivation.Derivation, keep bool) *drvRecord {
	r := &drvRecord{nOut: len(d.Outputs),
		strs: make([]string, 0, 2*len(d.Outputs)+len(d.InputSources)+len(d.InputDerivations))}
	for name, o := range d.Outputs {
		r.strs = append(r.strs, name, o.Path)
	}
	r.strs = append(r.strs, d.InputSources...)
	for p := range d.InputDerivations {
		r.strs = append(r.strs, p)
	}
	if keep {
		r.full = d
	}
	return r
}

// output returns the name and path of output i (< r.nOut).
func (r *drvRecord) output(i int) (name, path string) { return r.strs[2*i], r.strs[2*i+1] }

// refs lists the input sources and input derivations.
func (r *drvRecord) refs() []string { return r.strs[2*r.nOut:] }

// Derivation returns a derivation this evaluation created; only with
// KeepDerivations.
func (g *Glue) Derivation(drvPath string) (*derivation.Derivation, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.drvs[drvPath]
	if !ok || r.full == nil {
		return nil, false
	}
	return r.full, true
}

func (g *Glue) record(drvPath string) (*drvRecord, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.drvs[drvPath]
	return r, ok
}

// DerivationPaths lists the .drv paths this evaluation created.
func (g *Glue) DerivationPaths() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.drvs))
	for p := range g.drvs {
		out = append(out, p)
	}
	return out
}

// moduloHash is the hashDerivationModulo of an input derivation: remembered
// if this evaluation created it, else read.
func (g *Glue) moduloHash(drvPath string) ([32]byte, error) {
	if r, ok := g.record(drvPath); ok {
		return r.modulo, nil
	}
	return g.fromFS(drvPath)
}

// readDrv returns what is known of a derivation created here, or reads
// it from the store.
func (g *Glue) readDrv(drvPath string) (*drvRecord, error) {
	if r, ok := g.record(drvPath); ok {
		return r, nil
	}
	data, err := g.ReadDerivation(drvPath)
	if err != nil {
		return nil, fmt.Errorf("read derivation %s: %w", drvPath, err)
	}
	d, err := derivation.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", drvPath, err)
	}
	return newDrvRecord(d, false), nil
}

// references of a store path: a .drv's inputs, a text file's recorded
// references, else what References says.
func (g *Glue) references(p string) ([]string, error) {
	if sp, err := storepath.Parse(p); err == nil && len(sp.Name) > 4 && sp.Name[len(sp.Name)-4:] == ".drv" {
		r, err := g.readDrv(p)
		if err != nil {
			return nil, err
		}
		return r.refs(), nil
	}
	g.mu.Lock()
	r, ok := g.refs[p]
	g.mu.Unlock()
	if ok || g.References == nil {
		return r, nil
	}
	return g.References(p)
}

// closure is the set of paths reachable from p by references, p included.
func (g *Glue) closure(p string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	todo := []string{p}
	for len(todo) > 0 {
		q := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[q] {
			continue
		}
		seen[q] = true
		out = append(out, q)
		refs, err := g.references(q)
		if err != nil {
			return nil, err
		}
		todo = append(todo, refs...)
	}
	return out, nil
}
