package pathinfo_test

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
	"google.golang.org/protobuf/proto"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/pathinfo/pathinfotest"
	"github.com/tvix-go/tvix/store/storev1"
)

// fakeCalc renders only the nodes it was told about, as a store holding
// only their contents would.
type fakeCalc map[string]struct {
	size uint64
	sum  [32]byte
}

func (f fakeCalc) CalculateNAR(_ context.Context, node *castorev1.Node) (uint64, [32]byte, error) {
	b, _ := proto.Marshal(node)
	r, ok := f[string(b)]
	if !ok {
		return 0, [32]byte{}, castore.ErrNotFound
	}
	return r.size, r.sum, nil
}

// gRPC puts are checked against the store: references present, root
// contents present, NarHash and NarSize what the contents render to.
func TestGRPCPutChecksContent(t *testing.T) {
	ctx := context.Background()
	a := pathinfotest.SampleInfo(t, "00bgd045z0d4icpbc2yyz4gx48ak44la-a")
	b := pathinfotest.SampleInfo(t, "1c5b8vw40dy178xlpddw65q9gf1h2186-b", "00bgd045z0d4icpbc2yyz4gx48ak44la-a", "1c5b8vw40dy178xlpddw65q9gf1h2186-b")
	calc := fakeCalc{}
	for _, info := range []*storev1.PathInfo{a, b} {
		nb, _ := proto.Marshal(castore.RenameNode(info.GetNode(), nil))
		var sum [32]byte
		copy(sum[:], info.GetNarinfo().GetNarSha256())
		calc[string(nb)] = struct {
			size uint64
			sum  [32]byte
		}{info.GetNarinfo().GetNarSize(), sum}
	}
	sock := filepath.Join(t.TempDir(), "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pathinfo.RegisterServer(srv, pathinfo.NewMemory(), calc)
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := pathinfo.NewClient(conn, conn)

	if _, err := c.Put(ctx, b); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "00bgd045z0d4icpbc2yyz4gx48ak44la-a") {
		t.Fatalf("put before its reference: %v, want FailedPrecondition naming it", err)
	}
	if _, err := c.Put(ctx, a); err != nil {
		t.Fatal(err)
	}
	wrong := proto.Clone(b).(*storev1.PathInfo)
	wrong.Narinfo.NarSize++
	if _, err := c.Put(ctx, wrong); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "renders to") {
		t.Fatalf("put with a wrong NarSize: %v, want InvalidArgument", err)
	}
	missing := proto.Clone(b).(*storev1.PathInfo)
	missing.Node.GetFile().Digest = castore.HashBlob([]byte("never uploaded")).Bytes()
	if _, err := c.Put(ctx, missing); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not in the store") {
		t.Fatalf("put whose root contents are missing: %v, want FailedPrecondition", err)
	}
	if _, err := c.Put(ctx, b); err != nil {
		t.Fatalf("put with its reference there (and itself): %v", err)
	}
}
