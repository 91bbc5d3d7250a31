package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/castoregrpc"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/castore/s3blob"
	"github.com/tvix-go/tvix/store/nixcache"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/pgstore"
)

// MaxMessageSize bounds gRPC messages both ways: directories with many
// entries are large; blob data is sent in 1 MiB messages anyway.
const MaxMessageSize = 64 << 20

// Default is a registry of every built-in scheme.
func Default() *Registry {
	r, err := New(BuiltinSchemes()...)
	if err != nil {
		panic(err) // the built-in list has no duplicates; a test checks it
	}
	return r
}

// BuiltinSchemes are the schemes tvix ships.
func BuiltinSchemes() []Scheme {
	grpcScheme := func(name, doc string) Scheme {
		return Scheme{
			Name: name, Doc: doc,
			Blob: func(ctx context.Context, u *url.URL, o *Opener) (castore.BlobService, error) {
				c, err := o.Conn(ctx, u)
				if err != nil {
					return nil, err
				}
				// The connection is the Opener's, closed once for all three.
				return castoregrpc.NewBlobClient(c, nil), nil
			},
			Directory: func(ctx context.Context, u *url.URL, o *Opener) (castore.DirectoryService, error) {
				c, err := o.Conn(ctx, u)
				if err != nil {
					return nil, err
				}
				return castoregrpc.NewDirectoryClient(c, nil), nil
			},
			PathInfo: func(ctx context.Context, u *url.URL, o *Opener) (pathinfo.Service, error) {
				c, err := o.Conn(ctx, u)
				if err != nil {
					return nil, err
				}
				return pathinfo.NewClient(c, nil), nil
			},
		}
	}
	nixScheme := func(name, doc string) Scheme {
		return Scheme{Name: name, Doc: doc, PathInfo: openBinaryCache}
	}
	return []Scheme{
		{
			Name: "memory", Doc: "in this process, gone on exit",
			Blob: func(context.Context, *url.URL, *Opener) (castore.BlobService, error) {
				return blobstore.NewMemory(), nil
			},
			Directory: func(context.Context, *url.URL, *Opener) (castore.DirectoryService, error) {
				return dirstore.NewMemory(), nil
			},
			PathInfo: func(context.Context, *url.URL, *Opener) (pathinfo.Service, error) {
				return pathinfo.NewMemory(), nil
			},
		},
		{
			Name: "pack+file", Doc: "blobs: chunks appended to pack files under /path, indexed in a bbolt file beside them (the default)",
			Blob: atLocalPath(func(p string) (castore.BlobService, error) { return blobstore.NewPack(p) }),
		},
		{
			Name: "objectstore+file", Doc: "blobs: a file per chunk and per chunk list under /path, sharded by digest (Tvix's object-store layout)",
			Blob: atLocalPath(func(p string) (castore.BlobService, error) { return blobstore.NewFile(p) }),
		},
		{
			Name: "objectstore+s3", Doc: "blobs: Tvix's object-store layout in an S3 bucket: objectstore+s3://BUCKET/PREFIX?endpoint=http://HOST:PORT&region=R (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials; cache=DIR&cache-size=10G keeps fetched chunks on local disk)",
			Blob: func(ctx context.Context, u *url.URL, _ *Opener) (castore.BlobService, error) {
				c, err := s3blob.ParseURL(u)
				if err != nil {
					return nil, err
				}
				return s3blob.Open(ctx, c)
			},
		},
		{
			Name: "bbolt", Doc: "directories and path infos in one embedded bbolt file",
			Directory: atLocalPath(func(p string) (castore.DirectoryService, error) { return dirstore.NewBolt(p) }),
			PathInfo:  atLocalPath(func(p string) (pathinfo.Service, error) { return pathinfo.NewBolt(p) }),
		},
		postgresScheme("postgres"),
		postgresScheme("postgresql"),
		grpcScheme("grpc+unix", "a tvix (or Tvix) daemon on a unix socket: grpc+unix:///path.sock"),
		grpcScheme("grpc+http", "a daemon over TCP: grpc+http://host:port"),
		grpcScheme("grpc+https", "a daemon over TLS: grpc+https://host:port"),
		nixScheme("nix+http", "path infos from a Nix binary cache over HTTP; contents go into the blob and directory services"),
		nixScheme("nix+https", "path infos from a Nix binary cache over HTTPS; contents go into the blob and directory services"),
		nixScheme("nix+file", "path infos from a Nix binary cache directory: nix+file:///path"),
	}
}

