package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/fstree"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/closure"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/nixcache"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/registry"
	"github.com/tvix-go/tvix/store/storev1"
)

func storeCommands() []*cli.Command {
	var cmds []*cli.Command
	cmds = append(cmds, &cli.Command{
		Name:  "store",
		Usage: "Nix store paths over castore: import, dump, list, query, verify, gc, delete",
		Subcommands: append([]*cli.Command{
			{
				Name: "import", Usage: "add paths like nix-store --add (or --add-fixed), print store paths", ArgsUsage: "PATH...",
				Flags: append(serviceFlags(),
					&cli.BoolFlag{Name: "flat", Usage: "hash the file's contents, not its NAR (like --add-fixed without --recursive)"},
					&cli.StringFlag{Name: "fixed", Usage: "fixed-output hash algorithm (md5, sha1, sha256, sha512), like nix-store --add-fixed"},
					&cli.StringFlag{Name: "name", Usage: "store path name (default: the basename)"},
					&cli.StringSliceFlag{Name: "references-from", Usage: "scan for references to `STOREPATH` (repeatable); found ones become references"},
				),
				Action: storeImport,
			},
			{
				Name: "dump", Usage: "write the NAR of a store path to stdout, like nix-store --dump", ArgsUsage: "STOREPATH",
				Flags: serviceFlags(), Action: storeDump,
			},
			{
				Name: "ls", Usage: "list every store path with its NAR hash and size", Flags: serviceFlags(), Action: storeLs,
			},
			{
				Name: "query", Usage: "like nix-store -q", ArgsUsage: "STOREPATH...",
				Flags: append(serviceFlags(),
					&cli.BoolFlag{Name: "references", Usage: "print the paths each STOREPATH refers to directly"},
					&cli.BoolFlag{Name: "requisites", Aliases: []string{"R"}, Usage: "print each STOREPATH's closure (itself and everything it refers to, transitively)"},
					&cli.BoolFlag{Name: "referrers", Usage: "print the paths in the store that refer to each STOREPATH"},
					&cli.BoolFlag{Name: "hash", Usage: "print each STOREPATH's NAR hash"},
					&cli.BoolFlag{Name: "size", Usage: "print each STOREPATH's NAR size in bytes"}),
				Action: storeQuery,
			},
			{
				Name: "copy", Usage: "substitute store paths (or an expression's outputs) and their closures from --from", ArgsUsage: "STOREPATH...|FILE|-E EXPR",
				Flags: append(serviceFlags(),
					&cli.StringFlag{Name: "from", Required: true, Usage: "upstream `URL`: nix+http(s)://, nix+file:// binary cache or grpc+unix://, grpc+http:// tvix"},
					&cli.BoolFlag{Name: "expr", Aliases: []string{"E"}, Usage: "the argument is a Nix expression evaluating to derivations"},
					&cli.StringSliceFlag{Name: "attr", Aliases: []string{"A"}, Usage: "attribute `PATH` to select (repeatable)"},
					&cli.StringSliceFlag{Name: "include", Aliases: []string{"I"}, Usage: "Nix search path entry"}),
				Action: storeCopy,
			},
			{
				Name: "verify", Usage: "check every path's contents are present (and with --check-contents, hash to its NAR hash)",
				Flags:  append(serviceFlags(), &cli.BoolFlag{Name: "check-contents", Usage: "also read every path's contents and compare them to its NAR hash (reads the whole store)"}),
				Action: storeVerify,
			},
		}, gcCommands()...),
	})
	return cmds
}

func storeImport(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.Exit("store import: give at least one PATH", 2)
	}
	ctx := c.Context
	s, err := openServices(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	st := importer.Store{Blobs: s.Blobs, Dirs: s.Directories, PathInfo: s.PathInfos}
	algo := c.String("fixed")
	if c.Bool("flat") && algo == "" {
		algo = "sha256"
	}
	var candidates []storepath.StorePath
	for _, r := range c.StringSlice("references-from") {
		sp, _, err := lookup(ctx, s, r)
		if err != nil {
			return fmt.Errorf("--references-from: %w", err)
		}
		candidates = append(candidates, sp)
	}
	if len(candidates) > 0 && algo != "" {
		return cli.Exit("store import: --references-from only works with recursive (NAR) hashing", 2)
	}
	for _, p := range c.Args().Slice() {
		var sp storepath.StorePath
		st.Progress = &fstree.Progress{}
		stop := treeProgress("importing "+p, p, st.Progress)
		if algo == "" {
			sp, _, err = st.AddRecursive(ctx, p, c.String("name"), candidates...)
		} else {
			a, perr := nixhash.ParseAlgo(algo)
			if perr != nil {
				return perr
			}
			sp, _, err = st.AddFixed(ctx, p, c.String("name"), !c.Bool("flat"), a)
		}
		stop()
		if err != nil {
			return err
		}
		fmt.Println(sp)
	}
	return nil
}

