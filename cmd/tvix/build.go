package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/daemon"
	"github.com/tvix-go/tvix/glue"
	"github.com/tvix-go/tvix/nix/storepath"
)

func buildCommands() []*cli.Command {
	return []*cli.Command{{
		Name:      "build",
		Usage:     "build derivations (like nix-build) in a sandbox whose /nix/store is a lazy mount of exactly the inputs",
		ArgsUsage: "[FILE | -E EXPR | /nix/store/...drv]...",
		Flags: append(serviceFlags(),
			&cli.BoolFlag{Name: "expr", Aliases: []string{"E"}, Usage: "the arguments are Nix expressions"},
			&cli.StringSliceFlag{Name: "attr", Aliases: []string{"A"}, Usage: "attribute `PATH` to select (repeatable)"},
			&cli.StringSliceFlag{Name: "include", Aliases: []string{"I"}, Usage: "Nix search path entry"},
			&cli.StringFlag{Name: "out-link", Aliases: []string{"o"}, Value: "result", Usage: "name of the symlink to each output"},
			&cli.BoolFlag{Name: "no-out-link", Usage: "create no symlinks to the outputs"},
			&cli.IntFlag{Name: "max-jobs", Aliases: []string{"j"}, Value: 1, Usage: "builds run at once"},
			&cli.IntFlag{Name: "cores", Value: runtime.NumCPU(), Usage: "NIX_BUILD_CORES given to builders"},
			&cli.DurationFlag{Name: "timeout", Usage: "kill a build running longer than this (0: no limit)"},
			&cli.DurationFlag{Name: "max-silent-time", Usage: "kill a build that logs nothing for this long (0: no limit)"},
			&cli.StringFlag{Name: "backend", Value: "sandbox", Usage: "where builds run: sandbox (Linux namespaces, as Nix's sandbox) or microvm (a QEMU MicroVM per build; KVM when usable)"},
			&cli.IntFlag{Name: "vm-memory", Value: 512, Usage: "MiB of memory for each --backend microvm VM"},
			&cli.StringFlag{Name: "vm-init", EnvVars: []string{"TVIX_INIT"}, Usage: "tvix-init `PATH` for --backend microvm (default: next to tvix, in PATH)"},
			&cli.StringFlag{Name: "netrc-file", Usage: "credentials for builtin:fetchurl downloads (as Nix's netrc-file)"},
			&cli.StringFlag{Name: "builders", EnvVars: []string{"TVIX_BUILDERS"}, Usage: "space-separated remote builders (tvix daemons with --build-listen): grpc+unix:///sock or grpc+http://host:port, with ?slots=N&system=SYSTEM; none builds locally"},
		),
		Action: runBuild,
	}}
}

