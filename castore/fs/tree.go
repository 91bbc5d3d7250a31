// Package fs serves castore trees as a read-only filesystem: the root holds
// whatever a RootNodes lists (for Tvix, the store paths a PathInfoService
// knows: see store/storefs), each resolved only when looked up, with
// directories fetched from the DirectoryService and file contents streamed
// from the BlobService on demand.
//
// The tree (NewRawFileSystem) does not depend on a kernel mount, so the same
// tree can be served over /dev/fuse (Mount) or over virtio-fs.
//
// A process serving a mount must not fork/exec a program stored on that
// mount itself: Go's vfork-based exec keeps a P busy until the child's
// execve has read the binary, which this process has to serve; a garbage
// collection starting in that window waits for that P forever. Exec such
// programs through an intermediate process (e.g. /bin/sh -c 'exec "$0"').
package fs

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sort"
	"sync"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

// BlobService is what the filesystem needs from a castore.BlobService.
type BlobService interface {
	Open(ctx context.Context, d castore.Digest) (castore.BlobReader, error)
}

// DirectoryService is what the filesystem needs from a castore.DirectoryService.
type DirectoryService interface {
	Get(ctx context.Context, d castore.Digest) (*castorev1.Directory, error)
}

// RootNodes are the entries of the root directory, as in Tvix: castore
// nodes looked up by name, which the tree caches for the mount's lifetime
// (contents are addressed by digest, so an answer never goes stale).
type RootNodes interface {
	// Get returns the root node called name, carrying that name, or an
	// error wrapping castore.ErrNotFound when there is none. Any other
	// error reaches the reader as EIO.
	Get(ctx context.Context, name string) (*castorev1.Node, error)
	// List yields every root node; an error ends the listing.
	List(ctx context.Context) iter.Seq2[*castorev1.Node, error]
}

// Services are the stores a mount reads from.
type Services struct {
	Blobs       BlobService
	Directories DirectoryService
	Roots       RootNodes
}

// Options configure the tree and, for Mount, the kernel mount.
type Options struct {
	// ListRoot allows listing the root directory, which enumerates every
	// root node (RootNodes.List); without it readdir of the root fails
	// with EPERM (listing a large remote store is expensive).
	ListRoot bool
	// AllowOther lets users other than the mounting one see the mount.
	AllowOther bool
	// AllowNonEmpty mounts over a directory that has entries, hiding them
	// (e.g. over a nix-bin owned /nix/store inside a private mount
	// namespace). Without it Mount refuses a non-empty mountpoint.
	AllowNonEmpty bool
	// Timeout bounds every call to a service made while answering a
	// kernel request, so a hung backend yields EIO instead of a hung
	// process. Zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives errors the kernel only sees as an errno. Nil means
	// slog.Default().
	Logger *slog.Logger
	// ReadAheadKiB sets the kernel readahead of the mount (its
	// /sys/class/bdi/<dev>/read_ahead_kb, which FUSE starts at 128 KiB);
	// bigger reads mean fewer round trips for sequential reads. Zero means
	// DefaultReadAheadKiB, negative leaves the kernel's setting. Only
	// root can change it; failing to is logged, not fatal.
	ReadAheadKiB int
	// Debug logs every FUSE request (go-fuse's debug output).
	Debug bool
	// FixedRoots says the root nodes never change while the tree is
	// served (a build's inputs), so the kernel may remember names that
	// are not there, everywhere: compilers and configure scripts look up
	// many (include paths, PATH), each a round trip otherwise. A store
	// mount leaves it off, since a path may be substituted later.
	FixedRoots bool

	// skipDirectMount makes Mount go straight to fusermount (tests of
	// the fallback run as root, where mount(2) would succeed).
	skipDirectMount bool
}

// DefaultReadAheadKiB is the readahead window of the mount, as large as a
// virtio disk's default: FUSE requests are at most 1 MiB, so a window of
// several MiB keeps several requests (and their pack reads) in flight
// while the reader consumes the first. The kernel starts small and grows
// the window only for sequential readers.
const DefaultReadAheadKiB = 8192

// DefaultTimeout is the per-call service timeout when Options.Timeout is 0.
const DefaultTimeout = 2 * time.Minute

// Contents are immutable for the life of a mount, so the kernel may keep
// entries and attributes for as long as it likes.
const cacheForever = 365 * 24 * time.Hour

// Xattr names exposing a node's castore digest (as Tvix does).
const (
	XattrBlobDigest      = "user.tvix.castore.blob.digest"
	XattrDirectoryDigest = "user.tvix.castore.directory.digest"
)

// rootIno is fixed by the FUSE protocol; everything else is numbered from 2.
const rootIno = 1

type kind uint8

const (
	kindDir kind = iota + 1
	kindFile
	kindSymlink
)

