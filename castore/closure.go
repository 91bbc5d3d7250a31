package castore

import (
	"context"
	"errors"
	"fmt"

	"github.com/tvix-go/tvix/castore/castorev1"
)

// ClosureValidator checks a directory closure sent leaves first, as the
// gRPC Put stream and PutMultiple receive it: each directory is valid, only
// references directories sent before it (with the right size), and at the
// end every directory is reachable from the last one, the root.
type ClosureValidator struct {
	// Lookup, if set, lets a directory reference one already stored instead
	// of one sent earlier in the same closure (used by single Put).
	Lookup func(Digest) (*castorev1.Directory, error)

	order []Digest
	dirs  map[Digest]*castorev1.Directory
}

// Add validates d against what was added before and returns its digest.
func (v *ClosureValidator) Add(d *castorev1.Directory) (Digest, error) {
	if v.dirs == nil {
		v.dirs = make(map[Digest]*castorev1.Directory)
	}
	if err := ValidateDirectory(d); err != nil {
		return Digest{}, err
	}
	dg := DirectoryDigest(d)
	if _, dup := v.dirs[dg]; dup {
		// Resends are allowed and deduplicated; moving it to the end keeps
		// "last one is the root" true.
		v.order = append(v.order, dg)
		return dg, nil
	}
	for _, n := range d.GetDirectories() {
		cd, _ := DigestFromBytes(n.GetDigest())
		child, ok := v.dirs[cd]
		if !ok && v.Lookup != nil {
			c, err := v.Lookup(cd)
			switch {
			case err == nil:
				child, ok = c, true
			case !errors.Is(err, ErrNotFound):
				return Digest{}, fmt.Errorf("directory %s: entry %q: look up child %s: %w", dg, n.GetName(), cd, err)
			}
		}
		if !ok {
			return Digest{}, &ValidationError{Directory: dg, Entry: n.GetName(), Rule: fmt.Sprintf("references directory %s, which was neither sent before it nor stored", cd)}
		}
		if err := CheckChildSize(dg, n, child); err != nil {
			return Digest{}, err
		}
	}
	v.dirs[dg] = d
	v.order = append(v.order, dg)
	return dg, nil
}

// Finish checks that every directory is reachable from the root (the last
// one added) and returns the root and the directories, leaves first.
func (v *ClosureValidator) Finish() (Digest, []*castorev1.Directory, error) {
	if len(v.order) == 0 {
		return Digest{}, nil, fmt.Errorf("put directories: empty closure")
	}
	root := v.order[len(v.order)-1]
	reached := map[Digest]bool{root: true}
	queue := []Digest{root}
	for len(queue) > 0 {
		d := v.dirs[queue[0]]
		queue = queue[1:]
		for _, n := range d.GetDirectories() {
			cd, _ := DigestFromBytes(n.GetDigest())
			if _, sent := v.dirs[cd]; sent && !reached[cd] {
				reached[cd] = true
				queue = append(queue, cd)
			}
		}
	}
	out := make([]*castorev1.Directory, 0, len(v.dirs))
	seen := make(map[Digest]bool, len(v.dirs))
	for _, dg := range v.order {
		if seen[dg] {
			continue
		}
		seen[dg] = true
		if !reached[dg] {
			return Digest{}, nil, &ValidationError{Directory: dg, Rule: fmt.Sprintf("not reachable from root %s", root)}
		}
		out = append(out, v.dirs[dg])
	}
	return root, out, nil
}

// ForEachBlob calls fn with the digest of every file in node's tree,
// reading its directories from dirs (a read-through service keeps them
// near as it goes).
func ForEachBlob(ctx context.Context, dirs DirectoryService, node *castorev1.Node, fn func(Digest) error) error {
	return ForEachFile(ctx, dirs, node, func(d Digest, _ uint64) error { return fn(d) })
}

// ForEachFile is ForEachBlob with each file's size.
func ForEachFile(ctx context.Context, dirs DirectoryService, node *castorev1.Node, fn func(d Digest, size uint64) error) error {
	visit := func(dg []byte, size uint64) error {
		d, err := DigestFromBytes(dg)
		if err != nil {
			return err
		}
		return fn(d, size)
	}
	switch {
	case node.GetFile() != nil:
		return visit(node.GetFile().GetDigest(), node.GetFile().GetSize())
	case node.GetDirectory() != nil:
		root, err := DigestFromBytes(node.GetDirectory().GetDigest())
		if err != nil {
			return err
		}
		for dir, err := range dirs.GetRecursive(ctx, root) {
			if err != nil {
				return err
			}
			for _, f := range dir.GetFiles() {
				if err := visit(f.GetDigest(), f.GetSize()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