// lookup resolves a store path argument to its PathInfo.
func lookup(ctx context.Context, s *registry.Services, arg string) (storepath.StorePath, *storev1.PathInfo, error) {
	sp, _, err := storepath.ParsePrefix(arg)
	if err != nil {
		if sp, err = storepath.FromBasename(arg); err != nil {
			return sp, nil, err
		}
	}
	info, err := closureStore(s).Lookup(ctx, sp)
	return sp, info, err
}

// closureStore is the view of the services closure operations take.
func closureStore(s *registry.Services) closure.Store {
	return closure.Store{Blobs: s.Blobs, Dirs: s.Directories, PathInfos: s.PathInfos}
}

func storeDump(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("store dump: want one STOREPATH", 2)
	}
	s, err := openServices(c.Context, c)
	if err != nil {
		return err
	}
	defer s.Close()
	_, info, err := lookup(c.Context, s, c.Args().First())
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	if err := narcastore.Render(c.Context, w, castore.RenameNode(info.GetNode(), nil), s.Blobs, s.Directories); err != nil {
		return err
	}
	return w.Flush()
}

func storeLs(c *cli.Context) error {
	s, err := openServices(c.Context, c)
	if err != nil {
		return err
	}
	defer s.Close()
	n, bytes := 0, uint64(0)
	for info, err := range s.PathInfos.List(c.Context) {
		if err != nil {
			return err
		}
		n++
		bytes += info.GetNarinfo().GetNarSize()
		fmt.Printf("%s/%s\tsha256:%s\t%d\n", storepath.StoreDir, castore.NodeName(info.GetNode()),
			nixbase32.EncodeToString(info.GetNarinfo().GetNarSha256()), info.GetNarinfo().GetNarSize())
	}
	// On stderr, so the listing stays one path per line for scripts.
	fmt.Fprintf(os.Stderr, "%s, %s (NAR)\n", count(n, "store path"), mb(bytes))
	return nil
}

