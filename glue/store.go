package glue

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/storepath"
)

// Filter decides whether an entry below an imported path is kept (the root
// itself always is). path is the absolute path on disk, typ "regular",
// "directory", "symlink" or "unknown", as builtins.filterSource passes them.
// A directory that is dropped is not descended into.
type Filter func(path, typ string) (bool, error)

// Store is what evaluation adds to the store. Both methods return the path
// the content has (computed exactly as C++ Nix computes it); an
// implementation may also persist the content.
type Store interface {
	// AddText stores a text file (builtins.toFile, .drv files) with the
	// given references.
	AddText(ctx context.Context, name string, contents []byte, refs []storepath.StorePath) (storepath.StorePath, error)
	// AddPath imports the file system tree at src under name, content
	// addressed by the sha256 of its NAR (recursive) or of the file's
	// bytes (flat), keeping only what filter (if non-nil) accepts.
	AddPath(ctx context.Context, name, src string, recursive bool, filter Filter) (storepath.StorePath, error)
}

// ComputeStore computes paths without writing anything: the read-only
// mode of nix-instantiate (--readonly-mode, --eval).
type ComputeStore struct{}

func (ComputeStore) AddText(_ context.Context, name string, contents []byte, refs []storepath.StorePath) (storepath.StorePath, error) {
	return TextPath(name, contents, refs)
}

func (ComputeStore) AddPath(_ context.Context, name, src string, recursive bool, filter Filter) (storepath.StorePath, error) {
	t, err := scan(src, filter)
	if err != nil {
		return storepath.StorePath{}, err
	}
	return t.path(name, recursive)
}

// TextPath is the path of a text file with references.
func TextPath(name string, contents []byte, refs []storepath.StorePath) (storepath.StorePath, error) {
	h := sha256.Sum256(contents)
	return storepath.MakeText(name, h[:], refs)
}

// DirStore writes what evaluation creates into Dir (normally /nix/store)
// as plain files, so tools that read .drv files (tvix derivation show,
// cat) find them. It registers nothing in any database.
type DirStore struct {
	Dir string
}

func (s DirStore) AddText(_ context.Context, name string, contents []byte, refs []storepath.StorePath) (storepath.StorePath, error) {
	sp, err := TextPath(name, contents, refs)
	if err != nil {
		return sp, err
	}
	dst := filepath.Join(s.Dir, sp.Basename())
	if _, err := os.Lstat(dst); err == nil {
		return sp, nil
	}
	err = s.place(dst, func(tmp string) error { return os.WriteFile(tmp, contents, 0o444) })
	return sp, err
}

func (s DirStore) AddPath(_ context.Context, name, src string, recursive bool, filter Filter) (storepath.StorePath, error) {
	t, err := scan(src, filter)
	if err != nil {
		return storepath.StorePath{}, err
	}
	sp, err := t.path(name, recursive)
	if err != nil {
		return sp, err
	}
	dst := filepath.Join(s.Dir, sp.Basename())
	if _, err := os.Lstat(dst); err == nil {
		return sp, nil
	}
	return sp, s.place(dst, t.copyTo)
}

// place builds a store entry under a temporary name and renames it into
// place, so a half-written path is never visible.
func (s DirStore) place(dst string, build func(tmp string) error) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("add to store: %w", err)
	}
	tmp, err := os.MkdirTemp(s.Dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("add to store: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := build(filepath.Join(tmp, "x")); err != nil {
		return fmt.Errorf("add %s to store: %w", dst, err)
	}
	if err := os.Rename(filepath.Join(tmp, "x"), dst); err != nil && !errors.Is(err, fs.ErrExist) {
		if _, statErr := os.Lstat(dst); statErr == nil {
			return nil // another writer won the race with the same content
		}
		return fmt.Errorf("add %s to store: %w", dst, err)
	}
	return nil
}

// node is a scanned, filtered file system tree. Scanning once lets the
// filter (a Nix function) run once per entry even though the tree is read
// twice, to hash and to copy.
type node struct {
	src      string
	kind     string // "regular", "directory", "symlink"
	exec     bool
	size     int64
	target   string
	children []child
}

type child struct {
	name string
	n    *node
}

