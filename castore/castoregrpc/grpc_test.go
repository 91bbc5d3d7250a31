package castoregrpc

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/tvix-go/tvix/internal/growth"
)

// serve starts a server over fresh memory services on a unix socket.
func serve(t *testing.T) *grpc.ClientConn {
	t.Helper()
	return serveWith(t, blobstore.NewMemory(), dirstore.NewMemory())
}

func serveWith(t *testing.T, blobs castore.BlobService, dirs castore.DirectoryService, opts ...ServerOption) *grpc.ClientConn {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "castore.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	Register(srv, blobs, dirs, opts...)
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

// serveLimited serves dirs with limits.
func serveLimited(t *testing.T, dirs castore.DirectoryService, l castore.Limits) *DirectoryClient {
	t.Helper()
	return NewDirectoryClient(serveWith(t, blobstore.NewMemory(), dirs, WithLimits(l)), nil)
}

func putClosure(ctx context.Context, c castore.DirectoryService, dirs []*castorev1.Directory) (castore.Digest, error) {
	p := c.PutMultiple(ctx)
	for _, d := range dirs {
		if err := p.Put(d); err != nil {
			return castore.Digest{}, err
		}
	}
	return p.Close()
}

// A closure 100,000 deep goes in and comes back out over gRPC, with
// memory linear in its depth on both sides.
func TestDeepClosureIsLinear(t *testing.T) {
	ctx := context.Background()
	c := serveLimited(t, dirstore.NewMemory(), castore.Limits{})
	roundTrip := func(n int) error {
		closure := castoretest.Nested(n, "d")
		root, err := putClosure(ctx, c, closure)
		if err != nil {
			return err
		}
		if want := castore.DirectoryDigest(closure[len(closure)-1]); root != want {
			return fmt.Errorf("root %s, want %s", root, want)
		}
		got := 0
		for _, err := range c.GetRecursive(ctx, root) {
			if err != nil {
				return err
			}
			got++
		}
		if got != n {
			return fmt.Errorf("GetRecursive gave %d directories, want %d", got, n)
		}
		return nil
	}
	if err := roundTrip(100_000); err != nil {
		t.Fatal(err)
	}
	growth.Linear(t, "a closure 4x as deep", 25_000, roundTrip)
}

// Every limit is refused by Put as InvalidArgument naming it, and the
// store keeps nothing of the closure.
func TestPutRefusesOverLimits(t *testing.T) {
	ctx := context.Background()
	long := castoretest.Nested(2, strings.Repeat("n", 11))
	for _, tc := range []struct {
		name    string
		limits  castore.Limits
		closure []*castorev1.Directory
		limit   string
	}{
		{"depth", castore.Limits{MaxDepth: 10}, castoretest.Nested(11, "d"), castore.LimitDepth},
		{"entries", castore.Limits{MaxEntries: 5}, []*castorev1.Directory{castoretest.Wide(6)}, castore.LimitEntries},
		{"name", castore.Limits{MaxNameLen: 10}, long, castore.LimitNameLen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dirs := dirstore.NewMemory()
			c := serveLimited(t, dirs, tc.limits)
			_, err := putClosure(ctx, c, tc.closure)
			if status.Code(errors.Unwrap(err)) != codes.InvalidArgument && status.Code(err) != codes.InvalidArgument {
				t.Errorf("Put over the %s limit: %v, want InvalidArgument", tc.limit, err)
			}
			if err == nil || !strings.Contains(err.Error(), tc.limit) {
				t.Fatalf("Put over the %s limit: %v, want an error naming it", tc.limit, err)
			}
			for _, d := range tc.closure {
				if _, err := dirs.Get(ctx, castore.DirectoryDigest(d)); !errors.Is(err, castore.ErrNotFound) {
					t.Errorf("directory %s of a refused closure: %v, want not found", castore.DirectoryDigest(d), err)
				}
			}
			// One under the limit, the same closure is fine.
			up := func(v int) int { return v + min(v, 1) }
			l := tc.limits
			c = serveLimited(t, dirs, castore.Limits{MaxDepth: up(l.MaxDepth), MaxEntries: up(l.MaxEntries), MaxNameLen: up(l.MaxNameLen)})
			if _, err := putClosure(ctx, c, tc.closure); err != nil {
				t.Errorf("Put at the limit: %v", err)
			}
		})
	}
}
