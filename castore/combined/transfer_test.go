package combined

import (
	"context"
	"io"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/castoregrpc"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/castore/fstree"
)

// countingBlobs counts the bytes the far side reads out for clients.
type countingBlobs struct {
	castore.BlobService
	n *atomic.Int64
}

type countingReader struct {
	castore.BlobReader
	n *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.BlobReader.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func (c countingBlobs) Open(ctx context.Context, d castore.Digest) (castore.BlobReader, error) {
	r, err := c.BlobService.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	return countingReader{r, c.n}, nil
}

// TestReadOneFileTransfersOnlyItsChunks: a remote builder reading one file
// of a large path fetches the chunks covering that file and little else.
func TestReadOneFileTransfersOnlyItsChunks(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	rng := rand.New(rand.NewSource(1))
	var wanted []byte
	for i := 0; i < 10; i++ {
		b := make([]byte, 3<<20)
		rng.Read(b)
		os.WriteFile(filepath.Join(src, "big-"+string(rune('a'+i))), b, 0o644)
		if i == 4 {
			wanted = b
		}
	}
	farBlobs, farDirs := blobstore.NewMemory(), dirstore.NewMemory()
	if _, err := fstree.Import(ctx, src, farBlobs, farDirs, fstree.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	var served atomic.Int64
	sock := filepath.Join(t.TempDir(), "far.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	castoregrpc.Register(srv, countingBlobs{farBlobs, &served}, farDirs)
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	blobs := Blobs{Near: blobstore.NewMemory(), Far: castoregrpc.NewBlobClient(conn, nil)}

	r, err := blobs.Open(ctx, castore.HashBlob(wanted))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || len(got) != len(wanted) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	total := int64(30 << 20)
	t.Logf("read one 3 MiB file of a 30 MiB tree: %d bytes served", served.Load())
	if limit := int64(float64(len(wanted)) * 1.1); served.Load() > limit {
		t.Fatalf("served %d bytes for a %d-byte file (tree %d), limit %d", served.Load(), len(wanted), total, limit)
	}
}
