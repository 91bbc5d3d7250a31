package fs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"sync"
	"time"

	"github.com/tvix-go/tvix/castore/blobstore"
)

func TestZZExperiment(t *testing.T) {
	dir := os.Getenv("ZZ_DIR")
	if dir == "" {
		t.Skip()
	}
	blobs, err := blobstore.NewFile(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	s := newTestStore()
	s.blobs = blobs
	f, _ := os.Open(filepath.Join(dir, "native/big"))
	d, size := s.putBlob(t, f)
	f.Close()
	chunks, _ := blobs.Chunks(context.Background(), d)
	t.Logf("size %d chunks %d", size, len(chunks))
	for _, par := range []int{4, 8, 16, 32} {
		dropCaches()
		start := time.Now()
		ch := make(chan int)
		var wg sync.WaitGroup
		for w := 0; w < par; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range ch {
					r, err := blobs.Open(context.Background(), chunks[i].Digest)
					if err != nil {
						t.Error(err)
						continue
					}
					b := make([]byte, chunks[i].Size)
					r.ReadAt(b, 0)
					r.Close()
				}
			}()
		}
		for i := range chunks {
			ch <- i
		}
		close(ch)
		wg.Wait()
		t.Logf("par %d: %.0f MB/s", par, float64(size)/time.Since(start).Seconds()/1e6)
	}
	for _, bs := range []int{} {
		dropCaches()
		r, _ := blobs.Open(context.Background(), d)
		buf := make([]byte, bs)
		start := time.Now()
		var off int64
		for off < int64(size) {
			n, _ := r.ReadAt(buf, off)
			off += int64(n)
			if n == 0 {
				break
			}
		}
		t.Logf("bs %d: %.0f MB/s", bs, float64(size)/time.Since(start).Seconds()/1e6)
		r.Close()
	}
}
