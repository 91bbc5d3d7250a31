package castoregrpc

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
)

// stuckBlobs answers Chunks with err, or, when err is nil, waits for the
// request's context to end and reports that it saw it end.
type stuckBlobs struct {
	castore.BlobService
	err  error
	seen chan error
}

func (s stuckBlobs) Chunks(ctx context.Context, d castore.Digest) ([]castore.ChunkMeta, error) {
	if s.err != nil {
		return nil, s.err
	}
	<-ctx.Done()
	s.seen <- ctx.Err()
	return nil, ctx.Err()
}

// TestErrorsCrossTheWire: what errors.Is says of a store's error must not
// depend on whether the store is remote.
func TestErrorsCrossTheWire(t *testing.T) {
	missing := castore.Digest{7}
	t.Run("not found", func(t *testing.T) {
		conn := serve(t)
		blobs, dirs := NewBlobClient(conn, nil), NewDirectoryClient(conn, nil)
		ctx := context.Background()
		if _, err := blobs.Chunks(ctx, missing); !errors.Is(err, castore.ErrNotFound) || status.Code(err) != codes.NotFound {
			t.Fatalf("Chunks = %v, want castore.ErrNotFound with code NotFound", err)
		}
		if _, err := blobs.Open(ctx, missing); !errors.Is(err, castore.ErrNotFound) {
			t.Fatalf("Open = %v, want castore.ErrNotFound", err)
		}
		if ok, err := blobs.Has(ctx, missing); ok || err != nil {
			t.Fatalf("Has = %v, %v, want false, nil", ok, err)
		}
		if _, err := dirs.Get(ctx, missing); !errors.Is(err, castore.ErrNotFound) {
			t.Fatalf("directory Get = %v, want castore.ErrNotFound", err)
		}
		var got error
		for _, err := range dirs.GetRecursive(ctx, missing) {
			got = err
		}
		if !errors.Is(got, castore.ErrNotFound) {
			t.Fatalf("GetRecursive = %v, want castore.ErrNotFound", got)
		}
	})
	for _, sent := range []error{context.Canceled, context.DeadlineExceeded} {
		t.Run("server's "+sent.Error(), func(t *testing.T) {
			// The server's own upstream gave up; the client's context is fine.
			blobs := NewBlobClient(serveWith(t, stuckBlobs{BlobService: blobstore.NewMemory(), err: fmt.Errorf("upstream: %w", sent)}, dirstore.NewMemory()), nil)
			_, err := blobs.Chunks(context.Background(), missing)
			if !errors.Is(err, sent) || errors.Is(err, castore.ErrNotFound) {
				t.Fatalf("Chunks = %v, want errors.Is %v", err, sent)
			}
			if _, err := blobs.Has(context.Background(), missing); !errors.Is(err, sent) {
				t.Fatalf("Has = %v, want errors.Is %v", err, sent)
			}
		})
	}
	t.Run("client's deadline", func(t *testing.T) {
		seen := make(chan error, 1)
		blobs := NewBlobClient(serveWith(t, stuckBlobs{BlobService: blobstore.NewMemory(), seen: seen}, dirstore.NewMemory()), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if _, err := blobs.Chunks(ctx, missing); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Chunks = %v, want errors.Is context.DeadlineExceeded", err)
		}
		if err := <-seen; err == nil {
			t.Fatal("the server's handler did not see the deadline")
		}
	})
	t.Run("client's cancel", func(t *testing.T) {
		seen := make(chan error, 1)
		blobs := NewBlobClient(serveWith(t, stuckBlobs{BlobService: blobstore.NewMemory(), seen: seen}, dirstore.NewMemory()), nil)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		if _, err := blobs.Chunks(ctx, missing); !errors.Is(err, context.Canceled) {
			t.Fatalf("Chunks = %v, want errors.Is context.Canceled", err)
		}
		if err := <-seen; !errors.Is(err, context.Canceled) {
			t.Fatalf("the server's handler saw %v, want context.Canceled", err)
		}
	})
}
