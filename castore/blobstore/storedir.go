package blobstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// What both on-disk layouts share: the format record that keeps a store
// from being misread by another version (or a foreign directory from
// being taken for a store), and files written whole or not at all.

// formatFile records the layout version; a store written by a future
// version is refused rather than misread.
const formatFile = "tvix-blobstore-format"

// checkFormat records version in a new store directory (one holding only
// the given entries) and refuses a directory that records another one:
// a store written by a future layout is refused rather than misread.
func checkFormat(root, version string, created ...string) error {
	ff := filepath.Join(root, formatFile)
	switch got, err := os.ReadFile(ff); {
	case errors.Is(err, fs.ErrNotExist):
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if !slices.Contains(created, e.Name()) {
				return fmt.Errorf("directory is not empty and has no %s", formatFile)
			}
		}
		if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o755); err != nil {
			return err
		}
		return writeFileAtomic(filepath.Join(root, "tmp"), ff, []byte(version))
	case err != nil:
		return err
	case string(got) != version:
		return fmt.Errorf("unknown format %q (this tvix knows %q)", strings.TrimSpace(string(got)), strings.TrimSpace(version))
	}
	return nil
}

// writeTemp writes data to a new file in dir; with sync it is fsynced
// before return (otherwise the group commit makes it durable).
func writeTemp(dir string, data []byte, sync bool) (string, error) {
	f, err := os.CreateTemp(dir, "put-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func writeFileAtomic(tmpDir, final string, data []byte) error {
	tmp, err := writeTemp(tmpDir, data, true)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(final))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
