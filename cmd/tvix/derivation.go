package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/glue"
	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/registry"
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
			Flags: append([]cli.Flag{
				&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "also print every input derivation, transitively"},
			}, serviceFlags()...),
			Action: func(c *cli.Context) error {
				if c.NArg() == 0 {
					return cli.Exit("derivation show: want at least one .drv path or file", 2)
				}
				r := &drvReader{c: c}
				defer r.close()
				drvs, err := loadDerivations(c.Args().Slice(), c.Bool("recursive"), r.read)
				if err != nil {
					return err
				}
				return derivation.WriteJSON(os.Stdout, drvs)
			},
		}, {
			Name:      "verify",
			Usage:     "recompute output paths and .drv paths (reading input .drv files from the store) and report mismatches",
			ArgsUsage: "DRVPATH...",
			Flags:     serviceFlags(),
			Action: func(c *cli.Context) error {
				if c.NArg() == 0 {
					return cli.Exit("derivation verify: want at least one .drv path", 2)
				}
				r := &drvReader{c: c}
				defer r.close()
				lookup := derivation.NewModuloCache(r.read)
				bad := 0
				for _, p := range c.Args().Slice() {
					if err := verifyDerivation(p, r.read, lookup); err != nil {
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
func verifyDerivation(drvPath string, read func(string) ([]byte, error), lookup derivation.ModuloLookup) error {
	data, err := read(drvPath)
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
func loadDerivations(args []string, recursive bool, read func(string) ([]byte, error)) (map[string]*derivation.Derivation, error) {
	drvs := map[string]*derivation.Derivation{}
	var load func(file string, fromStore bool) error
	load = func(file string, fromStore bool) error {
		data, err := read(file)
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

// drvReader reads .drv files: store paths from the tvix store, where
// tvix instantiate writes them (the host's /nix/store when tvix does not
// have the path), other files from disk. The store is opened on the
// first store path, so showing a file needs none.
type drvReader struct {
	c      *cli.Context
	s      *registry.Services
	io     glue.StoreIO
	openEr error
}

func (r *drvReader) read(p string) ([]byte, error) {
	if _, err := storepath.Parse(p); err != nil {
		return os.ReadFile(p)
	}
	if r.s == nil && r.openEr == nil {
		r.s, r.openEr = openServices(r.c.Context, r.c)
		if r.openEr == nil {
			r.io = glue.StoreIO{Base: eval.OSIO{}, Ctx: r.c.Context, Blobs: r.s.Blobs, Dirs: r.s.Directories, PathInfo: r.s.PathInfos}
		}
	}
	if r.openEr != nil {
		return nil, fmt.Errorf("open the tvix store to read %s: %w", p, r.openEr)
	}
	data, err := r.io.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is neither in the tvix store nor on this machine", p)
	}
	return data, err
}

func (r *drvReader) close() {
	if r.s != nil {
		r.s.Close()
	}
}
