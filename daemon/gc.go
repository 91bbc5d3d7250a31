package daemon

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"github.com/tvix-go/tvix/store/gc"
)

// accessFlushInterval is how often the paths used are written down (for
// gc --max-size): a crash loses at most this much of them.
const accessFlushInterval = 30 * time.Second

// startGC sets up garbage collection of the daemon's store: access times
// recorded for every path looked up or put (the path-info service is
// wrapped, so nar-bridge, the mount and gRPC clients all count), the
// roots (temporary roots of sessions, cfg.GCRootsDir), and the Collector
// the gc admin service runs.
func (d *Daemon) startGC(ctx context.Context, cfg Config) error {
	s := d.Services
	if s.PathInfos == nil {
		return nil
	}
	access := gc.NewAccessLog(s.PathInfos)
	s.PathInfos = gc.RecordAccess(s.PathInfos, access)
	d.GC = &gc.Collector{Blobs: s.Blobs, Dirs: s.Directories, PathInfos: s.PathInfos, Roots: gc.NewRoots(cfg.GCRootsDir), Access: access}
	d.g.Go(func() error {
		access.Run(ctx, accessFlushInterval)
		return nil
	})
	return nil
}

// registerGCAdmin serves `tvix store gc` on srv if only this machine can
// reach it: collecting deletes paths, which uploading alone cannot.
func (d *Daemon) registerGCAdmin(srv *grpc.Server, addrs []string) {
	if d.GC == nil {
		return
	}
	for _, a := range addrs {
		if !isLocal(a) {
			slog.Info("gc admin service not served: a gRPC listener is not local", "addr", a)
			return
		}
	}
	gc.RegisterAdminServer(srv, d.GC)
}
