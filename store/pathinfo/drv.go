package pathinfo

import (
	"context"
	"fmt"
	"io"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/store/storev1"
)

// MaxDrvSize bounds a .drv read from the store: they are small text
// files, and a store path claiming otherwise is not one.
const MaxDrvSize = 64 << 20

// ReadDerivation reads and parses the .drv file info describes.
func ReadDerivation(ctx context.Context, blobs castore.BlobService, info *storev1.PathInfo) (*derivation.Derivation, error) {
	name := castore.NodeName(info.GetNode())
	f := info.GetNode().GetFile()
	if f == nil {
		return nil, fmt.Errorf("derivation %s is not a file", name)
	}
	if f.GetSize() > MaxDrvSize {
		return nil, fmt.Errorf("derivation %s: %d bytes, more than a .drv can be", name, f.GetSize())
	}
	d, err := castore.DigestFromBytes(f.GetDigest())
	if err != nil {
		return nil, fmt.Errorf("derivation %s: %w", name, err)
	}
	rc, err := blobs.Open(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("derivation %s: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxDrvSize))
	if err != nil {
		return nil, fmt.Errorf("derivation %s: %w", name, err)
	}
	drv, err := derivation.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("derivation %s: %w", name, err)
	}
	return drv, nil
}
