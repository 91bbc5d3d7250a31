package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/nix/storepath"
)

func derivationCommands() []*cli.Command {
	var cmds []*cli.Command
	cmds = append(cmds, &cli.Command{
		Name:  "derivation",
		Usage: "inspect .drv files",
		Subcommands: []*cli.Command{{
			Name:      "show",
			Usage:     "print derivations as JSON, like nix show-derivation",
			ArgsUsage: "DRVPATH|FILE...",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "also print every input derivation, transitively"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() == 0 {
					return cli.Exit("derivation show: want at least one .drv path or file", 2)
				}
				drvs, err := loadDerivations(c.Args().Slice(), c.Bool("recursive"))
				if err != nil {
					return err
				}
				return derivation.WriteJSON(os.Stdout, drvs)
			},
		}, {
			Name:      "verify",
			Usage:     "recompute output paths and .drv paths (reading input .drv files from the store) and report mismatches",
			ArgsUsage: "DRVPATH...",
			Action: func(c *cli.Context) error {
				if c.NArg() == 0 {
					return cli.Exit("derivation verify: want at least one .drv path", 2)
				}
				lookup := derivation.NewModuloCache(os.ReadFile)
				bad := 0
				for _, p := range c.Args().Slice() {
					if err := verifyDerivation(p, lookup); err != nil {
						fmt.Fprintf(os.Stderr, "%s: %v\n", p, err)
						bad++
						continue
					}
					fmt.Printf("%s: ok\n", p)
				}
				if bad > 0 {
					return cli.Exit(fmt.Sprintf("%d of %d derivations do not verify", bad, c.NArg()), 1)
				}
				return nil
			},
		}},
	})
	return cmds
}

// verifyDerivation checks that a .drv in the store prints back to its own
// bytes, lives at the path its contents give and has the output paths
// (outputs and env) its inputs give.
func verifyDerivation(drvPath string, lookup derivation.ModuloLookup) error {
	data, err := os.ReadFile(drvPath)
	if err != nil {
		return err
	}
	d, err := derivation.Parse(data)
	if err != nil {
		return err
	}
	if string(d.ATerm()) != string(data) {
		return fmt.Errorf("does not print back to the same bytes")
	}
	name, err := d.Name()
	if err != nil {
		return err
	}
	sp, err := d.DrvPath(name)
	if err != nil {
		return err
	}
	if sp.String() != drvPath {
		return fmt.Errorf("contents give path %s", sp)
	}
	c := d.Clone()
	if err := c.CalculateOutputPaths(name, lookup); err != nil {
		return err
	}
	for o, out := range d.Outputs {
		if c.Outputs[o] != out || c.Env[o] != d.Env[o] {
			return fmt.Errorf("output %s: computed %s, file has %s", o, c.Outputs[o].Path, out.Path)
		}
	}
	return nil
}

// loadDerivations reads .drv files, keyed by their store path: a path in
// the store is its own key; any other file is keyed by the path it would
// get when added, computed from its contents.
func loadDerivations(args []string, recursive bool) (map[string]*derivation.Derivation, error) {
	drvs := map[string]*derivation.Derivation{}
	var load func(file string, fromStore bool) error
	load = func(file string, fromStore bool) error {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("read derivation: %w", err)
		}
		d, err := derivation.Parse(data)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		key := file
		if !fromStore {
			name, err := d.Name()
			if err != nil {
				name = strings.TrimSuffix(filepath.Base(file), ".drv")
			}
			sp, err := d.DrvPath(name)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			key = sp.String()
		}
		if _, done := drvs[key]; done {
			return nil
		}
		drvs[key] = d
		if recursive {
			for in := range d.InputDerivations {
				if _, done := drvs[in]; !done {
					if err := load(in, true); err != nil {
						return err
					}
				}
			}
		}
		return nil
	}
	for _, a := range args {
		abs, err := filepath.Abs(a)
		if err != nil {
			return nil, err
		}
		_, err = storepath.Parse(abs)
		inStore := err == nil && strings.HasSuffix(abs, ".drv")
		if err := load(abs, inStore); err != nil {
			return nil, err
		}
	}
	return drvs, nil
}
