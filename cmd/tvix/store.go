package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/combined"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/importer"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// narCalc answers CalculateNAR for the daemon, remembering results: a node
// names immutable contents, so its NAR never changes.
type narCalc struct {
	s     *services
	mu    sync.Mutex
	cache map[string]narResult
}

type narResult struct {
	size uint64
	sum  [32]byte
}

const narCacheEntries = 4096

func (n *narCalc) CalculateNAR(ctx context.Context, node *castorev1.Node) (uint64, [32]byte, error) {
	key, err := proto.MarshalOptions{Deterministic: true}.Marshal(node)
	if err != nil {
		return 0, [32]byte{}, err
	}
	n.mu.Lock()
	r, ok := n.cache[string(key)]
	n.mu.Unlock()
	if ok {
		return r.size, r.sum, nil
	}
	size, sum, err := narcastore.CalculateNAR(ctx, node, n.s.blobs, n.s.dirs)
	if err != nil {
		return 0, sum, err
	}
	n.mu.Lock()
	if len(n.cache) >= narCacheEntries {
		clear(n.cache) // crude, but bounded; results are cheap to recompute
	}
	n.cache[string(key)] = narResult{size, sum}
	n.mu.Unlock()
	return size, sum, nil
}

func init() {
	narCalculator = func(s *services) pathinfo.NARCalculator { return &narCalc{s: s, cache: map[string]narResult{}} }
	register(&cli.Command{
		Name:  "store",
		Usage: "Nix store paths over castore: import, dump, list, query, verify",
		Subcommands: []*cli.Command{
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
					&cli.BoolFlag{Name: "references"}, &cli.BoolFlag{Name: "requisites", Aliases: []string{"R"}},
					&cli.BoolFlag{Name: "referrers"}, &cli.BoolFlag{Name: "hash"}, &cli.BoolFlag{Name: "size"}),
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
				Flags:  append(serviceFlags(), &cli.BoolFlag{Name: "check-contents"}),
				Action: storeVerify,
			},
		},
	})
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
	st := importer.Store{Blobs: s.blobs, Dirs: s.dirs, PathInfo: s.pathInfo}
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
		if algo == "" {
			sp, _, err = st.AddRecursive(ctx, p, c.String("name"), candidates...)
		} else {
			a, perr := nixhash.ParseAlgo(algo)
			if perr != nil {
				return perr
			}
			sp, _, err = st.AddFixed(ctx, p, c.String("name"), !c.Bool("flat"), a)
		}
		if err != nil {
			return err
		}
		fmt.Println(sp)
	}
	return nil
}

