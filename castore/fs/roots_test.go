package fs

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

// mapRoots is a RootNodes without Nix: any castore name is a root name.
type mapRoots struct {
	nodes map[string]*castorev1.Node
	gets  atomic.Int64
}

func (m *mapRoots) Get(_ context.Context, name string) (*castorev1.Node, error) {
	m.gets.Add(1)
	n, ok := m.nodes[name]
	if !ok {
		return nil, fmt.Errorf("root %s: %w", name, castore.ErrNotFound)
	}
	return n, nil
}

func (m *mapRoots) List(context.Context) iter.Seq2[*castorev1.Node, error] {
	return func(yield func(*castorev1.Node, error) bool) {
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range m.nodes {
				if !yield(k) {
					return
				}
			}
		}) {
			if !yield(m.nodes[k], nil) {
				return
			}
		}
	}
}

// The tree serves whatever RootNodes lists, names that are no store paths
// included, and refuses what no RootNodes may return.
func TestPlainRootNames(t *testing.T) {
	s := newTestStore()
	src := t.TempDir()
	writeTree(t, src, map[string]string{"dir/file": "contents\n", "exe*": "#!/bin/sh\n", "link": "->dir/file"})
	roots := &mapRoots{nodes: map[string]*castorev1.Node{
		"dir":  s.importPath(t, filepath.Join(src, "dir"), "dir"),
		"exe":  s.importPath(t, filepath.Join(src, "exe"), "exe"),
		"link": s.importPath(t, filepath.Join(src, "link"), "link"),
		// Under the wrong name, and one no directory entry can have.
		"bad": s.importPath(t, filepath.Join(src, "exe"), "a/b"),
	}}
	var logs logBuffer
	svc := Services{Blobs: s.blobs, Directories: s.dirs, Roots: roots}
	m := mountServices(t, svc, Options{ListRoot: true, Logger: testLogger(t, &logs)})

	if b, err := os.ReadFile(filepath.Join(m.Mountpoint(), "dir/file")); err != nil || string(b) != "contents\n" {
		t.Errorf("read dir/file: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(m.Mountpoint(), "exe")); err != nil || fi.Mode() != 0o555 {
		t.Errorf("stat exe: %v, %v", fi, err)
	}
	if got, err := os.Readlink(filepath.Join(m.Mountpoint(), "link")); err != nil || got != "dir/file" {
		t.Errorf("readlink link: %q, %v", got, err)
	}
	if _, err := os.Lstat(filepath.Join(m.Mountpoint(), "missing")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("lstat missing: %v, want ENOENT", err)
	}
	if _, err := os.Lstat(filepath.Join(m.Mountpoint(), "bad")); !errors.Is(err, syscall.EIO) {
		t.Errorf("lstat of a root node returned under another name: %v, want EIO", err)
	}
	ents, err := os.ReadDir(m.Mountpoint())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "dir,exe,link" {
		t.Errorf("root listing %q, want dir,exe,link", names)
	}
	if !strings.Contains(logs.String(), "skipping invalid root node") {
		t.Errorf("the invalid root node was not logged:\n%s", logs.String())
	}

	// Without the kernel in front: names no node can have are not asked
	// for, and a root node is asked for once.
	raw := NewRawFileSystem(context.Background(), svc, Options{Logger: testLogger(t, nil)})
	roots.gets.Store(0)
	for _, name := range []string{"", "a/b", "a\x00b"} {
		var out fuse.EntryOut
		if st := raw.Lookup(nil, &fuse.InHeader{NodeId: 1}, name, &out); st != fuse.ENOENT {
			t.Errorf("lookup %q: %v, want ENOENT", name, st)
		}
	}
	for range 2 {
		var out fuse.EntryOut
		if st := raw.Lookup(nil, &fuse.InHeader{NodeId: 1}, "dir", &out); st != fuse.OK {
			t.Errorf("lookup dir: %v", st)
		}
	}
	if n := roots.gets.Load(); n != 1 {
		t.Errorf("%d RootNodes.Get calls, want 1", n)
	}
}
