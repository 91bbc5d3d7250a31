package narcastore

import (
	"context"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
)

// Calculator answers CalculateNAR (the PathInfoService RPC) from a store's
// castore, remembering results: a node names immutable contents, so its
// NAR never changes and a client asking twice pays once.
type Calculator struct {
	blobs castore.BlobService
	dirs  castore.DirectoryService

	mu    sync.Mutex
	cache map[string]narResult
}

type narResult struct {
	size uint64
	sum  [32]byte
}

// calculatorEntries bounds the memory the results take (~100 bytes each).
const calculatorEntries = 4096

// NewCalculator calculates NARs of nodes in blobs and dirs.
func NewCalculator(blobs castore.BlobService, dirs castore.DirectoryService) *Calculator {
	return &Calculator{blobs: blobs, dirs: dirs, cache: map[string]narResult{}}
}

// CalculateNAR returns the NAR size and sha256 of an anonymous root node.
func (n *Calculator) CalculateNAR(ctx context.Context, node *castorev1.Node) (uint64, [32]byte, error) {
	key, err := proto.MarshalOptions{Deterministic: true}.Marshal(node)
	if err != nil {
		return 0, [32]byte{}, err
	}
	n.mu.Lock()
	r, ok := n.cache[string(key)]
	n.mu.Unlock()
	if ok {
		return r.size, r.sum, nil
	}
	size, sum, err := CalculateNAR(ctx, node, n.blobs, n.dirs)
	if err != nil {
		return 0, sum, err
	}
	n.mu.Lock()
	if len(n.cache) >= calculatorEntries {
		clear(n.cache) // crude, but bounded; results are cheap to recompute
	}
	n.cache[string(key)] = narResult{size, sum}
	n.mu.Unlock()
	return size, sum, nil
}