// lookup resolves a store path argument to its PathInfo.
func lookup(ctx context.Context, s *services, arg string) (storepath.StorePath, *storev1.PathInfo, error) {
	sp, _, err := storepath.ParsePrefix(arg)
	if err != nil {
		if sp, err = storepath.FromBasename(arg); err != nil {
			return sp, nil, err
		}
	}
	info, err := s.pathInfo.Get(ctx, sp.Digest)
	if errors.Is(err, pathinfo.ErrNotFound) {
		return sp, nil, fmt.Errorf("path '%s' is not in the store", sp)
	}
	return sp, info, err
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
	if err := narcastore.Render(c.Context, w, castore.RenameNode(info.GetNode(), nil), s.blobs, s.dirs); err != nil {
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
	for info, err := range s.pathInfo.List(c.Context) {
		if err != nil {
			return err
		}
		fmt.Printf("%s/%s\tsha256:%s\t%d\n", storepath.StoreDir, castore.NodeName(info.GetNode()),
			nixbase32.EncodeToString(info.GetNarinfo().GetNarSha256()), info.GetNarinfo().GetNarSize())
	}
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
			queue := []string{sp.Basename()}
			for len(queue) > 0 {
				b := queue[0]
				queue = queue[1:]
				if seen[storepath.StoreDir+"/"+b] {
					continue
				}
				add(storepath.StoreDir + "/" + b)
				_, ri, err := lookup(ctx, s, b)
				if err != nil {
					return err
				}
				queue = append(queue, ri.GetNarinfo().GetReferenceNames()...)
			}
		case c.Bool("referrers"):
			for other, err := range s.pathInfo.List(ctx) {
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
	damaged := 0
	for info, err := range s.pathInfo.List(ctx) {
		if err != nil {
			return err
		}
		name := storepath.StoreDir + "/" + string(castore.NodeName(info.GetNode()))
		node := castore.RenameNode(info.GetNode(), nil)
		if c.Bool("check-contents") {
			size, sum, err := narcastore.CalculateNAR(ctx, node, s.blobs, s.dirs)
			switch {
			case err != nil:
				fmt.Fprintf(os.Stderr, "path '%s' is damaged: %v\n", name, err)
				damaged++
			case size != info.GetNarinfo().GetNarSize() || string(sum[:]) != string(info.GetNarinfo().GetNarSha256()):
				fmt.Fprintf(os.Stderr, "path '%s' was modified! expected hash 'sha256:%s', got 'sha256:%s'\n", name,
					nixbase32.EncodeToString(info.GetNarinfo().GetNarSha256()), nixbase32.EncodeToString(sum[:]))
				damaged++
			}
			continue
		}
		if err := checkPresent(ctx, s, node); err != nil {
			fmt.Fprintf(os.Stderr, "path '%s' is damaged: %v\n", name, err)
			damaged++
		}
	}
	if damaged > 0 {
		return cli.Exit(fmt.Sprintf("store verify: %d damaged paths", damaged), 1)
	}
	return nil
}

// checkPresent checks every directory and blob of a node's closure is
// there, without reading blob contents.
func checkPresent(ctx context.Context, s *services, node *castorev1.Node) error {
	return forEachBlob(ctx, s, node, func(d castore.Digest) error {
		ok, err := s.blobs.Has(ctx, d)
		if err == nil && !ok {
			err = fmt.Errorf("blob %s missing", d)
		}
		return err
	})
}

// forEachBlob calls fn with the digest of every file in node's closure.
func forEachBlob(ctx context.Context, s *services, node *castorev1.Node, fn func(castore.Digest) error) error {
	visit := func(dg []byte) error {
		d, err := castore.DigestFromBytes(dg)
		if err != nil {
			return err
		}
		return fn(d)
	}
	switch {
	case node.GetFile() != nil:
		return visit(node.GetFile().GetDigest())
	case node.GetDirectory() != nil:
		root, err := castore.DigestFromBytes(node.GetDirectory().GetDigest())
		if err != nil {
			return err
		}
		for dir, err := range s.dirs.GetRecursive(ctx, root) {
			if err != nil {
				return err
			}
			for _, f := range dir.GetFiles() {
				if err := visit(f.GetDigest()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func storeCopy(c *cli.Context) error {
	ctx := c.Context
	if c.NArg() == 0 {
		return cli.Exit("store copy: give at least one STOREPATH", 2)
	}
	subs := strings.TrimSpace(c.String("from") + " " + c.String("substituters"))
	if err := c.Set("substituters", subs); err != nil {
		return err
	}
	s, err := openServices(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	roots, err := seedPaths(c)
	if err != nil {
		return err
	}
	start := time.Now()
	n, bytes, err := copyClosure(ctx, s, roots, func(done int, narBytes uint64, p string) {
		fmt.Fprintf(os.Stderr, "\rcopied %d paths, %.1f MB (NAR)  %s", done, float64(narBytes)/1e6, p)
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	slog.Info("copied closure", "paths", n, "nar_bytes", bytes, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// copyClosure asks the (substituting) path info service for every path of
// the closures of roots, so each is fetched into the local store, and
// makes contents lent read-through by a tvix upstream local too. Up to
// copyParallel paths are fetched at once; references are queued as each
// path arrives.
func copyClosure(ctx context.Context, s *services, roots []storepath.StorePath, progress func(int, uint64, string)) (int, uint64, error) {
	const copyParallel = 8
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu       sync.Mutex
		seen     = map[[20]byte]bool{}
		done     int
		narBytes uint64
		wg       sync.WaitGroup
		sem      = make(chan struct{}, copyParallel)
	)
	var fetch func(sp storepath.StorePath)
	fetch = func(sp storepath.StorePath) {
		mu.Lock()
		if seen[sp.Digest] || ctx.Err() != nil {
			mu.Unlock()
			return
		}
		seen[sp.Digest] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			info, err := s.pathInfo.Get(ctx, sp.Digest)
			if err == nil {
				err = materialize(ctx, s, castore.RenameNode(info.GetNode(), nil))
			}
			if err != nil {
				cancel(fmt.Errorf("copy %s: %w", sp, err))
				return
			}
			mu.Lock()
			done++
			narBytes += info.GetNarinfo().GetNarSize()
			progress(done, narBytes, sp.String())
			mu.Unlock()
			for _, r := range info.GetNarinfo().GetReferenceNames() {
				rp, err := storepath.FromBasename(r)
				if err != nil {
					cancel(fmt.Errorf("copy %s: reference: %w", sp, err))
					return
				}
				fetch(rp)
			}
		}()
	}
	for _, r := range roots {
		fetch(r)
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return done, narBytes, err
	}
	return done, narBytes, nil
}

// materialize copies blobs a read-through upstream holds into the near
// store; with only local services it has nothing to do.
func materialize(ctx context.Context, s *services, node *castorev1.Node) error {
	cb, ok := s.blobs.(combined.Blobs)
	if !ok {
		return nil
	}
	return forEachBlob(ctx, s, node, func(d castore.Digest) error {
		if ok, err := cb.Near.Has(ctx, d); err != nil || ok {
			return err
		}
		r, err := cb.Far.Open(ctx, d)
		if err != nil {
			return err
		}
		defer r.Close()
		w, err := cb.Near.Put(ctx, castore.WithExpectedDigest(d))
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			w.Abort()
			return err
		}
		_, err = w.Close()
		return err
	})
}