func fileType(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return "unknown"
}

func scan(src string, filter Filter) (*node, error) {
	fi, err := os.Lstat(src)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	return scanNode(src, fi, filter)
}

func scanNode(p string, fi fs.FileInfo, filter Filter) (*node, error) {
	n := &node{src: p, kind: fileType(fi.Mode())}
	switch n.kind {
	case "regular":
		n.exec = fi.Mode()&0o100 != 0
		n.size = fi.Size()
	case "symlink":
		t, err := os.Readlink(p)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", p, err)
		}
		n.target = t
	case "directory":
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", p, err)
		}
		for _, e := range ents {
			cp := filepath.Join(p, e.Name())
			cfi, err := e.Info()
			if err != nil {
				return nil, fmt.Errorf("import %s: %w", cp, err)
			}
			if filter != nil {
				keep, err := filter(cp, fileType(cfi.Mode()))
				if err != nil {
					return nil, err
				}
				if !keep {
					continue
				}
			}
			c, err := scanNode(cp, cfi, filter)
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, child{e.Name(), c})
		}
		sort.Slice(n.children, func(i, j int) bool { return n.children[i].name < n.children[j].name })
	default:
		return nil, fmt.Errorf("import %s: file has an unsupported type", p)
	}
	return n, nil
}

// path computes the store path of the tree under name.
func (n *node) path(name string, recursive bool) (storepath.StorePath, error) {
	h := sha256.New()
	if recursive {
		w := nar.NewWriter(h)
		if err := n.nar(w); err != nil {
			return storepath.StorePath{}, err
		}
		if err := w.Close(); err != nil {
			return storepath.StorePath{}, fmt.Errorf("import %s: %w", n.src, err)
		}
	} else {
		if n.kind != "regular" {
			return storepath.StorePath{}, fmt.Errorf("import %s: flat hashing needs a regular file, not a %s", n.src, n.kind)
		}
		f, err := os.Open(n.src)
		if err != nil {
			return storepath.StorePath{}, fmt.Errorf("import %s: %w", n.src, err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return storepath.StorePath{}, fmt.Errorf("import %s: %w", n.src, err)
		}
	}
	return storepath.MakeFixedOutput(name, recursive, "sha256", h.Sum(nil), nil)
}

func (n *node) nar(w *nar.Writer) error {
	switch n.kind {
	case "regular":
		f, err := os.Open(n.src)
		if err != nil {
			return fmt.Errorf("import %s: %w", n.src, err)
		}
		defer f.Close()
		if err := w.File(n.exec, uint64(n.size), f); err != nil {
			return fmt.Errorf("import %s: %w", n.src, err)
		}
		return nil
	case "symlink":
		if err := w.Symlink([]byte(n.target)); err != nil {
			return fmt.Errorf("import %s: %w", n.src, err)
		}
		return nil
	}
	if err := w.Directory(); err != nil {
		return fmt.Errorf("import %s: %w", n.src, err)
	}
	for _, c := range n.children {
		if err := w.Entry([]byte(c.name)); err != nil {
			return fmt.Errorf("import %s: %w", n.src, err)
		}
		if err := c.n.nar(w); err != nil {
			return err
		}
	}
	if err := w.Leave(); err != nil {
		return fmt.Errorf("import %s: %w", n.src, err)
	}
	return nil
}

// copyTo recreates the tree at dst with store permissions (read-only,
// executable bit kept).
func (n *node) copyTo(dst string) error {
	switch n.kind {
	case "regular":
		in, err := os.Open(n.src)
		if err != nil {
			return err
		}
		defer in.Close()
		mode := os.FileMode(0o444)
		if n.exec {
			mode = 0o555
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
		if err != nil {
			return err
		}
		if _, err := io.CopyN(out, in, n.size); err != nil {
			out.Close()
			return fmt.Errorf("copy %s: %w", n.src, err)
		}
		return out.Close()
	case "symlink":
		return os.Symlink(n.target, dst)
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	for _, c := range n.children {
		if err := c.n.copyTo(filepath.Join(dst, c.name)); err != nil {
			return err
		}
	}
	return os.Chmod(dst, 0o555)
}
