// Package castoreurl opens castore services from the URLs every command
// and the daemon accept, so one scheme means one thing everywhere:
//
//	memory://                      in-process, gone on exit
//	pack+file:///abs/path          chunked blobs appended to pack files, bbolt index (embedded default)
//	objectstore+file:///abs/path   chunked blobs in a sharded directory tree, a file per chunk
//	bbolt:///abs/path/file.db      directories in an embedded bbolt file
//	grpc+unix:///abs/path.sock     a tvix (or Tvix) daemon on a unix socket
//	grpc+http://host:port          a daemon over TCP
package castoreurl

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/castoregrpc"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/internal/grpcdial"
)

func parse(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("service address %q: %w", raw, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("service address %q: no scheme (want e.g. memory://, bbolt:///path, grpc+unix:///path)", raw)
	}
	return u, nil
}

func localPath(u *url.URL, raw string) (string, error) {
	if u.Host != "" {
		return "", fmt.Errorf("service address %q: host %q given; a local path needs three slashes (scheme:///abs/path)", raw, u.Host)
	}
	if !strings.HasPrefix(u.Path, "/") {
		return "", fmt.Errorf("service address %q: path must be absolute", raw)
	}
	return u.Path, nil
}

// OpenBlobService opens the BlobService an address names.
func OpenBlobService(ctx context.Context, raw string) (castore.BlobService, error) {
	u, err := parse(raw)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "memory":
		return blobstore.NewMemory(), nil
	case "pack+file":
		p, err := localPath(u, raw)
		if err != nil {
			return nil, err
		}
		return blobstore.NewPack(p)
	case "objectstore+file":
		p, err := localPath(u, raw)
		if err != nil {
			return nil, err
		}
		return blobstore.NewFile(p)
	case "grpc+unix", "grpc+http", "grpc+https":
		conn, err := grpcdial.Dial(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("blob service %q: %w", raw, err)
		}
		return castoregrpc.NewBlobClient(conn, conn), nil
	}
	return nil, fmt.Errorf("blob service %q: unknown scheme %q (want memory, pack+file, objectstore+file, grpc+unix, grpc+http)", raw, u.Scheme)
}

// OpenDirectoryService opens the DirectoryService an address names.
func OpenDirectoryService(ctx context.Context, raw string) (castore.DirectoryService, error) {
	u, err := parse(raw)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "memory":
		return dirstore.NewMemory(), nil
	case "bbolt":
		p, err := localPath(u, raw)
		if err != nil {
			return nil, err
		}
		return dirstore.NewBolt(p)
	case "grpc+unix", "grpc+http", "grpc+https":
		conn, err := grpcdial.Dial(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("directory service %q: %w", raw, err)
		}
		return castoregrpc.NewDirectoryClient(conn, conn), nil
	}
	return nil, fmt.Errorf("directory service %q: unknown scheme %q (want memory, bbolt, grpc+unix, grpc+http)", raw, u.Scheme)
}