// postgresScheme serves directories and path infos from one PostgreSQL
// database, shared by any number of daemons.
func postgresScheme(name string) Scheme {
	return Scheme{
		Name: name, Doc: "directories and path infos in PostgreSQL, shared by many daemons: " + name + "://USER@HOST:PORT/DB?sslmode=disable&schema=NAME&pool_max_conns=N",
		Directory: func(ctx context.Context, u *url.URL, o *Opener) (castore.DirectoryService, error) {
			db, err := o.Postgres(ctx, u)
			if err != nil {
				return nil, err
			}
			return pgstore.NewDirectories(db), nil
		},
		PathInfo: func(ctx context.Context, u *url.URL, o *Opener) (pathinfo.Service, error) {
			db, err := o.Postgres(ctx, u)
			if err != nil {
				return nil, err
			}
			return pgstore.NewPathInfos(db), nil
		},
	}
}

// atLocalPath is the constructor of a scheme naming a local path
// (scheme:///abs/path).
func atLocalPath[S any](open func(path string) (S, error)) func(context.Context, *url.URL, *Opener) (S, error) {
	return func(_ context.Context, u *url.URL, _ *Opener) (S, error) {
		p, err := localPath(u)
		if err != nil {
			var zero S
			return zero, err
		}
		return open(p)
	}
}

func localPath(u *url.URL) (string, error) {
	if u.Host != "" {
		return "", fmt.Errorf("host %q given; a local path needs three slashes (%s:///abs/path)", u.Host, u.Scheme)
	}
	if !strings.HasPrefix(u.Path, "/") {
		return "", errors.New("path must be absolute")
	}
	return u.Path, nil
}

// openBinaryCache opens a nix+ cache, checking narinfos against the
// URL's trusted-public-keys or else the Opener's.
func openBinaryCache(_ context.Context, u *url.URL, o *Opener) (pathinfo.Service, error) {
	if o.Blobs == nil || o.Dirs == nil {
		return nil, errors.New("a binary cache needs blob and directory services to put contents into")
	}
	q := u.Query()
	if q.Get("trusted-public-keys") == "" && len(o.Substitution.TrustedPublicKeys) > 0 {
		q.Set("trusted-public-keys", strings.Join(o.Substitution.TrustedPublicKeys, " "))
	}
	if o.Substitution.AllowUnsigned {
		q.Set("allow-unsigned", "true")
	}
	v := *u
	v.RawQuery = q.Encode()
	return nixcache.Open(&v, o.Blobs, o.Dirs)
}

// dialGRPC creates a lazily connecting client for a grpc+ address.
func dialGRPC(_ context.Context, u *url.URL) (*grpc.ClientConn, error) {
	var target string
	creds := insecure.NewCredentials()
	switch u.Scheme {
	case "grpc+unix":
		if u.Host != "" || u.Path == "" {
			return nil, errors.New("grpc+unix address needs an absolute socket path (grpc+unix:///path/to.sock)")
		}
		target = "unix://" + u.Path
	case "grpc+http", "grpc+https":
		if u.Host == "" {
			return nil, fmt.Errorf("%s address needs host:port", u.Scheme)
		}
		target = "dns:///" + u.Host
		if u.Scheme == "grpc+https" {
			creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
		}
	default:
		return nil, fmt.Errorf("not a gRPC address scheme: %q", u.Scheme)
	}
	return grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)))
}
