package combined

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/castoretest"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/castore/fstree"
)

func TestReadThroughAndKeepClosure(t *testing.T) {
	ctx := context.Background()
	farBlobs, farDirs := blobstore.NewMemory(), dirstore.NewMemory()
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a/b"), 0o755)
	os.WriteFile(filepath.Join(src, "a/b/f"), []byte("far away"), 0o644)
	node, err := fstree.Import(ctx, src, farBlobs, farDirs, fstree.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nearBlobs, nearDirs := blobstore.NewMemory(), dirstore.NewMemory()
	blobs := Blobs{Near: nearBlobs, Far: farBlobs}
	dirs := Directories{Near: nearDirs, Far: farDirs}
	root, _ := castore.DigestFromBytes(node.GetDirectory().GetDigest())
	n := 0
	for _, err := range dirs.GetRecursive(ctx, root) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("closure has %d directories, want 3", n)
	}
	if _, err := nearDirs.Get(ctx, root); err != nil {
		t.Fatalf("closure not kept near: %v", err)
	}
	d := castore.HashBlob([]byte("far away"))
	r, err := blobs.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if string(b) != "far away" {
		t.Fatalf("read %q", b)
	}
	if ok, _ := nearBlobs.Has(ctx, d); ok {
		t.Fatal("a read must not copy the blob near")
	}
}

func TestConformance(t *testing.T) {
	castoretest.RunBlobService(t, func(*testing.T) castore.BlobService {
		return Blobs{Near: blobstore.NewMemory(), Far: blobstore.NewMemory()}
	})
	castoretest.RunDirectoryService(t, func(*testing.T) castore.DirectoryService {
		return Directories{Near: dirstore.NewMemory(), Far: dirstore.NewMemory()}
	})
}

// A blob kept near in one piece keeps its backing file through the
// combined service (so a mount can use FUSE passthrough); a far one has
// none.
func TestBackingFileFromNear(t *testing.T) {
	ctx := context.Background()
	near, err := blobstore.NewPack(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer near.Close()
	far := blobstore.NewMemory()
	put := func(s castore.BlobService, data []byte) castore.Digest {
		d, err := castoretest.PutBlob(t, s, data, len(data))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	large := make([]byte, 3<<20)
	for i := range large {
		large[i] = byte(i * 31 / 7)
	}
	nearD := put(near, large)
	farD := put(far, append(large, 'x'))
	blobs := Blobs{Near: near, Far: far}
	f, size, ok := blobs.BackingFile(ctx, nearD)
	if !ok || size != int64(len(large)) {
		t.Fatalf("near blob: backing file ok=%v size %d, want %d", ok, size, len(large))
	}
	got := make([]byte, 4096)
	if _, err := f.ReadAt(got, 1<<20); err != nil || string(got) != string(large[1<<20:1<<20+4096]) {
		t.Fatalf("backing file holds other bytes (err %v)", err)
	}
	if _, _, ok := blobs.BackingFile(ctx, farD); ok {
		t.Fatal("a far blob has no local backing file")
	}
}
