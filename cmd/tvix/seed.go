package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/eval/evalcli"
	"github.com/tvix-go/tvix/glue"
	"github.com/tvix-go/tvix/nix/storepath"
)

// seedPaths turns a command's arguments into store paths: store paths as
// they are; with -E an expression, or a .nix file, evaluated (computing
// paths only, writing nothing) to the output paths of its derivations.
func seedPaths(c *cli.Context) ([]storepath.StorePath, error) {
	args := c.Args().Slice()
	var exprs, files []string
	var roots []storepath.StorePath
	for _, a := range args {
		switch {
		case c.Bool("expr"):
			exprs = append(exprs, a)
		case strings.HasPrefix(a, storepath.StoreDir+"/"):
			sp, _, err := storepath.ParsePrefix(a)
			if err != nil {
				return nil, err
			}
			roots = append(roots, sp)
		default:
			files = append(files, a)
		}
	}
	if len(exprs) == 0 && len(files) == 0 {
		return roots, nil
	}
	out, err := evalOutputs(exprs, files, c.StringSlice("attr"), c.StringSlice("include"))
	return append(roots, out...), err
}

// evalOutputs evaluates expressions and files (computing paths only) to
// the output paths of the derivations the selected attributes name.
func evalOutputs(exprs, files, attrs, include []string) ([]storepath.StorePath, error) {
	cwd, _ := os.Getwd()
	drvs, err := evalDerivations(evalTarget{Exprs: exprs, Files: files, Attrs: attrs, Include: include, Dir: cwd})
	if err != nil {
		return nil, err
	}
	return evalOutputsOf(drvs)
}

// evalOutputsOf lists the selected output paths of drvs, each once.
func evalOutputsOf(drvs []evalDrv) ([]storepath.StorePath, error) {
	sel := make([]glue.Selected, len(drvs))
	for i, d := range drvs {
		sel[i] = d.Selected
	}
	return glue.SelectedPaths(sel)
}

// evalTarget says what to evaluate: expressions (relative paths in them
// resolved against Dir) and files, each with every attribute path of
// Attrs selected (the whole value when there is none).
type evalTarget struct {
	Exprs, Files, Attrs, Include []string
	Dir                          string
}

// evalDrv is a derivation an attribute path selected.
type evalDrv struct {
	Attr string
	glue.Selected
}

// evalDerivations evaluates in read-only mode (computing paths, writing
// nothing) and lists the derivations the target names, as nix-instantiate
// would instantiate them. An evaluation error is an *eval.Error.
func evalDerivations(t evalTarget) ([]evalDrv, error) {
	g := glue.New(context.Background(), glue.ComputeStore{})
	opts := eval.Options{NixPath: evalcli.NixPath(t.Include, os.Getenv), Getenv: os.Getenv}
	g.Install(&opts)
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
	var out []evalDrv
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
				out = append(out, evalDrv{Attr: a, Selected: d})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the expression evaluates to no derivations")
	}
	return out, nil
}
