package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/gc"
	"github.com/tvix-go/tvix/store/registry"
)

// gcCommands are `tvix store gc` and `tvix store delete`.
func gcCommands() []*cli.Command {
	common := func() []cli.Flag {
		return append(serviceFlags(), storeConfigFlag(),
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would be deleted and delete nothing"},
			&cli.DurationFlag{Name: "grace", Value: gc.DefaultGrace, Usage: "keep objects written, found or read less than `DURATION` ago (uploads without a session); 0 for none"},
			&cli.Float64Flag{Name: "compact-below", Value: gc.DefaultCompactBelow, Usage: "rewrite packs whose live fraction is below `F` (0: never)"},
			&cli.StringFlag{Name: "gc-roots", Usage: "embedded store: keep only the closures of the roots in the gcroots `DIR` (symlinks to store paths, auto/ for indirect roots, like /nix/var/nix/gcroots) and of --roots"},
		)
	}
	return []*cli.Command{
		{
			Name:  "gc",
			Usage: "delete what no root reaches: by default every path is a root and only unreferenced castore objects go; --roots keeps only the roots' closures (like nix-collect-garbage)",
			Flags: append(common(),
				&cli.StringSliceFlag{Name: "roots", Usage: "`FILE` of store paths (one a line) or DIR of symlinks to them, like /nix/var/nix/gcroots; repeatable; other paths are deleted"},
				&cli.StringFlag{Name: "max-freed", Usage: "stop deleting paths once their NAR sizes reach `SIZE` (bytes, or with K, M, G, T)"},
				&cli.StringFlag{Name: "max-size", Usage: "evict least recently used closures until the paths kept sum to at most `SIZE` of NAR"},
			),
			Action: storeGC,
		},
		{
			Name: "delete", Usage: "delete store paths nothing else refers to, like nix-store --delete", ArgsUsage: "STOREPATH...",
			Flags: common(), Action: storeDelete,
		},
	}
}

// parseSize reads "1048576", "512K", "10M", "1.5G", "2T" (powers of 1024;
// KiB/KB and the like mean the same).
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := 1.0
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			mult = float64(uint64(1) << (10 * (i + 1)))
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes, optionally with K, M, G or T", s)
	}
	return uint64(f * mult), nil
}

func gcOptions(c *cli.Context) (gc.Options, error) {
	opts := gc.Options{DryRun: c.Bool("dry-run"), Grace: c.Duration("grace"), CompactBelow: c.Float64("compact-below")}
	if opts.Grace == 0 {
		opts.Grace = -1
	}
	if opts.CompactBelow == 0 {
		opts.CompactBelow = -1
	}
	for _, r := range c.StringSlice("roots") {
		abs, err := filepath.Abs(r)
		if err != nil {
			return opts, err
		}
		if _, err := os.Stat(abs); err != nil {
			return opts, fmt.Errorf("--roots: %w", err)
		}
		opts.RootsFrom = append(opts.RootsFrom, abs)
		opts.GCRoots = true
	}
	for _, f := range []struct {
		name string
		to   *uint64
	}{{"max-freed", &opts.MaxFreed}, {"max-size", &opts.MaxSize}} {
		if !c.IsSet(f.name) {
			continue
		}
		n, err := parseSize(c.String(f.name))
		if err != nil {
			return opts, fmt.Errorf("--%s: %w", f.name, err)
		}
		*f.to = n
	}
	return opts, nil
}

func storeGC(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit("store gc: takes no arguments (store paths to delete go to tvix store delete)", 2)
	}
	opts, err := gcOptions(c)
	if err != nil {
		return err
	}
	return runGC(c, opts)
}

func storeDelete(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.Exit("store delete: give at least one STOREPATH", 2)
	}
	opts, err := gcOptions(c)
	if err != nil {
		return err
	}
	for _, a := range c.Args().Slice() {
		sp, _, err := storepath.ParsePrefix(a)
		if err != nil {
			if sp, err = storepath.FromBasename(a); err != nil {
				return fmt.Errorf("store delete: %q is not a store path", a)
			}
		}
		opts.Delete = append(opts.Delete, sp)
	}
	opts.GCRoots = true // a path a gcroot keeps is alive
	return runGC(c, opts)
}

