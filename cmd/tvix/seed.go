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
	"github.com/tvix-go/tvix/store/storepath"
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
	var roots []storepath.StorePath
	g := glue.New(context.Background(), glue.ComputeStore{})
	opts := eval.Options{NixPath: evalcli.NixPath(include, os.Getenv), Getenv: os.Getenv}
	g.Install(&opts)
	ev := eval.New(opts)
	cwd, _ := os.Getwd()
	var vals []eval.Value
	for _, e := range exprs {
		v, err := ev.EvalExpr(e, "«string»", cwd)
		if err != nil {
			return nil, fmt.Errorf("evaluate %q: %w", e, err)
		}
		vals = append(vals, v)
	}
	for _, f := range files {
		p, _ := filepath.Abs(f)
		v, err := ev.EvalFile(p)
		if err != nil {
			return nil, fmt.Errorf("evaluate %s: %w", f, err)
		}
		vals = append(vals, v)
	}
	if len(attrs) == 0 {
		attrs = []string{""}
	}
	empty := eval.NewAttrs(nil)
	for _, v := range vals {
		for _, a := range attrs {
			var sel eval.Value
			if _, err := ev.Run(func() eval.Value {
				sel = ev.AutoCall(ev.FindAttrPath(v, a, empty), empty)
				return nil
			}); err != nil {
				return nil, err
			}
			paths, err := g.OutputPaths(ev, sel)
			if err != nil {
				return nil, err
			}
			roots = append(roots, paths...)
		}
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("the expression evaluates to no derivations")
	}
	return roots, nil
}
