package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/tvix-go/tvix/build/buildv1"
	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/combined"
)

// Remote is a builder on another tvix: the build runs there (reading its
// inputs lazily from wherever that daemon's store reads through to), and
// the outputs are copied from its castore into the local one before
// Build returns, so the caller can record them.
type Remote struct {
	// Name is how logs and errors call the builder.
	Name    string
	Builder Builder
	// RemoteBlobs and RemoteDirs are the builder's castore.
	RemoteBlobs castore.BlobService
	RemoteDirs  castore.DirectoryService
	// Blobs and Dirs are the local castore the outputs go into.
	Blobs castore.BlobService
	Dirs  castore.DirectoryService
	// System is the platform it builds for ("" builds anything); Slots is
	// how many builds it takes at once (0: 1).
	System string
	Slots  int
}

// Build builds remotely and fetches the outputs.
func (r *Remote) Build(ctx context.Context, req *buildv1.BuildRequest, log io.Writer) (*buildv1.Build, error) {
	res, err := r.Builder.Build(ctx, req, log)
	if err != nil {
		return nil, err
	}
	blobs := combined.Blobs{Near: r.Blobs, Far: r.RemoteBlobs}
	dirs := combined.Directories{Near: r.Dirs, Far: r.RemoteDirs}
	for _, out := range res.GetOutputs() {
		if err := fetchTree(ctx, blobs, dirs, out); err != nil {
			return nil, fmt.Errorf("fetch output %s from builder %s: %w", castore.NodeName(out), r.Name, err)
		}
	}
	if err := castore.SyncBlobs(ctx, r.Blobs); err != nil {
		return nil, fmt.Errorf("fetch outputs from builder %s: %w", r.Name, err)
	}
	return res, nil
}

// fetchTree copies node's directories (read-through keeps them near) and
// blobs into the near store.
func fetchTree(ctx context.Context, blobs combined.Blobs, dirs combined.Directories, node *castorev1.Node) error {
	return castore.ForEachBlob(ctx, dirs, node, func(d castore.Digest) error { return blobs.Materialize(ctx, d) })
}

// Pool sends each build to a builder for its system with a free slot,
// round-robin, waiting when all are busy.
type Pool struct {
	builders []*Remote
	mu       sync.Mutex
	cond     *sync.Cond
	busy     []int
	next     int
}

// NewPool makes a pool of builders.
func NewPool(builders ...*Remote) *Pool {
	p := &Pool{builders: builders, busy: make([]int, len(builders))}
	p.cond = sync.NewCond(&p.mu)
	return p
}

var errNoBuilder = errors.New("no builder for this system")

// Build runs req on the next free builder for its system.
func (p *Pool) Build(ctx context.Context, req *buildv1.BuildRequest, log io.Writer) (*buildv1.Build, error) {
	system := req.GetConstraints().GetSystem()
	i, err := p.acquire(ctx, system)
	if err != nil {
		return nil, err
	}
	defer p.release(i)
	return p.builders[i].Build(ctx, req, log)
}

func (p *Pool) acquire(ctx context.Context, system string) (int, error) {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		any := false
		for k := 0; k < len(p.builders); k++ {
			i := (p.next + k) % len(p.builders)
			b := p.builders[i]
			if b.System != "" && b.System != system {
				continue
			}
			any = true
			if p.busy[i] < max(b.Slots, 1) {
				p.busy[i]++
				p.next = i + 1
				return i, nil
			}
		}
		if !any {
			return 0, fmt.Errorf("build for %s: %w", system, errNoBuilder)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		p.cond.Wait()
	}
}

func (p *Pool) release(i int) {
	p.mu.Lock()
	p.busy[i]--
	p.cond.Broadcast()
	p.mu.Unlock()
}

// ReceivedBytes is how many blob bytes the pool's clients have fetched
// from the builders (their outputs), where the clients count it.
func (p *Pool) ReceivedBytes() uint64 {
	var n uint64
	for _, r := range p.builders {
		if c, ok := castore.As[interface{ ReceivedBytes() uint64 }](r.RemoteBlobs); ok {
			n += c.ReceivedBytes()
		}
	}
	return n
}
