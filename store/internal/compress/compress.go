// Package compress wraps a writer in the compressors Nix binary caches use
// for NARs, the counterpart of store/internal/decompress.
package compress

import (
	"fmt"
	"io"

	"github.com/dsnet/compress/bzip2"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Writer compresses into w; Close flushes the compressed stream (and does
// not close w).
func Writer(compression string, w io.Writer) (io.WriteCloser, error) {
	switch compression {
	case "", "none":
		return nopCloser{w}, nil
	case "zstd":
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	case "xz":
		return xz.NewWriter(w)
	case "bzip2":
		// Nix remembers the narinfos it uploaded, so a NAR sent as
		// .nar.bz2 is asked for as bzip2 again; the fastest level, as
		// for zstd, since the bytes are rendered per request.
		return bzip2.NewWriter(w, &bzip2.WriterConfig{Level: bzip2.BestSpeed})
	}
	return nil, fmt.Errorf("unsupported compression %q (want none, zstd, xz or bzip2)", compression)
}