// runGC collects in this process for an embedded store, and asks the
// daemon for one a daemon holds.
func runGC(c *cli.Context, opts gc.Options) error {
	ctx := c.Context
	a, err := storeAddrs(c)
	if err != nil {
		return err
	}
	var phase atomic.Value
	phase.Store("")
	var done, freed atomic.Int64
	opts.Progress = func(p gc.Progress) {
		phase.Store(p.Phase)
		done.Store(p.Done)
		freed.Store(p.Bytes)
	}
	stop := showProgress(stderrProgress(), "collecting garbage", "objects", func() progressState {
		return progressState{Bytes: freed.Load(), Items: done.Load()}
	})
	rep, err := collect(ctx, c, a, opts)
	stop()
	if err != nil {
		return err
	}
	for _, p := range rep.Deleted {
		fmt.Println(p)
	}
	if rep.DryRun && c.Bool("dry-run") && len(rep.Live) > 0 {
		fmt.Fprintf(os.Stderr, "%s would stay\n", count(len(rep.Live), "path"))
	}
	cs := rep.Castore
	verb := "freed"
	if rep.DryRun {
		verb = "would free"
	}
	fmt.Fprintf(os.Stderr, "%s %s: %s (%s of NAR), %s, %s, %s; %s removed, %s compacted (%s copied); %d touched objects kept; in %s\n",
		verb, mb(uint64(cs.BytesFreed)), count(len(rep.Deleted), "path"), mb(rep.DeletedNARBytes),
		dirCount(cs.Directories), count(int(cs.Blobs), "chunked blob"), count(int(cs.Chunks), "chunk"),
		count(int(cs.FilesRemoved), "pack"), count(int(cs.FilesCompacted), "pack"), mb(uint64(cs.BytesMoved)), cs.Kept, rep.Duration.Round(time.Millisecond))
	return nil
}

func collect(ctx context.Context, c *cli.Context, a registry.Addrs, opts gc.Options) (*gc.Report, error) {
	config, err := storeConfig(c)
	if err != nil {
		return nil, err
	}
	if config == "" && strings.HasPrefix(a.PathInfo, "grpc+") {
		if c.IsSet("gc-roots") {
			return nil, cli.Exit("store gc: --gc-roots is the daemon's setting (tvix daemon --gc-roots)", 2)
		}
		u, err := url.Parse(a.PathInfo)
		if err != nil {
			return nil, err
		}
		o := registry.Default().NewOpener(registry.Substitution{})
		defer o.Close()
		conn, err := o.Conn(ctx, u)
		if err != nil {
			return nil, err
		}
		return gc.CollectRemote(ctx, conn, opts)
	}
	var s *registry.Services
	if config != "" {
		// A shared store (S3 and PostgreSQL, say) is collected by any
		// process that opens it: the times in the store are its epoch.
		var comp *registry.Composition
		if comp, err = registry.ParseComposition(config); err == nil {
			s, err = registry.Default().OpenComposition(ctx, comp, registry.Substitution{})
		}
	} else {
		s, err = openStore(ctx, c, a, nil, func(string) string { return "--substituters" })
	}
	if err != nil {
		return nil, err
	}
	defer s.Close()
	col := &gc.Collector{Blobs: s.Blobs, Dirs: s.Directories, PathInfos: s.PathInfos, Access: gc.NewAccessLog(s.PathInfos)}
	if d := c.String("gc-roots"); d != "" {
		col.Roots = gc.NewRoots(d)
		opts.GCRoots = true
	}
	return col.Collect(ctx, opts)
}

func dirCount(n int64) string {
	if n == 1 {
		return "1 directory"
	}
	return fmt.Sprintf("%d directories", n)
}
