// Package decompress opens the compressions Nix binary caches use for
// NAR files, by the name narinfo's Compression field gives and by the file
// extension Nix 2.8 appends to the NAR's URL.
package decompress

import (
	"compress/bzip2"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ByExtension maps the extensions Nix 2.8 writes ("" for none) to the
// compression name.
var ByExtension = map[string]string{"": "none", ".xz": "xz", ".zst": "zstd", ".bz2": "bzip2"}

// Reader returns a reader of the decompressed stream for a compression
// name: none, xz, zstd, bzip2 or gzip.
func Reader(compression string, r io.Reader) (io.ReadCloser, error) {
	switch compression {
	case "none", "":
		return io.NopCloser(r), nil
	case "xz":
		xr, err := xz.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		return io.NopCloser(xr), nil
	case "zstd":
		// One goroutine: requests run concurrently already, and the
		// default starts one per CPU for each.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	case "bzip2":
		return io.NopCloser(bzip2.NewReader(r)), nil
	case "gzip":
		gr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return gr, nil
	}
	return nil, fmt.Errorf("compression %q not supported (want none, xz, zstd, bzip2 or gzip)", compression)
}
