package pathinfo

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/storev1"
)

// failing answers every call with err, or, when err is nil, waits for the
// request's context to end.
type failing struct {
	Service
	err error
}

func (f failing) wait(ctx context.Context) error {
	if f.err != nil {
		return f.err
	}
	<-ctx.Done()
	return ctx.Err()
}

func (f failing) Get(ctx context.Context, _ [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	return nil, f.wait(ctx)
}

func (f failing) List(ctx context.Context) iter.Seq2[*storev1.PathInfo, error] {
	return func(yield func(*storev1.PathInfo, error) bool) { yield(nil, f.wait(ctx)) }
}

func (f failing) CalculateNAR(ctx context.Context, _ *castorev1.Node) (uint64, [32]byte, error) {
	return 0, [32]byte{}, f.wait(ctx)
}

func serveFailing(t *testing.T, f failing) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	RegisterServer(srv, f, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(conn, conn)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestErrorsCrossTheWire: what errors.Is says of a service's error must
// not depend on whether the service is remote.
func TestErrorsCrossTheWire(t *testing.T) {
	node := &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Name: []byte("f"), Digest: make([]byte, 32), Size: 1}}}
	for _, tc := range []struct {
		name string
		err  error // what the server's service returns
		is   error // what the client must see
		calc error // what CalculateNAR's client must see
		code codes.Code
	}{
		{"path not found", fmt.Errorf("get: %w", ErrNotFound), ErrNotFound, castore.ErrNotFound, codes.NotFound},
		{"node not found", fmt.Errorf("calc: %w", castore.ErrNotFound), ErrNotFound, castore.ErrNotFound, codes.NotFound},
		{"server's cancel", fmt.Errorf("upstream: %w", context.Canceled), context.Canceled, context.Canceled, codes.Canceled},
		{"server's deadline", fmt.Errorf("upstream: %w", context.DeadlineExceeded), context.DeadlineExceeded, context.DeadlineExceeded, codes.DeadlineExceeded},
		{"invalid", fmt.Errorf("stored: %w", ErrInvalid), nil, nil, codes.InvalidArgument},
		{"other", errors.New("disk on fire"), nil, nil, codes.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := serveFailing(t, failing{err: tc.err})
			ctx := context.Background()
			check := func(what string, err, is error) {
				t.Helper()
				if is != nil && !errors.Is(err, is) || status.Code(err) != tc.code {
					t.Fatalf("%s = %v, want errors.Is %v and code %v", what, err, is, tc.code)
				}
			}
			_, err := c.Get(ctx, [storepath.DigestSize]byte{1})
			check("Get", err, tc.is)
			_, _, err = c.CalculateNAR(ctx, node)
			check("CalculateNAR", err, tc.calc)
			listed := false
			for _, err := range c.List(ctx) {
				check("List", err, tc.is)
				listed = true
			}
			if !listed {
				t.Fatal("List yielded nothing")
			}
		})
	}
	t.Run("client's deadline", func(t *testing.T) {
		c := serveFailing(t, failing{})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if _, err := c.Get(ctx, [storepath.DigestSize]byte{1}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Get = %v, want errors.Is context.DeadlineExceeded", err)
		}
	})
	t.Run("client's cancel", func(t *testing.T) {
		c := serveFailing(t, failing{})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		var got error
		for _, err := range c.List(ctx) {
			got = err
		}
		if !errors.Is(got, context.Canceled) {
			t.Fatalf("List = %v, want errors.Is context.Canceled", got)
		}
	})
}
