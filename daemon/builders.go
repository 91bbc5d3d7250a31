package daemon

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/tvix-go/tvix/build"
	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/store/registry"
)

// OpenBuilders connects to remote builders (tvix daemons serving
// --build-listen), each given as a grpc+ URL with optional query
// parameters slots=N (builds at once, default 1) and system=SYSTEM (only
// builds for that platform). Outputs are fetched into blobs and dirs.
// close closes the connections.
func OpenBuilders(ctx context.Context, urls []string, blobs castore.BlobService, dirs castore.DirectoryService) (_ *build.Pool, close func() error, _ error) {
	o := registry.Default().NewOpener(registry.Substitution{})
	var remotes []*build.Remote
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			o.Close()
			return nil, nil, fmt.Errorf("--builders %q: %w", raw, err)
		}
		q := u.Query()
		slots := 1
		if s := q.Get("slots"); s != "" {
			if slots, err = strconv.Atoi(s); err != nil || slots < 1 {
				o.Close()
				return nil, nil, fmt.Errorf("--builders %q: slots=%q: want a positive number", raw, s)
			}
		}
		system := q.Get("system")
		u.RawQuery = ""
		addr := u.String()
		rb, err := o.BlobService(ctx, addr)
		if err != nil {
			o.Close()
			return nil, nil, fmt.Errorf("--builders: %w", err)
		}
		rd, err := o.DirectoryService(ctx, addr)
		if err != nil {
			o.Close()
			return nil, nil, fmt.Errorf("--builders: %w", err)
		}
		conn, err := o.Conn(ctx, u)
		if err != nil {
			o.Close()
			return nil, nil, fmt.Errorf("--builders %q: %w", raw, err)
		}
		remotes = append(remotes, &build.Remote{Name: addr, Builder: build.NewClient(conn), RemoteBlobs: rb, RemoteDirs: rd,
			Blobs: blobs, Dirs: dirs, System: system, Slots: slots})
	}
	return build.NewPool(remotes...), o.Close, nil
}
