package glue

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/eval/evalcli"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// Target says what to evaluate: expressions (relative paths in them
// resolved against Dir) and files, each with every attribute path of
// Attrs selected (the whole value when there is none).
type Target struct {
	Exprs, Files, Attrs, Include []string
	Dir                          string
}

// Chosen is a derivation an attribute path selected.
type Chosen struct {
	Attr string
	Selected
}

// EvalDerivations evaluates in read-only mode (computing paths, writing
// nothing) and lists the derivations the target names, as nix-instantiate
// would instantiate them. An evaluation error is an *eval.Error.
func EvalDerivations(ctx context.Context, t Target) ([]Chosen, error) {
	g := New(ctx, ComputeStore{})
	opts := eval.Options{NixPath: evalcli.NixPath(t.Include, os.Getenv), Getenv: os.Getenv}
	g.Install(&opts)
	return chooseDerivations(g, opts, t)
}

// InstantiateTarget is EvalDerivations writing: sources and .drv files go
// into the services, durable before it returns, so the derivations can be
// built from the store.
func InstantiateTarget(ctx context.Context, t Target, blobs castore.BlobService, dirs castore.DirectoryService, pis pathinfo.Service) ([]Chosen, error) {
	opts := eval.Options{NixPath: evalcli.NixPath(t.Include, os.Getenv), Getenv: os.Getenv}
	g, wb := installWriting(ctx, &opts, blobs, dirs, pis)
	chosen, err := chooseDerivations(g, opts, t)
	if err != nil {
		return nil, err
	}
	if err := wb.Flush(ctx); err != nil {
		return nil, fmt.Errorf("write derivations to the store: %w", err)
	}
	return chosen, nil
}

func chooseDerivations(g *Glue, opts eval.Options, t Target) ([]Chosen, error) {
	ev := eval.New(opts)
	var vals []eval.Value
	for _, e := range t.Exprs {
		v, err := ev.EvalExpr(e, "«string»", t.Dir)
		if err != nil {
			return nil, fmt.Errorf("evaluate %q: %w", e, err)
		}
		vals = append(vals, v)
	}
	for _, f := range t.Files {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(t.Dir, p)
		}
		v, err := ev.EvalFile(p)
		if err != nil {
			return nil, fmt.Errorf("evaluate %s: %w", f, err)
		}
		vals = append(vals, v)
	}
	attrs := t.Attrs
	if len(attrs) == 0 {
		attrs = []string{""}
	}
	empty := eval.NewAttrs(nil)
	var out []Chosen
	for _, v := range vals {
		for _, a := range attrs {
			var sel eval.Value
			if _, err := ev.Run(func() eval.Value {
				sel = ev.AutoCall(ev.FindAttrPath(v, a, empty), empty)
				return nil
			}); err != nil {
				return nil, err
			}
			drvs, err := g.Derivations(ev, sel)
			if err != nil {
				return nil, err
			}
			for _, d := range drvs {
				out = append(out, Chosen{Attr: a, Selected: d})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the expression evaluates to no derivations")
	}
	return out, nil
}

// ChosenPaths lists the selected output paths of drvs, each once.
func ChosenPaths(drvs []Chosen) ([]storepath.StorePath, error) {
	sel := make([]Selected, len(drvs))
	for i, d := range drvs {
		sel[i] = d.Selected
	}
	return SelectedPaths(sel)
}
