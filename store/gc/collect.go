package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/combined"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storev1"
)

// DefaultGrace is how long before a collection what was touched (written,
// found by Has, opened) is still kept: an upload over gRPC or nar-bridge
// has no session, and its blobs, directories and PathInfo arrive one
// after the other.
const DefaultGrace = time.Hour

// DefaultCompactBelow is the live fraction under which a pack is
// rewritten: at half dead, copying the live half frees as much as it
// writes.
const DefaultCompactBelow = 0.5

// Options say what a collection deletes. The zero value keeps every
// PathInfo (a binary cache keeps what it serves) and deletes the castore
// objects none of them reaches.
type Options struct {
	// RootsFrom are files (store paths, one a line) or directories of
	// symlinks (like /nix/var/nix/gcroots). With any of them, or with
	// GCRoots, only the closures of the roots (and of the temporary roots)
	// stay; the other PathInfos are deleted first, as nix-collect-garbage
	// does.
	RootsFrom []string
	// GCRoots adds the roots in the Collector's Roots.Dir (FindRoots).
	GCRoots bool
	// Delete names paths to delete, as nix-store --delete: the collection
	// fails, deleting nothing, if one is still alive (a root, or referred
	// to by a path that stays). Only these paths go, and the castore
	// objects nothing else uses.
	Delete []storepath.StorePath
	// DryRun decides and reports, deleting nothing.
	DryRun bool
	// MaxFreed stops deleting paths once the NAR sizes of those deleted
	// reach it (0: no limit); the rest stay, with their references.
	MaxFreed uint64
	// MaxSize evicts least recently used closures until the NAR sizes of
	// the paths that stay sum to at most it (0: no limit). Roots and
	// temporary roots are never evicted, and a path goes only with every
	// path that refers to it, so no closure that stays is broken.
	MaxSize uint64
	// Grace: objects touched less than this before the collection are
	// kept (0: DefaultGrace; negative: none, for a store nobody else
	// writes to).
	Grace time.Duration
	// CompactBelow (0: DefaultCompactBelow; negative: never compact).
	CompactBelow float64
	// Progress, if set, is told what the collection is doing.
	Progress func(Progress)
}

// Progress is a collection's state.
type Progress struct {
	Phase string // "roots", "delete", "mark", "sweep directories", "sweep blobs", "compact"
	// Done of Total items of the phase (Total 0: not known).
	Done, Total int64
	// Bytes freed (or moved, compacting) so far in the phase.
	Bytes int64
}

// Report is what a collection did (or, dry, would do).
type Report struct {
	DryRun bool
	// Deleted are the paths deleted; Live, for a dry run, those that stay.
	Deleted, Live []storepath.StorePath
	// DeletedNARBytes sums the deleted paths' NAR sizes.
	DeletedNARBytes uint64
	// Castore is what the blob and directory services swept.
	Castore castore.SweepReport
	// Reachable counts what the mark found.
	ReachableDirectories, ReachableBlobs int64
	Duration                             time.Duration
}

func (r *Report) String() string {
	verb := "deleted"
	if r.DryRun {
		verb = "would delete"
	}
	c := r.Castore
	return fmt.Sprintf("%s %d paths (%d NAR bytes), %d directories, %d blobs, %d chunks; %d packs removed, %d compacted (%d bytes moved); %d bytes freed; %d touched objects kept; in %s",
		verb, len(r.Deleted), r.DeletedNARBytes, c.Directories, c.Blobs, c.Chunks, c.FilesRemoved, c.FilesCompacted, c.BytesMoved, c.BytesFreed, c.Kept, r.Duration.Round(time.Millisecond))
}

// Collector collects the garbage of one store. Collections run one at a
// time.
type Collector struct {
	Blobs     castore.BlobService
	Dirs      castore.DirectoryService
	PathInfos pathinfo.Service
	// Roots may be nil: no temporary or indirect roots.
	Roots *Roots
	// Access, if set, orders MaxSize evictions (least recently used
	// first); without it every path counts as used as long ago.
	Access *AccessLog

	mu sync.Mutex
}

