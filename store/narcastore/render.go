package narcastore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/nar"
)

// Render writes the NAR of node (its name is ignored) to w. Blobs are
// streamed; a blob whose length differs from its FileNode.size is an error
// (shorter: io.ErrUnexpectedEOF), as is a missing blob or directory
// (castore.ErrNotFound). The directory closure is fetched with one
// GetRecursive, which is a single round trip for remote services.
func Render(ctx context.Context, w io.Writer, node *castorev1.Node, blobs castore.BlobService, dirs castore.DirectoryService) error {
	if err := castore.ValidateNode(node); err != nil {
		return fmt.Errorf("render NAR: %w", err)
	}
	rd := &renderer{ctx: ctx, blobs: blobs, nw: nar.NewWriter(w)}
	if d := node.GetDirectory(); d != nil {
		root, _ := castore.DigestFromBytes(d.GetDigest())
		rd.dirs = map[castore.Digest]*castorev1.Directory{}
		for dir, err := range dirs.GetRecursive(ctx, root) {
			if err != nil {
				return fmt.Errorf("render NAR: get directory closure of %s: %w", root, err)
			}
			if err := castore.ValidateDirectory(dir); err != nil {
				return fmt.Errorf("render NAR: %w", err)
			}
			rd.dirs[castore.DirectoryDigest(dir)] = dir
		}
	}
	if err := rd.node(node); err != nil {
		return fmt.Errorf("render NAR: %w", err)
	}
	if err := rd.nw.Close(); err != nil {
		return fmt.Errorf("render NAR: %w", err)
	}
	return nil
}

type renderer struct {
	ctx   context.Context
	blobs castore.BlobService
	dirs  map[castore.Digest]*castorev1.Directory
	nw    *nar.Writer
	// open is the directories being written, outermost first. The walk
	// keeps its own stack instead of recursing, and names a path only
	// when an error needs it: both would otherwise grow with the square
	// of the nesting depth (a path string per level, a frame per level).
	open []openDir
}

// openDir is a directory whose entries are being written: what is left of
// its three sorted lists and the name it has in its parent.
type openDir struct {
	name []byte
	ds   []*castorev1.DirectoryNode
	fs   []*castorev1.FileNode
	ss   []*castorev1.SymlinkNode
}

// path is where the walk is, for error messages: the open directories,
// then child if it is not nil.
func (rd *renderer) path(child []byte) string {
	if len(rd.open) == 0 {
		return "/"
	}
	parts := make([][]byte, 0, len(rd.open))
	for _, o := range rd.open[1:] {
		parts = append(parts, o.name)
	}
	if child != nil {
		parts = append(parts, child)
	}
	return elide("/" + string(bytes.Join(parts, []byte("/"))))
}

// elide shortens a path for an error message: a tree nested many
// thousands deep would otherwise make its errors megabytes long.
func elide(p string) string {
	const keep = 200
	if len(p) <= 2*keep {
		return p
	}
	return fmt.Sprintf("%s...(%d bytes)...%s", p[:keep], len(p)-2*keep, p[len(p)-keep:])
}

// node writes n and, for a directory, everything under it.
func (rd *renderer) node(n *castorev1.Node) error {
	if err := rd.child(nil, n); err != nil {
		return err
	}
	for len(rd.open) > 0 {
		if err := rd.ctx.Err(); err != nil {
			return err
		}
		top := &rd.open[len(rd.open)-1]
		if len(top.ds)+len(top.fs)+len(top.ss) == 0 {
			if err := rd.nw.Leave(); err != nil {
				return fmt.Errorf("%s: %w", rd.path(nil), err)
			}
			rd.open = rd.open[:len(rd.open)-1]
			continue
		}
		name, child := top.next()
		if err := rd.nw.Entry(name); err != nil {
			return fmt.Errorf("%s: %w", rd.path(name), err)
		}
		if err := rd.child(name, child); err != nil {
			return err
		}
	}
	return nil
}