// entry is one castore node as the filesystem needs it.
type entry struct {
	name   string
	kind   kind
	digest castore.Digest // directory or blob digest
	size   uint64         // DirectoryNode.size or FileNode.size
	exec   bool
	target string
}

func entryFromNode(n *castorev1.Node) (entry, error) {
	if err := castore.ValidateNode(n); err != nil {
		return entry{}, err
	}
	switch {
	case n.GetDirectory() != nil:
		d := n.GetDirectory()
		dg, _ := castore.DigestFromBytes(d.GetDigest())
		return entry{name: string(d.GetName()), kind: kindDir, digest: dg, size: d.GetSize()}, nil
	case n.GetFile() != nil:
		f := n.GetFile()
		dg, _ := castore.DigestFromBytes(f.GetDigest())
		return entry{name: string(f.GetName()), kind: kindFile, digest: dg, size: f.GetSize(), exec: f.GetExecutable()}, nil
	default:
		s := n.GetSymlink()
		return entry{name: string(s.GetName()), kind: kindSymlink, target: string(s.GetTarget())}, nil
	}
}

// dirContents is a fetched directory: its children merged from the three
// castore lists into one list in byte order, as Nix and Tvix list them.
type dirContents struct {
	children []entry
	subdirs  uint32
}

func (d *dirContents) find(name string) (entry, bool) {
	i := sort.Search(len(d.children), func(i int) bool { return d.children[i].name >= name })
	if i < len(d.children) && d.children[i].name == name {
		return d.children[i], true
	}
	return entry{}, false
}

// dirSlot lets concurrent lookups of one directory share one fetch.
type dirSlot struct {
	done chan struct{}
	dir  *dirContents
	err  error
}

// tree is the state shared by all nodes of one filesystem instance.
type tree struct {
	svc  Services
	opts Options
	log  *slog.Logger
	// ctx outlives single requests: blob readers opened by one READ are
	// used by the next ones, so they must not die with the first request.
	ctx context.Context

	mu sync.Mutex
	// inos numbers every (parent, name) ever seen, so an inode keeps its
	// number for the mount's lifetime even after the kernel forgets it.
	inos    map[inoKey]uint64
	nextIno uint64
	// roots caches resolved root nodes by name; their contents are
	// content-addressed, so an answer never goes stale.
	roots map[string]entry
	dirs  map[castore.Digest]*dirSlot
}

type inoKey struct {
	parent uint64
	name   string
}

func newTree(ctx context.Context, svc Services, opts Options) *tree {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &tree{
		svc: svc, opts: opts, log: log, ctx: ctx,
		inos:    make(map[inoKey]uint64),
		nextIno: rootIno + 1,
		roots:   make(map[string]entry),
		dirs:    make(map[castore.Digest]*dirSlot),
	}
}

// NewRawFileSystem returns the tree as a FUSE protocol handler: Mount
// serves it on /dev/fuse, virtiofs to VMs. ctx bounds the lifetime of blob
// readers; cancel it once the handler is no longer served.
func NewRawFileSystem(ctx context.Context, svc Services, opts Options) fuse.RawFileSystem {
	root := &rootNode{base: base{t: newTree(ctx, svc, opts)}}
	// No entry or attribute timeouts here: the tree sets them per reply (a
	// directory not fetched yet must not have its attributes cached, see
	// dirNode.Getattr).
	o := &gofs.Options{RootStableAttr: &gofs.StableAttr{Ino: rootIno, Gen: 1}}
	if opts.FixedRoots {
		forever := cacheForever
		o.NegativeTimeout = &forever
	}
	return gofs.NewNodeFS(root, o)
}

// ino returns the stable inode number of name in the directory parent.
func (t *tree) ino(parent uint64, name string) uint64 {
	k := inoKey{parent, name}
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.inos[k]
	if !ok {
		n = t.nextIno
		t.nextIno++
		t.inos[k] = n
	}
	return n
}

// callCtx bounds one service call by the request (the kernel may interrupt
// it) and by the configured timeout.
func (t *tree) callCtx(req context.Context) (context.Context, context.CancelFunc) {
	if req == nil {
		req = t.ctx
	}
	return context.WithTimeout(req, t.opts.Timeout)
}

