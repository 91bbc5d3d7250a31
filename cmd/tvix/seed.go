package main

import (
	"context"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

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
	drvs, err := glue.EvalDerivations(context.Background(), glue.Target{Exprs: exprs, Files: files, Attrs: attrs, Include: include, Dir: cwd})
	if err != nil {
		return nil, err
	}
	return glue.ChosenPaths(drvs)
}
