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
	if err := rd.node(node, "/"); err != nil {
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
}

func (rd *renderer) node(n *castorev1.Node, path string) error {
	if err := rd.ctx.Err(); err != nil {
		return err
	}
	switch {
	case n.GetFile() != nil:
		return rd.file(n.GetFile(), path)
	case n.GetSymlink() != nil:
		if err := rd.nw.Symlink(n.GetSymlink().GetTarget()); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	case n.GetDirectory() != nil:
		return rd.directory(n.GetDirectory(), path)
	}
	return fmt.Errorf("%s: node has no directory, file or symlink", path)
}

func (rd *renderer) file(f *castorev1.FileNode, path string) error {
	d, err := castore.DigestFromBytes(f.GetDigest())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	br, err := rd.blobs.Open(rd.ctx, d)
	if err != nil {
		return fmt.Errorf("%s: open blob %s: %w", path, d, err)
	}
	defer br.Close()
	// Catch a size mismatch before writing the header, so the output is
	// not left with a half-written file when the store knows better.
	if sz := br.Size(); sz >= 0 && uint64(sz) != f.GetSize() {
		if uint64(sz) < f.GetSize() {
			return fmt.Errorf("%s: blob %s has %d bytes, node says %d: %w", path, d, sz, f.GetSize(), io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("%s: blob %s has %d bytes, node says %d", path, d, sz, f.GetSize())
	}
	if err := rd.nw.File(f.GetExecutable(), f.GetSize(), br); err != nil {
		return fmt.Errorf("%s: blob %s: %w", path, d, err)
	}
	return nil
}

func (rd *renderer) directory(dn *castorev1.DirectoryNode, path string) error {
	d, err := castore.DigestFromBytes(dn.GetDigest())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dir, ok := rd.dirs[d]
	if !ok {
		return fmt.Errorf("%s: directory %s: %w", path, d, castore.ErrNotFound)
	}
	if err := rd.nw.Directory(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	ds, fs, ss := dir.GetDirectories(), dir.GetFiles(), dir.GetSymlinks()
	sep := path
	if sep != "/" {
		sep += "/"
	}
	// Merge the three sorted lists into one ascending sequence of names.
	for len(ds)+len(fs)+len(ss) > 0 {
		var child *castorev1.Node
		var name []byte
		switch {
		case len(ds) > 0 && (len(fs) == 0 || bytes.Compare(ds[0].GetName(), fs[0].GetName()) < 0) &&
			(len(ss) == 0 || bytes.Compare(ds[0].GetName(), ss[0].GetName()) < 0):
			name, child = ds[0].GetName(), &castorev1.Node{Node: &castorev1.Node_Directory{Directory: ds[0]}}
			ds = ds[1:]
		case len(fs) > 0 && (len(ss) == 0 || bytes.Compare(fs[0].GetName(), ss[0].GetName()) < 0):
			name, child = fs[0].GetName(), &castorev1.Node{Node: &castorev1.Node_File{File: fs[0]}}
			fs = fs[1:]
		default:
			name, child = ss[0].GetName(), &castorev1.Node{Node: &castorev1.Node_Symlink{Symlink: ss[0]}}
			ss = ss[1:]
		}
		if err := rd.nw.Entry(name); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := rd.node(child, sep+string(name)); err != nil {
			return err
		}
	}
	if err := rd.nw.Leave(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
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