func runBuild(c *cli.Context) error {
	ctx := c.Context
	if c.NArg() == 0 {
		return cli.Exit("build: give a FILE, -E EXPR or a .drv store path", 2)
	}
	s, err := openServices(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	type wanted struct {
		drvPath string
		outputs []string // selected output names; all when empty
	}
	var want []wanted
	var exprs, files []string
	for _, a := range c.Args().Slice() {
		switch {
		case c.Bool("expr"):
			exprs = append(exprs, a)
		case strings.HasPrefix(a, storepath.StoreDir+"/") && strings.HasSuffix(a, ".drv"):
			want = append(want, wanted{drvPath: a})
		default:
			files = append(files, a)
		}
	}
	if len(exprs)+len(files) > 0 {
		cwd, _ := os.Getwd()
		chosen, err := glue.InstantiateTarget(ctx, glue.Target{Exprs: exprs, Files: files, Attrs: c.StringSlice("attr"),
			Include: c.StringSlice("include"), Dir: cwd}, s.Blobs, s.Directories, s.PathInfos)
		if err != nil {
			return err
		}
		for _, ch := range chosen {
			want = append(want, wanted{drvPath: ch.DrvPath, outputs: ch.Selected.Selected})
		}
	}
	var drvPaths []string
	for _, w := range want {
		drvPaths = append(drvPaths, w.drvPath)
	}
	builder, err := daemon.LocalBuilder(c.String("backend"), s, daemon.BuildConfig{Timeout: c.Duration("timeout"),
		MaxSilentTime: c.Duration("max-silent-time"), VMMemoryMB: c.Int("vm-memory"), VMInit: c.String("vm-init")})
	if err != nil {
		return err
	}
	fetched := s.ReceivedBytes
	if urls := strings.Fields(c.String("builders")); len(urls) > 0 {
		pool, closeBuilders, err := daemon.OpenBuilders(ctx, urls, s.Blobs, s.Directories)
		if err != nil {
			return err
		}
		defer closeBuilders()
		builder = pool
		fetched = func() uint64 { return s.ReceivedBytes() + pool.ReceivedBytes() }
	}
	logs := &prefixLogs{w: os.Stderr}
	r := &glue.Realiser{
		Blobs: s.Blobs, Dirs: s.Directories, PathInfos: s.PathInfos,
		Builder: builder,
		Jobs:    c.Int("max-jobs"), Cores: c.Int("cores"), NetrcFile: c.String("netrc-file"),
		Log:     logs.forDerivation,
		Started: func(p string) { fmt.Fprintf(os.Stderr, "building '%s'...\n", p) },
		Progress: func(st glue.Status) {
			if st.Running == 0 && st.Remaining() > 0 {
				return // between a build's end and the next start
			}
			slog.Info("build status", "built", st.Built, "running", st.Running, "remaining", st.Remaining(), "present", st.Present,
				"failed", st.Failed, "fetched_bytes", fetched())
		},
	}
	outs, err := r.Realise(ctx, drvPaths)
	logs.flush()
	if err != nil {
		return err
	}
	n := 0
	for _, w := range want {
		names := w.outputs
		if len(names) == 0 {
			for name := range outs[w.drvPath] {
				names = append(names, name)
			}
			sort.Strings(names)
		}
		for _, name := range names {
			p := outs[w.drvPath][name]
			if !c.Bool("no-out-link") {
				link := c.String("out-link")
				if n > 0 {
					link += fmt.Sprintf("-%d", n+1)
				}
				if name != "out" {
					link += "-" + name
				}
				if err := replaceSymlink(p, link); err != nil {
					return err
				}
			}
			fmt.Println(p)
		}
		n++
	}
	return nil
}

// replaceSymlink points link at target, as nix-build's out-links.
func replaceSymlink(target, link string) error {
	tmp := filepath.Join(filepath.Dir(link), "."+filepath.Base(link)+".tmp")
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("out-link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("out-link %s: %w", link, err)
	}
	return nil
}

// prefixLogs writes each build's log lines with the derivation's name in
// front, whole lines at a time, so parallel builds do not interleave
// within a line.
type prefixLogs struct {
	mu      sync.Mutex
	w       io.Writer
	pending []*prefixWriter
}

type prefixWriter struct {
	l      *prefixLogs
	prefix string
	buf    bytes.Buffer
}

func (l *prefixLogs) forDerivation(drvPath string) io.Writer {
	name := strings.TrimSuffix(filepath.Base(drvPath), ".drv")
	if i := strings.IndexByte(name, '-'); i >= 0 {
		name = name[i+1:]
	}
	pw := &prefixWriter{l: l, prefix: name + "> "}
	l.mu.Lock()
	l.pending = append(l.pending, pw)
	l.mu.Unlock()
	return pw
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.l.mu.Lock()
	defer p.l.mu.Unlock()
	p.buf.Write(b)
	for {
		line, err := p.buf.ReadBytes('\n')
		if err != nil {
			// An unfinished line waits for its end.
			p.buf.Write(line)
			return len(b), nil
		}
		fmt.Fprintf(p.l.w, "%s%s", p.prefix, line)
	}
}

// flush writes the unfinished last lines.
func (l *prefixLogs) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.pending {
		if p.buf.Len() > 0 {
			sc := bufio.NewScanner(&p.buf)
			for sc.Scan() {
				fmt.Fprintf(l.w, "%s%s\n", p.prefix, sc.Text())
			}
		}
	}
}
