package chunkedread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lukechampine.com/blake3"

	"github.com/tvix-go/tvix/castore"
)

// memChunks is a chunk source that counts opens and closes.
type memChunks struct {
	mu             sync.Mutex
	data           map[castore.Digest][]byte
	opened, closed int
}

// countedChunk fails reads after its Close, as a closed file would.
type countedChunk struct {
	r    *bytes.Reader
	m    *memChunks
	done atomic.Bool
}

func (c *countedChunk) ReadAt(p []byte, off int64) (int, error) {
	if c.done.Load() {
		return 0, errors.New("read of a closed chunk")
	}
	n, err := c.r.ReadAt(p, off)
	// A read takes a while; a chunk closed meanwhile fails it.
	time.Sleep(20 * time.Microsecond)
	if c.done.Load() {
		return 0, errors.New("chunk closed during a read")
	}
	return n, err
}

func (c *countedChunk) Close() error {
	if c.done.Swap(true) {
		return errors.New("chunk closed twice")
	}
	c.m.mu.Lock()
	c.m.closed++
	c.m.mu.Unlock()
	return nil
}

func (m *memChunks) open(d castore.Digest) (Chunk, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.data[d]
	if !ok {
		return nil, 0, castore.ErrNotFound
	}
	m.opened++
	return &countedChunk{r: bytes.NewReader(b), m: m}, int64(len(b)), nil
}

func (m *memChunks) counts() (int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.opened, m.closed
}

// blob cuts random data into chunks of the given sizes.
func blob(t *testing.T, sizes ...int) ([]byte, []castore.ChunkMeta, *memChunks) {
	t.Helper()
	m := &memChunks{data: map[castore.Digest][]byte{}}
	var all []byte
	var chunks []castore.ChunkMeta
	r := rand.NewChaCha8([32]byte{byte(len(sizes))})
	for _, n := range sizes {
		b := make([]byte, n)
		r.Read(b)
		d := castore.Digest(blake3.Sum256(b))
		m.data[d] = b
		chunks = append(chunks, castore.ChunkMeta{Digest: d, Size: uint64(n)})
		all = append(all, b...)
	}
	return all, chunks, m
}

// Reading a blob from start to end opens each chunk once, and every
// chunk opened is closed by Close.
func TestSequentialReadOpensEachChunkOnce(t *testing.T) {
	data, chunks, m := blob(t, 1000, 1, 4096, 777, 5000)
	r := New(castore.Digest{1}, chunks, m.open, nil)
	var got []byte
	buf := make([]byte, 300)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("sequential read returned other bytes")
	}
	if opened, _ := m.counts(); opened != len(chunks) {
		t.Fatalf("%d opens for %d chunks", opened, len(chunks))
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if opened, closed := m.counts(); opened != closed {
		t.Fatalf("%d chunks opened, %d closed", opened, closed)
	}
	if _, err := r.ReadAt(buf, 0); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("read after close = %v, want an error saying the reader is closed", err)
	}
}

// Concurrent reads at offsets all return the right bytes: no chunk is
// closed under a read that uses it, and every chunk opened is closed once.
func TestConcurrentReadAt(t *testing.T) {
	data, chunks, m := blob(t, 3000, 2000, 5000, 100, 4000, 2500)
	r := New(castore.Digest{2}, chunks, m.open, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			for range 200 {
				off := rng.Int64N(int64(len(data)))
				buf := make([]byte, rng.IntN(6000))
				n, err := r.ReadAt(buf, off)
				want := data[off:min(int(off)+len(buf), len(data))]
				if n != len(want) || !bytes.Equal(buf[:n], want) || (n < len(buf) && err != io.EOF) || (n == len(buf) && err != nil && err != io.EOF) {
					errs <- fmt.Errorf("ReadAt(%d, %d) = %d, %v; want %d bytes", off, len(buf), n, err, len(want))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r.Close()
	if opened, closed := m.counts(); opened != closed {
		t.Fatalf("%d chunks opened, %d closed", opened, closed)
	}
}

// A chunk whose size is not the chunk list's is refused by name, and a
// missing chunk's error is passed on.
func TestChunkErrors(t *testing.T) {
	_, chunks, m := blob(t, 100, 200)
	chunks[1].Size = 201
	r := New(castore.Digest{3}, chunks, m.open, nil)
	buf := make([]byte, 300)
	if n, err := r.ReadAt(buf, 0); n != 100 || err == nil || !strings.Contains(err.Error(), "has 200 bytes, the chunk list says 201") {
		t.Fatalf("read over a chunk of the wrong size = %d, %v", n, err)
	}
	delete(m.data, chunks[0].Digest)
	r = New(castore.Digest{3}, chunks, m.open, nil)
	if _, err := r.ReadAt(buf, 0); !errors.Is(err, castore.ErrNotFound) {
		t.Fatalf("read of a missing chunk = %v, want ErrNotFound", err)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("seek to a negative position accepted")
	}
}

// With chunks in a local file, FileRange names runs of chunks that lie
// back to back as one range and stops where they do not; without a
// LocateFunc no range is offered.
func TestFileRange(t *testing.T) {
	data, chunks, m := blob(t, 1000, 2000, 3000)
	f, err := os.Create(filepath.Join(t.TempDir(), "pack"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Chunks 0 and 1 back to back from offset 10, chunk 2 elsewhere.
	places := map[castore.Digest]int64{chunks[0].Digest: 10, chunks[1].Digest: 1010, chunks[2].Digest: 5000}
	for i, c := range chunks {
		off := places[c.Digest]
		start := 0
		for _, p := range chunks[:i] {
			start += int(p.Size)
		}
		if _, err := f.WriteAt(data[start:start+int(c.Size)], off); err != nil {
			t.Fatal(err)
		}
	}
	locate := func(d castore.Digest) (*os.File, int64, int64, bool) {
		off, ok := places[d]
		return f, off, int64(len(m.data[d])), ok
	}
	r := New(castore.Digest{4}, chunks, m.open, locate)
	for _, c := range []struct{ off, n, want int }{
		{0, 6000, 3000},    // chunks 0 and 1, then a gap
		{500, 100, 100},    // inside chunk 0
		{2999, 10, 1},      // the last byte of chunk 1
		{3000, 3000, 3000}, // chunk 2
		{6000, 1, 0},       // past the end
	} {
		rf, fileOff, got := r.FileRange(int64(c.off), c.n)
		if got != c.want {
			t.Fatalf("FileRange(%d, %d) = %d contiguous, want %d", c.off, c.n, got, c.want)
		}
		if got == 0 {
			continue
		}
		buf := make([]byte, got)
		if _, err := rf.ReadAt(buf, fileOff); err != nil || !bytes.Equal(buf, data[c.off:c.off+got]) {
			t.Fatalf("FileRange(%d, %d) names other bytes (%v)", c.off, c.n, err)
		}
	}
	if _, _, got := New(castore.Digest{4}, chunks, m.open, nil).FileRange(0, 10); got != 0 {
		t.Fatal("a reader without LocateFunc offered a file range")
	}
}
