// Package pathinfo holds the PathInfoService: the trusted mapping from a Nix
// store path to its castore root node and Nix metadata.
package pathinfo

import (
	"context"
	"errors"
	"iter"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/storev1"
)

// ErrNotFound is returned (wrapped) for an unknown store path.
var ErrNotFound = errors.New("path info not found")

// Service stores PathInfos by the 20-byte digest of their store path.
type Service interface {
	// Get returns ErrNotFound (wrapped) when the path is unknown.
	Get(ctx context.Context, digest [storepath.DigestSize]byte) (*storev1.PathInfo, error)
	// Put validates and stores; it returns what was stored (possibly with
	// signatures added).
	Put(ctx context.Context, info *storev1.PathInfo) (*storev1.PathInfo, error)
	List(ctx context.Context) iter.Seq2[*storev1.PathInfo, error]
	Close() error
}

// NARCalculator computes the NAR size and sha256 of an anonymous root node.
type NARCalculator interface {
	CalculateNAR(ctx context.Context, node *castorev1.Node) (size uint64, sha256 [32]byte, err error)
}

// BatchPutter is implemented by services that store many PathInfos at
// once (the embedded bbolt store: one transaction).
type BatchPutter interface {
	PutBatch(ctx context.Context, infos []*storev1.PathInfo) error
}

// PutAll stores infos in order, as one batch where s can.
func PutAll(ctx context.Context, s Service, infos []*storev1.PathInfo) error {
	if b, ok := castore.As[BatchPutter](s); ok {
		return b.PutBatch(ctx, infos)
	}
	for _, info := range infos {
		if _, err := s.Put(ctx, info); err != nil {
			return err
		}
	}
	return nil
}
