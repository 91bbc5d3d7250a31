package daemon

import (
	"context"
	"log/slog"

	"google.golang.org/grpc"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/storev1"
)

// logUploads is a gRPC interceptor that logs each store path another
// process puts into the daemon (tvix store import --store, store copy),
// one line per path, so a long upload shows on the daemon's side too.
func logUploads(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if info.FullMethod != storev1.PathInfoService_Put_FullMethodName {
		return resp, err
	}
	pi, _ := req.(*storev1.PathInfo)
	path := storepath.StoreDir + "/" + string(castore.NodeName(pi.GetNode()))
	if err != nil {
		slog.Info("upload refused", "path", path, "err", err)
	} else {
		slog.Info("received upload", "path", path, "nar_size", pi.GetNarinfo().GetNarSize())
	}
	return resp, err
}