// ErrAlive is returned (wrapped) when Options.Delete names a live path.
var ErrAlive = errors.New("path is still alive")

// pathRecord is what a collection needs of a PathInfo.
type pathRecord struct {
	sp      storepath.StorePath
	refs    [][storepath.DigestSize]byte
	narSize uint64
	node    *storev1.PathInfo
}

// Collect runs one collection.
func (c *Collector) Collect(ctx context.Context, opts Options) (*Report, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	grace := opts.Grace
	if grace == 0 {
		grace = DefaultGrace
	}
	epoch := start
	if grace > 0 {
		epoch = start.Add(-grace)
	}
	var temp []storepath.StorePath
	if c.Roots != nil {
		var oldest time.Time
		temp, oldest = c.Roots.TempRoots()
		if !oldest.IsZero() && oldest.Before(epoch) {
			epoch = oldest
		}
	}
	progress := func(p Progress) {
		if opts.Progress != nil {
			opts.Progress(p)
		}
	}
	progress(Progress{Phase: "roots"})
	paths, err := c.listPaths(ctx)
	if err != nil {
		return nil, err
	}
	roots, explicit, err := c.roots(ctx, opts, temp)
	if err != nil {
		return nil, err
	}
	var atimes map[[storepath.DigestSize]byte]int64
	if opts.MaxSize > 0 && c.Access != nil {
		if atimes, err = c.Access.Times(ctx); err != nil {
			return nil, fmt.Errorf("collect garbage: %w", err)
		}
	}
	dead, err := c.choose(paths, roots, explicit, atimes, opts)
	if err != nil {
		return nil, err
	}
	rep := &Report{DryRun: opts.DryRun}
	if opts.DryRun {
		for d, p := range paths {
			if !dead[d] {
				rep.Live = append(rep.Live, p.sp)
			}
		}
		sortPaths(rep.Live)
	}
	order := deletionOrder(paths, dead)
	if opts.MaxFreed > 0 {
		var sum uint64
		for i, d := range order {
			if sum >= opts.MaxFreed {
				order = order[:i]
				break
			}
			sum += paths[d].narSize
		}
	}
	if opts.DryRun {
		for _, d := range order {
			rep.Deleted = append(rep.Deleted, paths[d].sp)
			rep.DeletedNARBytes += paths[d].narSize
			delete(paths, d)
		}
	} else if len(order) > 0 {
		progress(Progress{Phase: "delete", Total: int64(len(order))})
		del, ok := castore.As[pathinfo.Deleter](c.PathInfos)
		if !ok {
			return nil, errors.New("collect garbage: the path info service cannot delete paths")
		}
		gone, err := del.Delete(ctx, order)
		if err != nil {
			return nil, fmt.Errorf("collect garbage: %w", err)
		}
		for _, d := range gone {
			rep.Deleted = append(rep.Deleted, paths[d].sp)
			rep.DeletedNARBytes += paths[d].narSize
		}
		if len(gone) < len(order) {
			slog.Info("collect garbage: paths spared, a path put meanwhile refers to them", "spared", len(order)-len(gone))
		}
		progress(Progress{Phase: "delete", Done: int64(len(gone)), Total: int64(len(order))})
		// The mark starts from what is recorded now, puts since the listing
		// included.
		if paths, err = c.listPaths(ctx); err != nil {
			return nil, err
		}
	}
	sortPaths(rep.Deleted)
	m, err := c.mark(ctx, paths, progress)
	if err != nil {
		return nil, err
	}
	rep.ReachableDirectories, rep.ReachableBlobs = int64(len(m.dirs)), int64(len(m.blobs))
	compact := opts.CompactBelow
	if compact == 0 {
		compact = DefaultCompactBelow
	}
	if compact < 0 {
		compact = 0
	}
	dirs, dok := castore.As[castore.Collectable](near(c.Dirs))
	blobs, bok := castore.As[castore.Collectable](near(c.Blobs))
	if dok {
		r, err := dirs.Sweep(ctx, castore.SweepRequest{Live: m.hasDir, Since: epoch, DryRun: opts.DryRun,
			Progress: sweepProgress("sweep directories", progress)})
		if err != nil {
			return nil, fmt.Errorf("collect garbage: sweep directories: %w", err)
		}
		rep.Castore = rep.Castore.Add(r)
	}
	if bok {
		r, err := blobs.Sweep(ctx, castore.SweepRequest{Live: m.hasBlob, Since: epoch, DryRun: opts.DryRun, CompactBelow: compact,
			Progress: sweepProgress("sweep blobs", progress)})
		if err != nil {
			return nil, fmt.Errorf("collect garbage: sweep blobs: %w", err)
		}
		rep.Castore = rep.Castore.Add(r)
	}
	if !dok && !bok {
		return nil, errors.New("collect garbage: neither the blob nor the directory service can delete (a remote store collects its own garbage: ask its daemon)")
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// near is the store a read-through layer writes to: only it is ours to
// collect, the far one is an upstream.
func near[T any](svc T) any {
	switch s := any(svc).(type) {
	case combined.Blobs:
		return s.Near
	case *combined.Blobs:
		return s.Near
	case combined.Directories:
		return s.Near
	case *combined.Directories:
		return s.Near
	}
	return svc
}

func sweepProgress(phase string, progress func(Progress)) func(castore.SweepProgress) {
	return func(p castore.SweepProgress) {
		if p.Phase == "compact" {
			phase = "compact"
		}
		progress(Progress{Phase: phase, Done: p.Objects, Bytes: p.Bytes})
	}
}

func sortPaths(ps []storepath.StorePath) {
	slices.SortFunc(ps, func(a, b storepath.StorePath) int { return strings.Compare(a.String(), b.String()) })
}

func (c *Collector) listPaths(ctx context.Context) (map[[storepath.DigestSize]byte]*pathRecord, error) {
	paths := map[[storepath.DigestSize]byte]*pathRecord{}
	for info, err := range c.PathInfos.List(ctx) {
		if err != nil {
			return nil, fmt.Errorf("collect garbage: list paths: %w", err)
		}
		sp, err := pathinfo.Validate(info)
		if err != nil {
			return nil, fmt.Errorf("collect garbage: list paths: %w", err)
		}
		r := &pathRecord{sp: sp, narSize: info.GetNarinfo().GetNarSize(), node: info}
		for _, ref := range info.GetReferences() {
			if len(ref) == storepath.DigestSize {
				r.refs = append(r.refs, [storepath.DigestSize]byte(ref))
			}
		}
		paths[sp.Digest] = r
	}
	return paths, nil
}

// roots gathers the roots; explicit says whether the options named any
// (otherwise every path is one).
func (c *Collector) roots(ctx context.Context, opts Options, temp []storepath.StorePath) (map[[storepath.DigestSize]byte]bool, bool, error) {
	roots := map[[storepath.DigestSize]byte]bool{}
	for _, p := range temp {
		roots[p.Digest] = true
	}
	explicit := len(opts.RootsFrom) > 0 || opts.GCRoots
	for _, name := range opts.RootsFrom {
		ps, err := ReadRoots(ctx, name)
		if err != nil {
			return nil, false, fmt.Errorf("collect garbage: %w", err)
		}
		for _, p := range ps {
			roots[p.Digest] = true
		}
	}
	if opts.GCRoots && c.Roots != nil {
		found, err := c.Roots.FindRoots(ctx)
		if err != nil {
			return nil, false, fmt.Errorf("collect garbage: %w", err)
		}
		for _, p := range found {
			roots[p.Digest] = true
		}
	}
	return roots, explicit, nil
}

// closureOf marks everything from starts reaches in paths.
func closureOf(paths map[[storepath.DigestSize]byte]*pathRecord, starts map[[storepath.DigestSize]byte]bool) map[[storepath.DigestSize]byte]bool {
	seen := map[[storepath.DigestSize]byte]bool{}
	var stack [][storepath.DigestSize]byte
	for d := range starts {
		if _, ok := paths[d]; ok && !seen[d] {
			seen[d] = true
			stack = append(stack, d)
		}
	}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, r := range paths[d].refs {
			if _, ok := paths[r]; ok && !seen[r] {
				seen[r] = true
				stack = append(stack, r)
			}
		}
	}
	return seen
}

// choose decides which paths go.
func (c *Collector) choose(paths map[[storepath.DigestSize]byte]*pathRecord, roots map[[storepath.DigestSize]byte]bool, explicit bool, atimes map[[storepath.DigestSize]byte]int64, opts Options) (map[[storepath.DigestSize]byte]bool, error) {
	dead := map[[storepath.DigestSize]byte]bool{}
	if len(opts.Delete) > 0 {
		for _, p := range opts.Delete {
			if _, ok := paths[p.Digest]; ok {
				dead[p.Digest] = true
			}
		}
		// What stays (every other path, the roots included) keeps alive
		// what it reaches.
		stay := map[[storepath.DigestSize]byte]bool{}
		for d := range paths {
			if !dead[d] {
				stay[d] = true
			}
		}
		for d := range roots {
			stay[d] = true
		}
		alive := closureOf(paths, stay)
		for _, p := range opts.Delete {
			if alive[p.Digest] {
				return nil, fmt.Errorf("collect garbage: cannot delete %s: %w (%s)", p, ErrAlive, why(paths, roots, dead, p.Digest))
			}
		}
		return dead, nil
	}
	keep := map[[storepath.DigestSize]byte]bool{}
	if explicit {
		keep = closureOf(paths, roots)
		for d := range paths {
			if !keep[d] {
				dead[d] = true
			}
		}
	} else {
		for d := range paths {
			keep[d] = true
		}
	}
	if opts.MaxSize > 0 {
		for _, d := range c.evict(paths, keep, closureOf(paths, roots), atimes, opts.MaxSize) {
			dead[d] = true
		}
	}
	return dead, nil
}

// why says what keeps a path alive, for the error.
func why(paths map[[storepath.DigestSize]byte]*pathRecord, roots, dead map[[storepath.DigestSize]byte]bool, d [storepath.DigestSize]byte) string {
	if roots[d] {
		return "it is a root"
	}
	for od, r := range paths {
		if od != d && slices.Contains(r.refs, d) {
			if dead[od] {
				return fmt.Sprintf("%s, also to be deleted but alive, refers to it", r.sp)
			}
			return fmt.Sprintf("%s refers to it", r.sp)
		}
	}
	return "a root's closure holds it"
}

// deletionOrder sorts the dead paths referrers first: deleted in this
// order, cut off anywhere (MaxFreed, a crash), every path left still has
// its references.
func deletionOrder(paths map[[storepath.DigestSize]byte]*pathRecord, dead map[[storepath.DigestSize]byte]bool) [][storepath.DigestSize]byte {
	keys := make([][storepath.DigestSize]byte, 0, len(dead))
	for d := range dead {
		keys = append(keys, d)
	}
	sort.Slice(keys, func(i, j int) bool { return paths[keys[i]].sp.String() < paths[keys[j]].sp.String() })
	// Depth-first post-order over references gives references first;
	// reversed, referrers first.
	seen := map[[storepath.DigestSize]byte]bool{}
	var post [][storepath.DigestSize]byte
	var visit func(d [storepath.DigestSize]byte)
	visit = func(d [storepath.DigestSize]byte) {
		seen[d] = true
		for _, r := range paths[d].refs {
			if dead[r] && !seen[r] {
				visit(r)
			}
		}
		post = append(post, d)
	}
	for _, d := range keys {
		if !seen[d] {
			visit(d)
		}
	}
	slices.Reverse(post)
	return post
}
