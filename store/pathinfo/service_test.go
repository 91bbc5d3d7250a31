package pathinfo_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/pathinfo/pathinfotest"
	"github.com/tvix-go/tvix/store/storev1"
)

func TestMemory(t *testing.T) { pathinfotest.RunService(t, pathinfo.NewMemory()) }

func TestBolt(t *testing.T) {
	s, err := pathinfo.NewBolt(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pathinfotest.RunService(t, s)
}

func TestGRPC(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pathinfo.RegisterServer(srv, pathinfo.NewMemory(), nil)
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	pathinfotest.RunService(t, pathinfo.NewClient(conn, conn))
}

// PutAll stores a batch (one bbolt transaction, or Put by Put) and
// refuses the whole batch when one entry is invalid.
func TestPutAll(t *testing.T) {
	ctx := context.Background()
	bolt, err := pathinfo.NewBolt(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	for _, tc := range []struct {
		name  string
		svc   pathinfo.Service
		batch bool
	}{{"bolt", bolt, true}, {"memory", pathinfo.NewMemory(), false}} {
		if _, ok := tc.svc.(pathinfo.BatchPutter); ok != tc.batch {
			t.Fatalf("%s: BatchPutter = %v", tc.name, ok)
		}
		a := pathinfotest.SampleInfo(t, "00bgd045z0d4icpbc2yyz4gx48ak44la-a")
		b := pathinfotest.SampleInfo(t, "1c5b8vw40dy178xlpddw65q9gf1h2186-b", "00bgd045z0d4icpbc2yyz4gx48ak44la-a")
		if err := pathinfo.PutAll(ctx, tc.svc, []*storev1.PathInfo{a, b}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, want := range []*storev1.PathInfo{a, b} {
			sp, _ := storepath.FromBasename(string(castore.NodeName(want.GetNode())))
			if got, err := tc.svc.Get(ctx, sp.Digest); err != nil || !proto.Equal(got, want) {
				t.Fatalf("%s: Get %s = %v, %v", tc.name, sp, got, err)
			}
		}
		if tc.batch {
			c := pathinfotest.SampleInfo(t, "2c5b8vw40dy178xlpddw65q9gf1h2186-c")
			bad := pathinfotest.SampleInfo(t, "3c5b8vw40dy178xlpddw65q9gf1h2186-d")
			bad.Narinfo.NarSha256 = []byte{1}
			if err := pathinfo.PutAll(ctx, tc.svc, []*storev1.PathInfo{c, bad}); err == nil {
				t.Fatalf("%s: invalid batch accepted", tc.name)
			}
			sp, _ := storepath.FromBasename("2c5b8vw40dy178xlpddw65q9gf1h2186-c")
			if _, err := tc.svc.Get(ctx, sp.Digest); !errors.Is(err, pathinfo.ErrNotFound) {
				t.Fatalf("%s: part of a refused batch was stored: %v", tc.name, err)
			}
		}
	}
}
