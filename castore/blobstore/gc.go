package blobstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/tvix-go/tvix/castore"
)

// sweeper is a backend that can delete what a collection found dead.
type sweeper interface {
	sweep(ctx context.Context, req castore.SweepRequest) (castore.SweepReport, error)
}

var _ castore.Collectable = (*Store)(nil)

// Sweep deletes the blobs and chunks req.Live does not name and nobody
// touched since req.Since (castore.Collectable): uploads that found them
// with Has or deduplicated against them, readers that have them open.
func (s *Store) Sweep(ctx context.Context, req castore.SweepRequest) (castore.SweepReport, error) {
	sw, ok := s.b.(sweeper)
	if !ok {
		return castore.SweepReport{}, errors.New("sweep blobs: this blob store layout cannot delete (yet)")
	}
	// Deferred puts are made durable first: a sweep decides from the
	// index, which they are not in yet.
	if err := s.Sync(ctx); err != nil {
		return castore.SweepReport{}, err
	}
	rep, err := sw.sweep(ctx, req)
	if err != nil {
		return rep, fmt.Errorf("sweep blobs: %w", err)
	}
	return rep, nil
}
