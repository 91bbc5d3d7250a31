package fs

import (
	"context"
	"errors"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tvix-go/tvix/castore"
)

// base carries the shared tree and refuses every write operation; each
// node type embeds it next to go-fuse's Inode.
type base struct{ t *tree }

func (base) Setattr(context.Context, gofs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
func (base) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (base) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (base) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (base) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (base) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (base) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (base) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (base) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }
func (base) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}
func (base) Setxattr(context.Context, string, []byte, uint32) syscall.Errno { return syscall.EROFS }
func (base) Removexattr(context.Context, string) syscall.Errno              { return syscall.EROFS }
func (base) Write(context.Context, gofs.FileHandle, []byte, int64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}
func (base) Allocate(context.Context, gofs.FileHandle, uint64, uint64, uint32) syscall.Errno {
	return syscall.EROFS
}
func (base) CopyFileRange(context.Context, gofs.FileHandle, uint64, *gofs.Inode, gofs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.EROFS
}

// Fsync has nothing to flush on a read-only filesystem.
func (base) Fsync(context.Context, gofs.FileHandle, uint32) syscall.Errno { return 0 }

func (base) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	// Sizes are unknown without walking the store; report an empty,
	// full filesystem with the limits the names obey.
	*out = fuse.StatfsOut{Bsize: 4096, Frsize: 4096, NameLen: 255}
	return 0
}

// access answers access(2): nothing is writable, everything readable,
// only directories and executables searchable/executable.
func access(mask uint32, mode uint32) syscall.Errno {
	const wOK, xOK = 2, 1
	switch {
	case mask&wOK != 0:
		return syscall.EROFS
	case mask&xOK != 0 && mode&0o111 == 0:
		return syscall.EACCES
	}
	return 0
}

// fillAttr sets the attributes every node shares: owner root, timestamps 1
// (as Nix sets them), store permissions.
func fillAttr(out *fuse.Attr, ino uint64, e entry, nlink uint32) {
	*out = fuse.Attr{Ino: ino, Nlink: nlink, Blksize: 4096}
	out.Atime, out.Mtime, out.Ctime = 1, 1, 1
	switch e.kind {
	case kindDir:
		out.Mode = syscall.S_IFDIR | 0o555
		out.Size = e.size
	case kindFile:
		out.Mode = syscall.S_IFREG | 0o444
		if e.exec {
			out.Mode |= 0o111
		}
		out.Size = e.size
		out.Blocks = (e.size + 4095) / 4096 * 8
	case kindSymlink:
		out.Mode = syscall.S_IFLNK | 0o777
		out.Size = uint64(len(e.target))
	}
}

