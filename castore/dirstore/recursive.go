// Package dirstore holds the DirectoryService backends that keep
// directories themselves (memory, bbolt); the gRPC client lives elsewhere.
package dirstore

import (
	"context"
	"fmt"
	"iter"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

// Getter is the one thing a backend must provide for a closure walk.
type Getter func(ctx context.Context, d castore.Digest) (*castorev1.Directory, error)

// WalkClosure yields root first, then breadth-first each directory once,
// after one that references it, as Tvix's Get(recursive) does.
func WalkClosure(ctx context.Context, root castore.Digest, get Getter) iter.Seq2[*castorev1.Directory, error] {
	return func(yield func(*castorev1.Directory, error) bool) {
		seen := map[castore.Digest]bool{root: true}
		queue := []castore.Digest{root}
		for len(queue) > 0 {
			dg := queue[0]
			queue = queue[1:]
			d, err := get(ctx, dg)
			if err != nil {
				if dg != root {
					err = fmt.Errorf("closure of %s: %w", root, err)
				}
				yield(nil, err)
				return
			}
			for _, n := range d.GetDirectories() {
				cd, err := castore.DigestFromBytes(n.GetDigest())
				if err != nil {
					yield(nil, fmt.Errorf("directory %s: entry %q: %w", dg, n.GetName(), err))
					return
				}
				if !seen[cd] {
					seen[cd] = true
					queue = append(queue, cd)
				}
			}
			if !yield(d, nil) {
				return
			}
		}
	}
}

// NewPutter is the DirectoryPutter of a backend: it validates a closure
// as it arrives (looking up children stored before through lookup) and
// hands it, leaves first, to commit once it is whole.
func NewPutter(lookup func(castore.Digest) (*castorev1.Directory, error), commit func([]*castorev1.Directory) error) castore.DirectoryPutter {
	return &putter{v: castore.ClosureValidator{Lookup: lookup}, commit: commit}
}

// putter collects a closure and hands it to commit once it is whole.
type putter struct {
	v      castore.ClosureValidator
	err    error
	commit func([]*castorev1.Directory) error
}

func (p *putter) Put(d *castorev1.Directory) error {
	if p.err != nil {
		return p.err
	}
	if _, err := p.v.Add(d); err != nil {
		p.err = fmt.Errorf("put directory: %w", err)
	}
	return p.err
}

func (p *putter) Close() (castore.Digest, error) {
	if p.err != nil {
		return castore.Digest{}, p.err
	}
	root, dirs, err := p.v.Finish()
	if err != nil {
		return castore.Digest{}, fmt.Errorf("put directories: %w", err)
	}
	if err := p.commit(dirs); err != nil {
		return castore.Digest{}, fmt.Errorf("put directories: %w", err)
	}
	return root, nil
}
