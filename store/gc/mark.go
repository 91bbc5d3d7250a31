package gc

import (
	"context"
	"fmt"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/storepath"
)

// marked is everything the remaining paths reach.
type marked struct {
	dirs, blobs map[castore.Digest]struct{}
}

func (m *marked) hasDir(d castore.Digest) bool  { _, ok := m.dirs[d]; return ok }
func (m *marked) hasBlob(d castore.Digest) bool { _, ok := m.blobs[d]; return ok }

// mark walks the root node of every path, each directory once (paths
// share subtrees). A directory that cannot be read stops the collection
// before anything in castore is deleted: what lies under it is unknown.
func (c *Collector) mark(ctx context.Context, paths map[[storepath.DigestSize]byte]*pathRecord, progress func(Progress)) (*marked, error) {
	m := &marked{dirs: map[castore.Digest]struct{}{}, blobs: map[castore.Digest]struct{}{}}
	// The near store only: a read-through layer would fetch what is
	// missing here from upstream, and the sweep judges the near store.
	dirs, ok := near(c.Dirs).(castore.DirectoryService)
	if !ok {
		dirs = c.Dirs
	}
	var stack []castore.Digest
	addNode := func(n *castorev1.Node) error {
		switch {
		case n.GetDirectory() != nil:
			d, err := castore.DigestFromBytes(n.GetDirectory().GetDigest())
			if err != nil {
				return err
			}
			if _, ok := m.dirs[d]; !ok {
				m.dirs[d] = struct{}{}
				stack = append(stack, d)
			}
		case n.GetFile() != nil:
			d, err := castore.DigestFromBytes(n.GetFile().GetDigest())
			if err != nil {
				return err
			}
			m.blobs[d] = struct{}{}
		}
		return nil
	}
	var done int64
	total := int64(len(paths))
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := addNode(p.node.GetNode()); err != nil {
			return nil, fmt.Errorf("collect garbage: mark %s: %w", p.sp, err)
		}
		for len(stack) > 0 {
			d := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			dir, err := dirs.Get(ctx, d)
			if err != nil {
				return nil, fmt.Errorf("collect garbage: mark %s: directory %s: %w (nothing was deleted from castore; see tvix store verify)", p.sp, d, err)
			}
			for _, sub := range dir.GetDirectories() {
				cd, err := castore.DigestFromBytes(sub.GetDigest())
				if err != nil {
					return nil, fmt.Errorf("collect garbage: mark %s: directory %s: %w", p.sp, d, err)
				}
				if _, ok := m.dirs[cd]; !ok {
					m.dirs[cd] = struct{}{}
					stack = append(stack, cd)
				}
			}
			for _, f := range dir.GetFiles() {
				fd, err := castore.DigestFromBytes(f.GetDigest())
				if err != nil {
					return nil, fmt.Errorf("collect garbage: mark %s: directory %s: %w", p.sp, d, err)
				}
				m.blobs[fd] = struct{}{}
			}
		}
		done++
		if done%256 == 0 {
			progress(Progress{Phase: "mark", Done: done, Total: total})
		}
	}
	progress(Progress{Phase: "mark", Done: done, Total: total})
	return m, nil
}
