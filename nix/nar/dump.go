package nar

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// DumpPath writes the NAR of the file, symlink or directory at path, as
// `nix-store --dump` does: only the owner-executable bit of regular files
// is kept, directory entries in byte order, file contents streamed.
func DumpPath(w io.Writer, path string) error {
	nw := NewWriter(w)
	if err := dump(nw, path); err != nil {
		return err
	}
	return nw.Close()
}

func dump(nw *Writer, path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("dump %s: %w", path, err)
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("dump %s: %w", path, err)
		}
		defer f.Close()
		// Read exactly the size lstat saw, as Nix does: a file that shrank
		// meanwhile is an error, and the writer's check for surplus bytes
		// costs no extra read syscall.
		if err := nw.File(m&0o100 != 0, uint64(fi.Size()), io.LimitReader(f, fi.Size())); err != nil {
			return fmt.Errorf("dump %s: %w", path, err)
		}
		return nil
	case m&os.ModeSymlink != 0:
		t, err := os.Readlink(path)
		if err != nil {
			return fmt.Errorf("dump %s: %w", path, err)
		}
		if err := nw.Symlink([]byte(t)); err != nil {
			return fmt.Errorf("dump %s: %w", path, err)
		}
		return nil
	case m.IsDir():
		// ReadDir sorts by name, and Go compares strings bytewise, which is
		// the order NAR requires.
		ents, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("dump %s: %w", path, err)
		}
		if err := nw.Directory(); err != nil {
			return fmt.Errorf("dump %s: %w", path, err)
		}
		for _, e := range ents {
			if err := nw.Entry([]byte(e.Name())); err != nil {
				return fmt.Errorf("dump %s: %w", path, err)
			}
			if err := dump(nw, filepath.Join(path, e.Name())); err != nil {
				return err
			}
		}
		return nw.Leave()
	default:
		return fmt.Errorf("dump %s: unsupported file type %v", path, m.Type())
	}
}