func modeOf(k kind) uint32 {
	switch k {
	case kindDir:
		return syscall.S_IFDIR
	case kindSymlink:
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

// newChild makes the inode for e below parent and fills the lookup reply.
func (t *tree) newChild(ctx context.Context, parent *gofs.Inode, e entry, out *fuse.EntryOut) *gofs.Inode {
	ino := t.ino(parent.StableAttr().Ino, e.name)
	var node gofs.InodeEmbedder
	switch e.kind {
	case kindDir:
		node = &dirNode{base: base{t}, e: e}
	case kindFile:
		node = &fileNode{base: base{t}, e: e}
	default:
		node = &symlinkNode{base: base{t}, e: e}
	}
	out.SetEntryTimeout(cacheForever)
	t.attr(e, ino, &out.Attr, out.SetAttrTimeout)
	return parent.NewInode(ctx, node, gofs.StableAttr{Mode: modeOf(e.kind), Ino: ino, Gen: 1})
}

// attr fills the attributes of e without a service call. A directory's
// link count needs its contents; until they are fetched it is reported as
// 1 ("unknown", which find and fts understand) and not cached, so the next
// stat asks again (dirNode.Getattr fetches it then).
func (t *tree) attr(e entry, ino uint64, out *fuse.Attr, setTimeout func(time.Duration)) {
	nlink := uint32(1)
	cache := true
	if e.kind == kindDir {
		if d := t.cachedDir(e.digest); d != nil {
			nlink = 2 + d.subdirs
		} else {
			cache = false
		}
	}
	fillAttr(out, ino, e, nlink)
	if cache {
		setTimeout(cacheForever)
	}
}

// rootNode is the root directory: one entry per root node, resolved by
// name on lookup.
type rootNode struct {
	gofs.Inode
	base
}

var (
	_ gofs.NodeLookuper   = (*rootNode)(nil)
	_ gofs.NodeOpendirer  = (*rootNode)(nil)
	_ gofs.NodeReaddirer  = (*rootNode)(nil)
	_ gofs.NodeGetattrer  = (*rootNode)(nil)
	_ gofs.NodeStatfser   = (*rootNode)(nil)
	_ gofs.NodeAccesser   = (*rootNode)(nil)
	_ gofs.NodeSetattrer  = (*rootNode)(nil)
	_ gofs.NodeCreater    = (*rootNode)(nil)
	_ gofs.NodeMkdirer    = (*rootNode)(nil)
	_ gofs.NodeUnlinker   = (*rootNode)(nil)
	_ gofs.NodeRenamer    = (*rootNode)(nil)
	_ gofs.NodeSetxattrer = (*rootNode)(nil)
)

func (n *rootNode) Getattr(_ context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	// The number of root directories is unknown without listing them
	// all, so the link count is 1, the Linux convention for that.
	fillAttr(&out.Attr, rootIno, entry{kind: kindDir}, 1)
	out.SetTimeout(cacheForever)
	return 0
}

func (n *rootNode) Access(_ context.Context, mask uint32) syscall.Errno { return access(mask, 0o555) }

func (n *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if castore.ValidateName([]byte(name)) != "" {
		// No node can have this name: nothing to ask the service about.
		return nil, syscall.ENOENT
	}
	e, found, err := n.t.root(ctx, name)
	if err != nil {
		n.t.log.Error("lookup root node", "name", name, "err", err)
		return nil, errnoFor(ctx, err)
	}
	if !found {
		return nil, syscall.ENOENT
	}
	return n.t.newChild(ctx, &n.Inode, e, out), 0
}

func (n *rootNode) Opendir(context.Context) syscall.Errno {
	if !n.t.opts.ListRoot {
		return syscall.EPERM
	}
	return 0
}

func (n *rootNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	if !n.t.opts.ListRoot {
		return nil, syscall.EPERM
	}
	es, err := n.t.listRoot(ctx)
	if err != nil {
		n.t.log.Error("list root nodes", "err", err)
		return nil, errnoFor(ctx, err)
	}
	return n.t.dirStream(rootIno, es), 0
}

func (t *tree) dirStream(parent uint64, es []entry) gofs.DirStream {
	list := make([]fuse.DirEntry, len(es))
	for i, e := range es {
		list[i] = fuse.DirEntry{Name: e.name, Mode: modeOf(e.kind), Ino: t.ino(parent, e.name)}
	}
	return gofs.NewListDirStream(list)
}

// errnoFor maps a failed service call: an interrupted request reports
// EINTR, everything else EIO (the details are logged).
func errnoFor(ctx context.Context, err error) syscall.Errno {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	return syscall.EIO
}

// dirNode is a castore directory, fetched on first use.
type dirNode struct {
	gofs.Inode
	base
	e entry
}

var (
	_ gofs.NodeLookuper       = (*dirNode)(nil)
	_ gofs.NodeReaddirer      = (*dirNode)(nil)
	_ gofs.NodeOpendirHandler = (*dirNode)(nil)
	_ gofs.NodeGetattrer      = (*dirNode)(nil)
	_ gofs.NodeGetxattrer     = (*dirNode)(nil)
	_ gofs.NodeListxattrer    = (*dirNode)(nil)
)

func (n *dirNode) contents(ctx context.Context) (*dirContents, syscall.Errno) {
	d, err := n.t.dir(ctx, n.e.digest)
	if err != nil {
		n.t.log.Error("fetch directory", "path", n.Path(nil), "digest", n.e.digest.String(), "err", err)
		return nil, errnoFor(ctx, err)
	}
	return d, 0
}

func (n *dirNode) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ino := n.StableAttr().Ino
	if _, err := n.t.dir(ctx, n.e.digest); err != nil {
		// stat works even when the contents cannot be fetched; only
		// the link count is unknown then.
		n.t.log.Warn("fetch directory for stat", "path", n.Path(nil), "digest", n.e.digest.String(), "err", err)
	}
	n.t.attr(n.e, ino, &out.Attr, out.SetTimeout)
	return 0
}

func (n *dirNode) Access(_ context.Context, mask uint32) syscall.Errno { return access(mask, 0o555) }

func (n *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	d, errno := n.contents(ctx)
	if errno != 0 {
		return nil, errno
	}
	e, ok := d.find(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	return n.t.newChild(ctx, &n.Inode, e, out), 0
}

// OpendirHandle lets the kernel cache the listing (FOPEN_CACHE_DIR): a
// directory never changes, so a second readdir needs no request.
func (n *dirNode) OpendirHandle(ctx context.Context, _ uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	d, errno := n.contents(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	return n.t.dirStream(n.StableAttr().Ino, d.children), fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

func (n *dirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	d, errno := n.contents(ctx)
	if errno != 0 {
		return nil, errno
	}
	return n.t.dirStream(n.StableAttr().Ino, d.children), 0
}

func (n *dirNode) Getxattr(_ context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if attr != XattrDirectoryDigest {
		return 0, syscall.ENODATA
	}
	return xattrValue(n.e.digest.String(), dest)
}

func (n *dirNode) Listxattr(_ context.Context, dest []byte) (uint32, syscall.Errno) {
	return xattrValue(XattrDirectoryDigest+"\x00", dest)
}

// xattrValue follows getxattr(2): with a too small buffer report the size
// needed (go-fuse turns ERANGE into a size answer for size-0 queries).
func xattrValue(v string, dest []byte) (uint32, syscall.Errno) {
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// symlinkNode is a castore symlink.
type symlinkNode struct {
	gofs.Inode
	base
	e entry
}

var _ gofs.NodeReadlinker = (*symlinkNode)(nil)

func (n *symlinkNode) Getattr(_ context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.t.attr(n.e, n.StableAttr().Ino, &out.Attr, out.SetTimeout)
	return 0
}

func (n *symlinkNode) Readlink(context.Context) ([]byte, syscall.Errno) {
	return []byte(n.e.target), 0
}
