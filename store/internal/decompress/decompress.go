// Package decompress opens the compressions Nix binary caches use for
// NAR files, by the name narinfo's Compression field gives and by the file
// extension Nix 2.8 appends to the NAR's URL.
package decompress

import (
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"sync"

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
		zr, _ := zstdDecoders.Get().(*zstd.Decoder)
		if zr == nil {
			// One goroutine: requests run concurrently already, and the
			// default starts one per CPU for each.
			var err error
			if zr, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1)); err != nil {
				return nil, fmt.Errorf("zstd: %w", err)
			}
		}
		if err := zr.Reset(r); err != nil {
			zstdDecoders.Put(zr)
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return &pooledZstd{zr}, nil
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

// zstdDecoders are reused: a decoder's window buffers are a few MiB, and
// substituting a closure opens one per NAR (most of what a copy of many
// small paths allocated).
var zstdDecoders sync.Pool

// pooledZstd gives its decoder back on Close; reads after that fail.
type pooledZstd struct{ d *zstd.Decoder }

func (p *pooledZstd) Read(b []byte) (int, error) {
	if p.d == nil {
		return 0, errors.New("zstd: read after close")
	}
	return p.d.Read(b)
}

func (p *pooledZstd) Close() error {
	if p.d != nil {
		if p.d.Reset(nil) == nil {
			zstdDecoders.Put(p.d)
		}
		p.d = nil
	}
	return nil
}