// next takes the entry that comes first in byte order off the three lists.
func (o *openDir) next() ([]byte, *castorev1.Node) {
	ds, fs, ss := o.ds, o.fs, o.ss
	switch {
	case len(ds) > 0 && (len(fs) == 0 || bytes.Compare(ds[0].GetName(), fs[0].GetName()) < 0) &&
		(len(ss) == 0 || bytes.Compare(ds[0].GetName(), ss[0].GetName()) < 0):
		o.ds = ds[1:]
		return ds[0].GetName(), &castorev1.Node{Node: &castorev1.Node_Directory{Directory: ds[0]}}
	case len(fs) > 0 && (len(ss) == 0 || bytes.Compare(fs[0].GetName(), ss[0].GetName()) < 0):
		o.fs = fs[1:]
		return fs[0].GetName(), &castorev1.Node{Node: &castorev1.Node_File{File: fs[0]}}
	default:
		o.ss = ss[1:]
		return ss[0].GetName(), &castorev1.Node{Node: &castorev1.Node_Symlink{Symlink: ss[0]}}
	}
}

// child writes a file or symlink whole; a directory is opened and pushed,
// its entries left to the walk.
func (rd *renderer) child(name []byte, n *castorev1.Node) error {
	switch {
	case n.GetFile() != nil:
		return rd.file(n.GetFile(), name)
	case n.GetSymlink() != nil:
		if err := rd.nw.Symlink(n.GetSymlink().GetTarget()); err != nil {
			return fmt.Errorf("%s: %w", rd.path(name), err)
		}
		return nil
	case n.GetDirectory() != nil:
		return rd.directory(n.GetDirectory(), name)
	}
	return fmt.Errorf("%s: node has no directory, file or symlink", rd.path(name))
}

func (rd *renderer) file(f *castorev1.FileNode, name []byte) error {
	d, err := castore.DigestFromBytes(f.GetDigest())
	if err != nil {
		return fmt.Errorf("%s: %w", rd.path(name), err)
	}
	br, err := rd.blobs.Open(rd.ctx, d)
	if err != nil {
		return fmt.Errorf("%s: open blob %s: %w", rd.path(name), d, err)
	}
	defer br.Close()
	// Catch a size mismatch before writing the header, so the output is
	// not left with a half-written file when the store knows better.
	if sz := br.Size(); sz >= 0 && uint64(sz) != f.GetSize() {
		if uint64(sz) < f.GetSize() {
			return fmt.Errorf("%s: blob %s has %d bytes, node says %d: %w", rd.path(name), d, sz, f.GetSize(), io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("%s: blob %s has %d bytes, node says %d", rd.path(name), d, sz, f.GetSize())
	}
	if err := rd.nw.File(f.GetExecutable(), f.GetSize(), br); err != nil {
		return fmt.Errorf("%s: blob %s: %w", rd.path(name), d, err)
	}
	return nil
}

func (rd *renderer) directory(dn *castorev1.DirectoryNode, name []byte) error {
	d, err := castore.DigestFromBytes(dn.GetDigest())
	if err != nil {
		return fmt.Errorf("%s: %w", rd.path(name), err)
	}
	dir, ok := rd.dirs[d]
	if !ok {
		return fmt.Errorf("%s: directory %s: %w", rd.path(name), d, castore.ErrNotFound)
	}
	if err := rd.nw.Directory(); err != nil {
		return fmt.Errorf("%s: %w", rd.path(name), err)
	}
	rd.open = append(rd.open, openDir{name: name, ds: dir.GetDirectories(), fs: dir.GetFiles(), ss: dir.GetSymlinks()})
	return nil
}

// CalculateNAR renders node's NAR into a hasher and returns its size and
// sha256, what a PathInfo's narinfo needs.
func CalculateNAR(ctx context.Context, node *castorev1.Node, blobs castore.BlobService, dirs castore.DirectoryService) (uint64, [32]byte, error) {
	c := &countingHash{h: sha256.New()}
	var sum [32]byte
	if err := Render(ctx, c, node, blobs, dirs); err != nil {
		return 0, sum, err
	}
	copy(sum[:], c.h.Sum(nil))
	return c.n, sum, nil
}
