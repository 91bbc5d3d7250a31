package narbridge

import (
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/store/pathinfo"
)

func TestDefaultChunkCache(t *testing.T) {
	for _, c := range []struct{ total, want int64 }{
		{1 << 30, 256 << 20},  // a small VM: the floor
		{8 << 30, 1 << 30},    // a laptop
		{24 << 30, 3 << 30},   // this benchmark machine
		{512 << 30, 16 << 30}, // a large server: the ceiling
	} {
		if got := defaultChunkCache(c.total); got != c.want {
			t.Errorf("%d MiB of memory: cache %d MiB, want %d", c.total>>20, got>>20, c.want>>20)
		}
	}
	if got := DefaultChunkCache(); got < 256<<20 || got > 16<<30 {
		t.Errorf("this machine's default %d MiB is outside 256 MiB..16 GiB", got>>20)
	}
}

// The handler reports the cache it set: the default, a size, none; and
// none when the blob service cannot keep one.
func TestHandlerChunkCache(t *testing.T) {
	for _, c := range []struct {
		opt, want int64
	}{{0, DefaultChunkCache()}, {64 << 20, 64 << 20}, {-1, 0}} {
		blobs := blobstore.NewMemory()
		h := New(blobs, dirstore.NewMemory(), pathinfo.NewMemory(), Options{ChunkCache: c.opt, Logger: discardLogger()})
		if got := h.ChunkCache(); got != c.want {
			t.Errorf("ChunkCache %d: handler reports %d, want %d", c.opt, got, c.want)
		}
		blobs.Close()
	}
	h := New(noCacheBlobs{blobstore.NewMemory()}, dirstore.NewMemory(), pathinfo.NewMemory(), Options{ChunkCache: 64 << 20, Logger: discardLogger()})
	if got := h.ChunkCache(); got != 0 {
		t.Errorf("a blob service without a cache: handler reports %d", got)
	}
}

// noCacheBlobs hides the store's abilities (castore.As finds none).
type noCacheBlobs struct{ castore.BlobService }
