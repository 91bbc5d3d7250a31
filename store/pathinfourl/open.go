// Package pathinfourl opens PathInfoServices from addresses:
// memory://, bbolt:///path/file.db, grpc+unix:///sock, grpc+http://host:port.
package pathinfourl

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/grpcdial"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// Open opens the service raw names. blobs and dirs are where services that
// fetch contents (binary-cache substituters) put them.
func Open(ctx context.Context, raw string, blobs castore.BlobService, dirs castore.DirectoryService) (pathinfo.Service, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("path info service %q: %w", raw, err)
	}
	switch u.Scheme {
	case "memory":
		return pathinfo.NewMemory(), nil
	case "bbolt":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("path info service %q: want bbolt:///absolute/path", raw)
		}
		return pathinfo.NewBolt(u.Path)
	case "grpc+unix", "grpc+http", "grpc+https":
		conn, err := grpcdial.Dial(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("path info service %q: %w", raw, err)
		}
		return pathinfo.NewClient(conn, conn), nil
	}
	if opener, ok := extraSchemes[u.Scheme]; ok {
		return opener(ctx, u, blobs, dirs)
	}
	return nil, fmt.Errorf("path info service %q: unknown scheme %q (want memory, bbolt, grpc+unix, grpc+http)", raw, u.Scheme)
}

// Opener opens a service for a scheme registered from another package
// (binary-cache substituters live above this package).
type Opener func(ctx context.Context, u *url.URL, blobs castore.BlobService, dirs castore.DirectoryService) (pathinfo.Service, error)

var extraSchemes = map[string]Opener{}

// Register adds a scheme; called from init functions.
func Register(scheme string, o Opener) { extraSchemes[scheme] = o }
