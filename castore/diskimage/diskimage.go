// Package diskimage ingests VM disk images (qcow2, raw, and the other
// formats github.com/lima-vm/go-qcow2reader reads) as castore blobs of
// their guest-visible bytes, so images deduplicate like any blob and can be
// served to a guest chunk by chunk.
package diskimage

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	qcow2reader "github.com/lima-vm/go-qcow2reader"
	"github.com/lima-vm/go-qcow2reader/image"
	"github.com/lima-vm/go-qcow2reader/image/qcow2"

	"github.com/tvix-go/tvix/castore"
)

func init() {
	// qcow2 v3 images may use zstd clusters; the reader ships only deflate.
	qcow2.SetDecompressor(qcow2.CompressionTypeZstd, func(r io.Reader) (io.ReadCloser, error) {
		d, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	})
}

// Import reads the image at path and stores its guest-visible contents as
// one blob, returning the digest, the virtual size and the image format.
func Import(ctx context.Context, path string, blobs castore.BlobService) (castore.Digest, int64, string, error) {
	return ImportWithProgress(ctx, path, blobs, nil)
}

// Progress is what an image import has done so far; safe to read while
// it runs. Size is the virtual size once the image is open.
type Progress struct {
	Size, Bytes atomic.Int64
}

// ImportWithProgress is Import, counting into p (if not nil) as it goes,
// for a caller that shows how a long import is going.
func ImportWithProgress(ctx context.Context, path string, blobs castore.BlobService, p *Progress) (castore.Digest, int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return castore.Digest{}, 0, "", fmt.Errorf("import image: %w", err)
	}
	defer f.Close()
	// A file that says it is qcow2 but does not parse is damaged, not raw.
	var magic [4]byte
	f.ReadAt(magic[:], 0)
	var img image.Image
	if string(magic[:]) == "QFI\xfb" {
		img, err = qcow2reader.OpenWithType(f, qcow2.Type)
	} else {
		img, err = qcow2reader.Open(f)
	}
	if err != nil {
		return castore.Digest{}, 0, "", fmt.Errorf("import image %s: %w", path, err)
	}
	defer img.Close()
	if err := img.Readable(); err != nil {
		return castore.Digest{}, 0, "", fmt.Errorf("import image %s: %w", path, err)
	}
	size := img.Size()
	if size < 0 {
		return castore.Digest{}, 0, "", fmt.Errorf("import image %s: unknown virtual size", path)
	}
	w, err := blobs.Put(ctx)
	if err != nil {
		return castore.Digest{}, 0, "", err
	}
	var dst io.Writer = w
	if p != nil {
		p.Size.Store(size)
		dst = countingWriter{w, &p.Bytes}
	}
	if _, err := io.Copy(dst, io.NewSectionReader(img, 0, size)); err != nil {
		w.Abort()
		return castore.Digest{}, 0, "", fmt.Errorf("import image %s: %w", path, err)
	}
	d, err := w.Close()
	if err != nil {
		return castore.Digest{}, 0, "", fmt.Errorf("import image %s: %w", path, err)
	}
	return d, size, string(img.Type()), nil
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}
