package fs

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"syscall"
	"fmt"
	"golang.org/x/sys/unix"
	"time"

	"github.com/tvix-go/tvix/castore"
)

type histBlobs struct {
	oneFileBlobs
	mu     sync.Mutex
	sizes  map[int]int
	inflight, maxIn atomic.Int64
}

type histReader struct {
	castore.BlobReader
	h *histBlobs
}

func (r *histReader) ReadAt(p []byte, off int64) (int, error) {
	n := r.h.inflight.Add(1)
	for {
		m := r.h.maxIn.Load()
		if n <= m || r.h.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	defer r.h.inflight.Add(-1)
	r.h.mu.Lock()
	r.h.sizes[len(p)]++
	r.h.mu.Unlock()
	return r.BlobReader.ReadAt(p, off)
}

func (h *histBlobs) Open(ctx context.Context, d castore.Digest) (castore.BlobReader, error) {
	r, err := h.oneFileBlobs.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	return &histReader{r, h}, nil
}

func TestZZExperiment(t *testing.T) {
	dir := os.Getenv("ZZ_DIR")
	if dir == "" {
		t.Skip()
	}
	big := filepath.Join(dir, "native/big")
	s := newTestStore()
	// a fake blob: node with size but digest arbitrary
	fi, _ := os.Stat(big)
	d := castore.HashBlob([]byte("x"))
	h := &histBlobs{oneFileBlobs: oneFileBlobs{digest: d, path: big}, sizes: map[int]int{}}
	_ = s
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "x"), []byte("x"), 0o644)
	// build tree by hand: single file node with digest d and size of big
	base := fakeStorePath("big")
	node := s.importPath(t, filepath.Join(src, "x"), base.Basename())
	node.GetFile().Digest = d.Bytes()
	node.GetFile().Size = uint64(fi.Size())
	putInfo(t, s, node)
	m := mountServices(t, Services{Blobs: h, Directories: s.dirs, PathInfos: s.paths}, Options{})
	var st syscall.Stat_t
	syscall.Stat(m.Mountpoint(), &st)
	bdi := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	for _, ra := range []string{"native", "128", "1024", "2048", "native", "128", "1024", "2048"} {
		bs := 1 << 20
		path := filepath.Join(m.Mountpoint(), base.Basename())
		if ra == "native" {
			path = big
		} else if err := os.WriteFile(bdi, []byte(ra), 0); err != nil {
			t.Fatal(err)
		}
		h.sizes = map[int]int{}
		h.maxIn.Store(0)
		dropCaches()
		start := time.Now()
		f, _ := os.Open(path)
		buf := make([]byte, bs)
		var tot int64
		for {
			n, err := f.Read(buf)
			tot += int64(n)
			if err != nil {
				break
			}
		}
		f.Close()
		t.Logf("ra %s bs %d: %d bytes %.0f MB/s sizes %v maxinflight %d", ra, bs, tot, float64(tot)/time.Since(start).Seconds()/1e6, h.sizes, h.maxIn.Load())
	}
}
