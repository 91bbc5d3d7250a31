package glue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/eval"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// StoreIO serves paths inside /nix/store from castore when the store knows
// them (readFile, pathExists, readDir and import of sources evaluation put
// there, with no /nix/store on disk), and everything else from Base.
type StoreIO struct {
	Base     eval.IO
	Ctx      context.Context
	Blobs    castore.BlobService
	Dirs     castore.DirectoryService
	PathInfo pathinfo.Service
}

var _ eval.IO = StoreIO{}

// maxSymlinks bounds symlink resolution, as the kernel's ELOOP does.
const maxSymlinks = 40

// resolve finds the node at p. ok is false when p is not a store path this
// store has, so the caller falls back to Base.
func (s StoreIO) resolve(p string, followLast bool) (*castorev1.Node, bool, error) {
	for hops := 0; hops <= maxSymlinks; hops++ {
		sp, sub, err := storepath.ParsePrefix(path.Clean(p))
		if err != nil {
			return nil, false, nil
		}
		info, err := s.PathInfo.Get(s.Ctx, sp.Digest)
		if errors.Is(err, pathinfo.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		node := info.GetNode()
		elems := strings.Split(strings.Trim(sub, "/"), "/")
		if sub == "" {
			elems = nil
		}
		restarted := false
		for i, e := range elems {
			if l := node.GetSymlink(); l != nil {
				// node is elems[:i]; its target is relative to its parent.
				parent := path.Dir(path.Join(append([]string{sp.String()}, elems[:i]...)...))
				p = joinTarget(parent, string(l.GetTarget()), strings.Join(elems[i:], "/"))
				restarted = true
				break
			}
			dn := node.GetDirectory()
			if dn == nil {
				return nil, true, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
			}
			d, err := castore.DigestFromBytes(dn.GetDigest())
			if err != nil {
				return nil, true, err
			}
			dir, err := s.Dirs.Get(s.Ctx, d)
			if err != nil {
				return nil, true, fmt.Errorf("%s: %w", p, err)
			}
			node = nil
			for _, c := range castore.Children(dir) {
				if string(castore.NodeName(c)) == e {
					node = c
					break
				}
			}
			if node == nil {
				return nil, true, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
			}
		}
		if restarted {
			continue
		}
		if l := node.GetSymlink(); l != nil && followLast {
			parent := path.Dir(sp.String() + sub)
			p = joinTarget(parent, string(l.GetTarget()), "")
			continue
		}
		return node, true, nil
	}
	return nil, true, fmt.Errorf("%s: too many levels of symbolic links", p)
}

// joinTarget resolves a symlink target found in dir, then appends rest.
func joinTarget(dir, target, rest string) string {
	if !strings.HasPrefix(target, "/") {
		target = path.Join(dir, target)
	}
	if rest != "" {
		target += "/" + rest
	}
	return path.Clean(target)
}

func (s StoreIO) ReadFile(p string) ([]byte, error) {
	node, ok, err := s.resolve(p, true)
	if !ok {
		return s.Base.ReadFile(p)
	}
	if err != nil {
		return nil, err
	}
	f := node.GetFile()
	if f == nil {
		return nil, fmt.Errorf("read %s: is a directory", p)
	}
	d, err := castore.DigestFromBytes(f.GetDigest())
	if err != nil {
		return nil, err
	}
	r, err := s.Blobs.Open(s.Ctx, d)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	defer r.Close()
	var buf bytes.Buffer
	buf.Grow(int(f.GetSize()))
	if _, err := io.Copy(&buf, r); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return buf.Bytes(), nil
}

func (s StoreIO) PathExists(p string) (bool, error) {
	_, ok, err := s.resolve(p, false)
	if !ok {
		return s.Base.PathExists(p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func nodeType(n *castorev1.Node) eval.FileType {
	switch {
	case n.GetDirectory() != nil:
		return eval.FileDirectory
	case n.GetFile() != nil:
		return eval.FileRegular
	case n.GetSymlink() != nil:
		return eval.FileSymlink
	}
	return eval.FileUnknown
}

func (s StoreIO) ReadDir(p string) ([]eval.DirEntry, error) {
	node, ok, err := s.resolve(p, true)
	if !ok {
		return s.Base.ReadDir(p)
	}
	if err != nil {
		return nil, err
	}
	dn := node.GetDirectory()
	if dn == nil {
		return nil, fmt.Errorf("read directory %s: not a directory", p)
	}
	d, err := castore.DigestFromBytes(dn.GetDigest())
	if err != nil {
		return nil, err
	}
	dir, err := s.Dirs.Get(s.Ctx, d)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", p, err)
	}
	var out []eval.DirEntry
	for _, c := range castore.Children(dir) {
		out = append(out, eval.DirEntry{Name: string(castore.NodeName(c)), Type: nodeType(c)})
	}
	return out, nil
}

func (s StoreIO) FileType(p string) (eval.FileType, error) {
	node, ok, err := s.resolve(p, false)
	if !ok {
		return s.Base.FileType(p)
	}
	if err != nil {
		return eval.FileUnknown, err
	}
	return nodeType(node), nil
}
