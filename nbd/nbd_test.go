package nbd

import (
	"bytes"
	"context"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
)

type countingReaderAt struct {
	r *bytes.Reader
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.n.Add(int64(len(p)))
	return c.r.ReadAt(p, off)
}

func requireQemuImg(t *testing.T) string {
	p, err := exec.LookPath("qemu-img")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("qemu-img (Debian qemu-utils) is required under CI")
		}
		t.Skip("qemu-img not installed")
	}
	return p
}

// TestQemuReadsExport has QEMU's own NBD client copy the export out.
func TestQemuReadsExport(t *testing.T) {
	qemuImg := requireQemuImg(t)
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
