package nbd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/internal/testenv"
)

type countingReaderAt struct {
	r *bytes.Reader
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.n.Add(int64(len(p)))
	return c.r.ReadAt(p, off)
}

// TestQemuReadsExport has QEMU's own NBD client copy the export out.
func TestQemuReadsExport(t *testing.T) {
	qemuImg := testenv.Tool(t, "qemu-img", "qemu-utils")
	data := make([]byte, 8<<20)
	rand.New(rand.NewSource(1)).Read(data)
	src := &countingReaderAt{r: bytes.NewReader(data)}
	dir := t.TempDir()
	sock := filepath.Join(dir, "nbd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(nil, Export{Name: "disk", Size: int64(len(data)), Data: src}).Serve(ctx, l) }()
	defer func() { cancel(); <-done }()

	out := filepath.Join(dir, "out.raw")
	cmd := exec.Command(qemuImg, "convert", "-f", "raw", "-O", "raw", "nbd+unix:///disk?socket="+sock, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert from NBD: %v\n%s", err, b)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, data) {
		t.Fatalf("qemu-img read %d bytes that differ from the export", len(got))
	}
	if src.n.Load() < int64(len(data)) {
		t.Fatalf("served only %d bytes", src.n.Load())
	}
	// Writes are refused: the export is read-only.
	cmd = exec.Command("qemu-io", "-f", "raw", "-c", "write 0 512", "nbd+unix:///disk?socket="+sock)
	if b, err := cmd.CombinedOutput(); err == nil && !bytes.Contains(b, []byte("read-only")) && !bytes.Contains(b, []byte("Operation not permitted")) {
		t.Fatalf("write to read-only export: %s", b)
	}
}

// TestBlobDisk serves a chunked blob and has qemu-io read one range of it
// over NBD: the bytes match and only the chunks covering the range are
// fetched from the BlobService.
func TestBlobDisk(t *testing.T) {
	data := make([]byte, 16<<20)
	rand.New(rand.NewSource(2)).Read(data)
	blobs := blobstore.NewMemory()
	w, err := blobs.Put(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	d, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	disk, err := OpenBlob(context.Background(), blobs, d)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	st := disk.Stats()
	if st.Size != int64(len(data)) || st.Chunks < 8 {
		t.Fatalf("stats %+v: want size %d in many chunks", st, len(data))
	}

	tests := []struct {
		name      string
		off, n    int64
		maxChunks int64
	}{
		{"inside one chunk", 4096, 512, 1},
		{"across chunks", 5<<20 + 123, 1 << 20, 6},
		{"last bytes", int64(len(data)) - 100, 100, 1},
		{"cached again", 4096, 512, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := disk.Stats().ChunksFetched
			got := make([]byte, tc.n)
			var wg sync.WaitGroup
			// Concurrent readers of the same range share the fetches.
			for k := 0; k < 4; k++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, tc.n)
					if _, err := disk.ReadAt(buf, tc.off); err != nil {
						t.Error(err)
					}
					if k == 0 {
						copy(got, buf)
					}
				}()
			}
			wg.Wait()
			if !bytes.Equal(got, data[tc.off:tc.off+tc.n]) {
				t.Fatal("read returned other bytes than the blob's")
			}
			if f := disk.Stats().ChunksFetched - before; f > tc.maxChunks {
				t.Errorf("fetched %d chunks, want at most %d", f, tc.maxChunks)
			}
		})
	}
	if _, err := disk.ReadAt(make([]byte, 10), int64(len(data))-5); err != io.EOF {
		t.Errorf("read past the end: %v, want EOF", err)
	}
	if _, err := OpenBlob(context.Background(), blobs, castore.HashBlob([]byte("absent"))); err == nil || !strings.Contains(err.Error(), "import-image") {
		t.Errorf("missing blob: %v", err)
	}

	// QEMU's NBD client reads a range of the export.
	qemuIO := testenv.Tool(t, "qemu-img", "qemu-utils")
	qemuIO = filepath.Join(filepath.Dir(qemuIO), "qemu-io")
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(nil, disk.Export("disk")).Serve(ctx, l) }()
	defer func() { cancel(); <-done }()
	before := disk.Stats()
	off := 9 << 20
	out, err := exec.Command(qemuIO, "-r", "-f", "raw", "-c", fmt.Sprintf("read -v %d 16", off), "nbd+unix:///disk?socket="+sock).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("%02x %02x", data[off], data[off+1]); !strings.Contains(string(out), want) {
		t.Errorf("qemu-io output lacks %q:\n%s", want, out)
	}
	after := disk.Stats()
	if f := after.ChunksFetched - before.ChunksFetched; f < 1 || f > 3 {
		t.Errorf("qemu-io's read fetched %d chunks, want 1 to 3 (the range, plus what it probes)", f)
	}
}