func storeQuery(c *cli.Context) error {
	ctx := c.Context
	s, err := openServices(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, arg := range c.Args().Slice() {
		sp, info, err := lookup(ctx, s, arg)
		if err != nil {
			return err
		}
		switch {
		case c.Bool("references"):
			for _, r := range info.GetNarinfo().GetReferenceNames() {
				add(storepath.StoreDir + "/" + r)
			}
		case c.Bool("requisites"):
			req, err := closure.Requisites(ctx, closureStore(s), []storepath.StorePath{sp})
			if err != nil {
				return err
			}
			for _, p := range req {
				add(p.String())
			}
		case c.Bool("referrers"):
			for other, err := range s.PathInfos.List(ctx) {
				if err != nil {
					return err
				}
				for _, r := range other.GetNarinfo().GetReferenceNames() {
					if r == sp.Basename() {
						add(storepath.StoreDir + "/" + string(castore.NodeName(other.GetNode())))
					}
				}
			}
		case c.Bool("hash"):
			add("sha256:" + nixbase32.EncodeToString(info.GetNarinfo().GetNarSha256()))
		case c.Bool("size"):
			add(fmt.Sprint(info.GetNarinfo().GetNarSize()))
		default:
			add(sp.String())
		}
	}
	sort.Strings(out)
	for _, p := range out {
		fmt.Println(p)
	}
	return nil
}

func storeVerify(c *cli.Context) error {
	ctx := c.Context
	s, err := openServices(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	// The path infos are small: summing their NAR sizes first lets the
	// bar say how much of the contents are left to read.
	var total int64
	for info, err := range s.PathInfos.List(ctx) {
		if err != nil {
			return fmt.Errorf("list paths: %w", err)
		}
		total += int64(info.GetNarinfo().GetNarSize())
	}
	var bytes, paths atomic.Int64
	stop := showProgress(stderrProgress(), "verifying", "paths", func() progressState {
		return progressState{Bytes: bytes.Load(), Total: total, Items: paths.Load()}
	})
	rep, err := closure.VerifyWithProgress(ctx, closureStore(s), c.Bool("check-contents"), func(msg string) {
		fmt.Fprintln(os.Stderr, msg)
	}, closure.VerifyProgress{
		Read: func(n int) { bytes.Add(int64(n)) },
		Checked: func(narSize uint64) {
			if !c.Bool("check-contents") {
				bytes.Add(int64(narSize)) // nothing is read; the bar moves by path
			}
			paths.Add(1)
		},
	})
	stop()
	if err != nil {
		return err
	}
	fmt.Println(rep)
	if rep.Problems > 0 {
		return cli.Exit(fmt.Sprintf("store verify: %d problems, %d of %d paths damaged", rep.Problems, rep.Damaged, rep.Paths), 1)
	}
	if c.Bool("check-contents") {
		fmt.Fprintf(os.Stderr, "verified %s: all present, contents (%s of NAR) match their hashes\n", count(rep.Paths, "path"), mb(uint64(total)))
	} else {
		fmt.Fprintf(os.Stderr, "verified %s: all present (--check-contents also hashes them)\n", count(rep.Paths, "path"))
	}
	return nil
}

func storeCopy(c *cli.Context) error {
	ctx := c.Context
	if c.NArg() == 0 {
		return cli.Exit("store copy: give at least one STOREPATH", 2)
	}
	if os.Getenv("GOGC") == "" {
		// A copy streams: its live heap is a few buffers per NAR in flight
		// (about 17 MB: zstd windows, chunk buffers), and the collector's
		// default headroom doubles it. A third of that headroom: 360 small
		// paths peak at 55 MB (59 at half, 66 at the default; Nix: 31) for
		// 3% more CPU (means of 4 runs each).
		debug.SetGCPercent(35)
	}
	a, err := storeAddrs(c)
	if err != nil {
		return err
	}
	from := c.String("from")
	s, err := openStore(ctx, c, a, append([]string{from}, strings.Fields(c.String("substituters"))...), func(url string) string {
		if url == from {
			return "--from"
		}
		return "--substituters"
	})
	if err != nil {
		return err
	}
	defer s.Close()
	roots, err := seedPaths(c)
	if err != nil {
		return err
	}
	start := time.Now()
	cs := closureStore(s)
	// Asking the local store first, as the composite does anyway, tells
	// a path copied now from one that was there.
	var present atomic.Int64
	if comp, ok := s.PathInfos.(*nixcache.Composite); ok {
		cs.PathInfos = &localFirst{Service: comp, local: comp.Local, present: &present, fetched: map[string]bool{}}
	}
	var paths, bytes atomic.Int64
	// Bytes count as they arrive, so a large path moves the bar too.
	var transfers nixcache.Transfers
	ctx = nixcache.WithTransfers(ctx, &transfers)
	stop := showProgress(stderrProgress(), "copying", "paths", func() progressState {
		return progressState{Bytes: max(bytes.Load(), transfers.Bytes.Load()), Items: paths.Load(), Current: transfersNow(transfers.Running())}
	})
	n, narBytes, err := closure.Copy(ctx, cs, roots, func(done int, narBytes uint64, p string) {
		paths.Store(int64(done))
		bytes.Store(int64(narBytes))
		slog.Debug("copied", "path", p)
	})
	stop()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "copied %s (%d already present), %s (NAR) in %s\n", count(n, "path"), present.Load(), mb(narBytes),
		time.Since(start).Round(time.Millisecond))
	return nil
}

// localFirst counts the paths the local store already had. Substituting a
// path records its references first (the closure invariant), so a path
// found locally that a substitution of this copy brought in is not
// counted: its referrer marks it.
type localFirst struct {
	pathinfo.Service
	local   pathinfo.Service
	present *atomic.Int64

	mu      sync.Mutex
	fetched map[string]bool // basenames substituted by this copy
}

func (l *localFirst) Get(ctx context.Context, d [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	if info, err := l.local.Get(ctx, d); err == nil {
		l.mu.Lock()
		brought := l.fetched[string(castore.NodeName(info.GetNode()))]
		l.mu.Unlock()
		if brought {
			l.markReferences(info)
		} else {
			l.present.Add(1)
		}
		return info, nil
	}
	info, err := l.Service.Get(ctx, d)
	if err == nil {
		l.markReferences(info)
	}
	return info, err
}

// markReferences notes that info's references came with it.
func (l *localFirst) markReferences(info *storev1.PathInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range info.GetNarinfo().GetReferenceNames() {
		l.fetched[r] = true
	}
}