// dir returns the contents of the directory with digest dg, fetching it
// once; failures are not cached, so a later access retries.
func (t *tree) dir(ctx context.Context, dg castore.Digest) (*dirContents, error) {
	t.mu.Lock()
	s, ok := t.dirs[dg]
	if !ok {
		s = &dirSlot{done: make(chan struct{})}
		t.dirs[dg] = s
	}
	t.mu.Unlock()
	if ok {
		select {
		case <-s.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if s.err == nil {
			return s.dir, nil
		}
		// The fetch we waited for failed; let this caller try again.
		return t.retryDir(ctx, dg, s)
	}
	s.dir, s.err = t.fetchDir(ctx, dg)
	if s.err != nil {
		t.mu.Lock()
		if t.dirs[dg] == s {
			delete(t.dirs, dg)
		}
		t.mu.Unlock()
	}
	close(s.done)
	return s.dir, s.err
}

func (t *tree) retryDir(ctx context.Context, dg castore.Digest, failed *dirSlot) (*dirContents, error) {
	t.mu.Lock()
	if t.dirs[dg] == failed {
		delete(t.dirs, dg)
	}
	t.mu.Unlock()
	return t.dir(ctx, dg)
}

// cachedDir returns a directory only if it was fetched already.
func (t *tree) cachedDir(dg castore.Digest) *dirContents {
	t.mu.Lock()
	s, ok := t.dirs[dg]
	t.mu.Unlock()
	if !ok {
		return nil
	}
	select {
	case <-s.done:
		return s.dir
	default:
		return nil
	}
}

func (t *tree) fetchDir(req context.Context, dg castore.Digest) (*dirContents, error) {
	ctx, cancel := t.callCtx(req)
	defer cancel()
	d, err := t.svc.Directories.Get(ctx, dg)
	if err != nil {
		return nil, fmt.Errorf("get directory %s: %w", dg, err)
	}
	// A directory from a remote service is checked before the kernel sees
	// its names: a name with a slash or a wrong digest must not get in.
	if got := castore.DirectoryDigest(d); got != dg {
		return nil, fmt.Errorf("get directory %s: service returned directory %s", dg, got)
	}
	if err := castore.ValidateDirectory(d); err != nil {
		return nil, fmt.Errorf("get directory %s: %w", dg, err)
	}
	c := &dirContents{children: make([]entry, 0, len(d.GetDirectories())+len(d.GetFiles())+len(d.GetSymlinks()))}
	for _, n := range d.GetDirectories() {
		dd, _ := castore.DigestFromBytes(n.GetDigest())
		c.children = append(c.children, entry{name: string(n.GetName()), kind: kindDir, digest: dd, size: n.GetSize()})
	}
	c.subdirs = uint32(len(d.GetDirectories()))
	for _, n := range d.GetFiles() {
		fd, _ := castore.DigestFromBytes(n.GetDigest())
		c.children = append(c.children, entry{name: string(n.GetName()), kind: kindFile, digest: fd, size: n.GetSize(), exec: n.GetExecutable()})
	}
	for _, n := range d.GetSymlinks() {
		c.children = append(c.children, entry{name: string(n.GetName()), kind: kindSymlink, target: string(n.GetTarget())})
	}
	sort.Slice(c.children, func(i, j int) bool { return c.children[i].name < c.children[j].name })
	return c, nil
}

// root resolves one root entry, asking RootNodes only for that name.
// found is false for a name RootNodes does not know.
func (t *tree) root(req context.Context, name string) (e entry, found bool, err error) {
	t.mu.Lock()
	e, ok := t.roots[name]
	t.mu.Unlock()
	if ok {
		return e, true, nil
	}
	ctx, cancel := t.callCtx(req)
	defer cancel()
	n, err := t.svc.Roots.Get(ctx, name)
	if errors.Is(err, castore.ErrNotFound) {
		return entry{}, false, nil
	}
	if err != nil {
		return entry{}, false, err
	}
	e, err = entryFromNode(n)
	if err != nil {
		return entry{}, false, fmt.Errorf("root node %s: %w", name, err)
	}
	// Caching under the name asked for a node named otherwise would show
	// one node under two names.
	if e.name != name {
		return entry{}, false, fmt.Errorf("root node %s: RootNodes returned a node named %q", name, e.name)
	}
	t.rememberRoot(e)
	return e, true, nil
}

func (t *tree) rememberRoot(e entry) {
	t.mu.Lock()
	t.roots[e.name] = e
	t.mu.Unlock()
}

// listRoot lists every root node, remembering each so the lookups that
// READDIRPLUS does next need no further service calls.
func (t *tree) listRoot(req context.Context) ([]entry, error) {
	ctx, cancel := t.callCtx(req)
	defer cancel()
	var out []entry
	for n, err := range t.svc.Roots.List(ctx) {
		if err != nil {
			return nil, fmt.Errorf("list root nodes: %w", err)
		}
		e, err := entryFromNode(n)
		if err == nil {
			if why := castore.ValidateName([]byte(e.name)); why != "" {
				err = fmt.Errorf("root node %q: %s", e.name, why)
			}
		}
		if err != nil {
			t.log.Warn("skipping invalid root node in root listing", "err", err)
			continue
		}
		t.rememberRoot(e)
		out = append(out, e)
	}
	return out, nil
}
