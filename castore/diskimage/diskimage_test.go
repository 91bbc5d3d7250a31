package diskimage

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/internal/testenv"
)

func TestImportQcow2MatchesRaw(t *testing.T) {
	testenv.Tool(t, "qemu-img", "qemu-utils")
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	data := make([]byte, 16<<20)
	rand.New(rand.NewSource(2)).Read(data[1<<20 : 3<<20]) // mostly zeros, like real images
	os.WriteFile(raw, data, 0o644)
	qcow := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", raw, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	ctx := context.Background()
	blobs := blobstore.NewMemory()
	d1, size, typ, err := Import(ctx, qcow, blobs)
	if err != nil || typ != "qcow2" || size != int64(len(data)) {
		t.Fatalf("import qcow2 = %s %d %q %v", d1, size, typ, err)
	}
	var prog Progress
	d2, _, typ, err := ImportWithProgress(ctx, raw, blobs, &prog)
	if err != nil || typ != "raw" {
		t.Fatalf("import raw = %q %v", typ, err)
	}
	if prog.Size.Load() != int64(len(data)) || prog.Bytes.Load() != int64(len(data)) {
		t.Fatalf("progress: size %d, bytes %d; want both %d", prog.Size.Load(), prog.Bytes.Load(), len(data))
	}
	if d1 != d2 {
		t.Fatalf("qcow2 and raw of the same disk give %s and %s", d1, d2)
	}
	r, _ := blobs.Open(ctx, d1)
	back, _ := io.ReadAll(r)
	if !bytes.Equal(back, data) {
		t.Fatal("stored bytes differ from the disk")
	}
	bad := filepath.Join(dir, "bad.qcow2")
	os.WriteFile(bad, append([]byte("QFI\xfb"), make([]byte, 100)...), 0o644)
	if _, _, _, err := Import(ctx, bad, blobs); err == nil {
		t.Fatal("corrupt qcow2 accepted")
	}
}
