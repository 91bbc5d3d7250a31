package castoregrpc

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/castoretest"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/dirstore"
)

// serve starts a server over fresh memory services on a unix socket.
func serve(t *testing.T) *grpc.ClientConn {
	t.Helper()
	return serveWith(t, blobstore.NewMemory(), dirstore.NewMemory())
}

func serveWith(t *testing.T, blobs castore.BlobService, dirs castore.DirectoryService) *grpc.ClientConn {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "castore.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	Register(srv, blobs, dirs)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestBlobClient(t *testing.T) {
	castoretest.RunBlobService(t, func(t *testing.T) castore.BlobService { return NewBlobClient(serve(t), nil) })
}

func TestDirectoryClient(t *testing.T) {
	castoretest.RunDirectoryService(t, func(t *testing.T) castore.DirectoryService { return NewDirectoryClient(serve(t), nil) })
}

func TestServerRefusesBadInput(t *testing.T) {
	conn := serve(t)
	ctx := context.Background()
	raw := castorev1.NewDirectoryServiceClient(conn)
	stream, err := raw.Put(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bad := &castorev1.Directory{Files: []*castorev1.FileNode{{Name: []byte(".."), Digest: make([]byte, 32)}}}
	stream.Send(bad)
	_, err = stream.CloseAndRecv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "name is . or ..") || !strings.Contains(err.Error(), castore.DirectoryDigest(bad).String()) {
		t.Fatalf("bad directory = %v, want InvalidArgument naming digest, entry and rule", err)
	}
	blobs := castorev1.NewBlobServiceClient(conn)
	if _, err := blobs.Stat(ctx, &castorev1.StatBlobRequest{Digest: []byte{1, 2, 3}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("short digest = %v, want InvalidArgument", err)
	}
	rs, _ := blobs.Read(ctx, &castorev1.ReadBlobRequest{Digest: make([]byte, 32)})
	if _, err := rs.Recv(); status.Code(err) != codes.NotFound {
		t.Fatalf("missing blob = %v, want NotFound", err)
	}
}
