package fstree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

// Export writes node to dest, which must not exist yet.
func Export(ctx context.Context, node *castorev1.Node, dest string, blobs castore.BlobService, dirs castore.DirectoryService) error {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("export to %s: already exists", dest)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("export to %s: %w", dest, err)
	}
	closure := map[castore.Digest]*castorev1.Directory{}
	if dn := node.GetDirectory(); dn != nil {
		root, err := castore.DigestFromBytes(dn.GetDigest())
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		for d, err := range dirs.GetRecursive(ctx, root) {
			if err != nil {
				return fmt.Errorf("export %s: %w", root, err)
			}
			closure[castore.DirectoryDigest(d)] = d
		}
	}
	return exportNode(ctx, node, dest, blobs, closure)
}

func exportNode(ctx context.Context, node *castorev1.Node, dest string, blobs castore.BlobService, closure map[castore.Digest]*castorev1.Directory) error {
	switch {
	case node.GetSymlink() != nil:
		return os.Symlink(string(node.GetSymlink().GetTarget()), dest)
	case node.GetFile() != nil:
		return exportFile(ctx, node.GetFile(), dest, blobs)
	case node.GetDirectory() != nil:
		d, _ := castore.DigestFromBytes(node.GetDirectory().GetDigest())
		dir, ok := closure[d]
		if !ok {
			return fmt.Errorf("export %s: directory %s: %w", dest, d, castore.ErrNotFound)
		}
		if err := os.Mkdir(dest, 0o755); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		for _, n := range dir.GetDirectories() {
			if err := exportNode(ctx, &castorev1.Node{Node: &castorev1.Node_Directory{Directory: n}}, filepath.Join(dest, string(n.GetName())), blobs, closure); err != nil {
				return err
			}
		}
		for _, n := range dir.GetFiles() {
			if err := exportFile(ctx, n, filepath.Join(dest, string(n.GetName())), blobs); err != nil {
				return err
			}
		}
		for _, n := range dir.GetSymlinks() {
			if err := os.Symlink(string(n.GetTarget()), filepath.Join(dest, string(n.GetName()))); err != nil {
				return fmt.Errorf("export: %w", err)
			}
		}
		return nil
	}
	return fmt.Errorf("export %s: empty node", dest)
}

func exportFile(ctx context.Context, n *castorev1.FileNode, dest string, blobs castore.BlobService) error {
	d, err := castore.DigestFromBytes(n.GetDigest())
	if err != nil {
		return fmt.Errorf("export %s: %w", dest, err)
	}
	r, err := blobs.Open(ctx, d)
	if err != nil {
		return fmt.Errorf("export %s: %w", dest, err)
	}
	defer r.Close()
	mode := os.FileMode(0o644)
	if n.GetExecutable() {
		mode = 0o755
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	written, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && uint64(written) != n.GetSize() {
		err = fmt.Errorf("blob %s has %d bytes, the node says %d", d, written, n.GetSize())
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", dest, err)
	}
	return nil
}
