package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castoreurl"
	"github.com/tvix-go/tvix/castore/combined"
	"github.com/tvix-go/tvix/store/nixcache"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/pathinfourl"
)

// dataDir is where the embedded default store lives.
func dataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "tvix")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/var/lib"
	}
	return filepath.Join(home, ".local", "share", "tvix")
}

// defaultBlobServiceAddr is the embedded default's blob store: chunks in
// pack files with a bbolt index, so an import is a few sequential files and
// one flush instead of a file per chunk.
func defaultBlobServiceAddr(dataDir string) string {
	return "pack+file://" + filepath.Join(dataDir, "packs")
}

// serviceFlags are accepted by every command that touches the store.
func serviceFlags() []cli.Flag {
	d := dataDir()
	return []cli.Flag{
		&cli.StringFlag{Name: "blob-service-addr", EnvVars: []string{"BLOB_SERVICE_ADDR"}, Value: defaultBlobServiceAddr(d),
			Usage: "blob service URL: memory://, pack+file:///path, objectstore+file:///path, grpc+unix:///sock, grpc+http://host:port"},
		&cli.StringFlag{Name: "directory-service-addr", EnvVars: []string{"DIRECTORY_SERVICE_ADDR"}, Value: "bbolt://" + filepath.Join(d, "db.bolt"),
			Usage: "directory service URL: memory://, bbolt:///path/file.db, grpc+unix:///sock, grpc+http://host:port"},
		&cli.StringFlag{Name: "path-info-service-addr", EnvVars: []string{"PATH_INFO_SERVICE_ADDR"}, Value: "bbolt://" + filepath.Join(d, "db.bolt"),
			Usage: "path info service URL: memory://, bbolt:///path/file.db, grpc+unix:///sock, grpc+http://host:port, nix+https://cache"},
		&cli.StringFlag{Name: "substituters", EnvVars: []string{"TVIX_SUBSTITUTERS"},
			Usage: "space-separated upstreams asked, in order, for paths the local store lacks: nix+http://, nix+https://, nix+file:// binary caches or grpc+unix://, grpc+http:// tvix daemons"},
		&cli.StringFlag{Name: "trusted-public-keys", EnvVars: []string{"TVIX_TRUSTED_PUBLIC_KEYS"},
			Usage: "space-separated name:base64 keys; binary cache narinfos must carry a signature by one of them"},
		&cli.BoolFlag{Name: "allow-unsigned-substitutes", Usage: "accept unsigned narinfos from binary caches (NAR hashes are still checked)"},
	}
}

// services are the three store services a command works with.
type services struct {
	blobs    castore.BlobService
	dirs     castore.DirectoryService
	pathInfo pathinfo.Service
}

func (s *services) Close() error {
	var errs []error
	for _, c := range []interface{ Close() error }{s.pathInfo, s.dirs, s.blobs} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// openCastore opens blob and directory services only.
func openCastore(ctx context.Context, c *cli.Context) (*services, error) {
	if err := ensureDataDir(c); err != nil {
		return nil, err
	}
	blobs, err := castoreurl.OpenBlobService(ctx, c.String("blob-service-addr"))
	if err != nil {
		return nil, err
	}
	dirs, err := castoreurl.OpenDirectoryService(ctx, c.String("directory-service-addr"))
	if err != nil {
		blobs.Close()
		return nil, err
	}
	return &services{blobs: blobs, dirs: dirs}, nil
}

// openServices opens all three services.
func openServices(ctx context.Context, c *cli.Context) (*services, error) {
	s, err := openCastore(ctx, c)
	if err != nil {
		return nil, err
	}
	s.pathInfo, err = pathinfourl.Open(ctx, c.String("path-info-service-addr"), s.blobs, s.dirs)
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := addSubstituters(ctx, c, s); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// addSubstituters puts the --substituters behind the local path info
// service: binary caches fill the local castore when a path is asked for;
// tvix daemons lend their castore read-through, fetched as it is read.
func addSubstituters(ctx context.Context, c *cli.Context, s *services) error {
	raw := strings.Fields(c.String("substituters"))
	if len(raw) == 0 {
		return nil
	}
	keys := strings.Fields(c.String("trusted-public-keys"))
	if len(keys) == 0 && !c.Bool("allow-unsigned-substitutes") {
		for _, r := range raw {
			if strings.HasPrefix(r, "nix+") {
				return fmt.Errorf("--substituters %q: no --trusted-public-keys given; binary cache narinfos must be signed (or pass --allow-unsigned-substitutes)", r)
			}
		}
	}
	var subs []pathinfo.Service
	for _, r := range raw {
		u, err := url.Parse(r)
		if err != nil {
			return fmt.Errorf("--substituters %q: %w", r, err)
		}
		switch {
		case strings.HasPrefix(u.Scheme, "nix+"):
			q := u.Query()
			if q.Get("trusted-public-keys") == "" && len(keys) > 0 {
				q.Set("trusted-public-keys", strings.Join(keys, " "))
			}
			if c.Bool("allow-unsigned-substitutes") {
				q.Set("allow-unsigned", "true")
			}
			u.RawQuery = q.Encode()
			svc, err := pathinfourl.Open(ctx, u.String(), s.blobs, s.dirs)
			if err != nil {
				return err
			}
			subs = append(subs, svc)
		case strings.HasPrefix(u.Scheme, "grpc+"):
			far, err := pathinfourl.Open(ctx, r, nil, nil)
			if err != nil {
				return err
			}
			farBlobs, err := castoreurl.OpenBlobService(ctx, r)
			if err != nil {
				return err
			}
			farDirs, err := castoreurl.OpenDirectoryService(ctx, r)
			if err != nil {
				return err
			}
			s.blobs = combined.Blobs{Near: s.blobs, Far: farBlobs}
			s.dirs = combined.Directories{Near: s.dirs, Far: farDirs}
			subs = append(subs, far)
		default:
			return fmt.Errorf("--substituters %q: want nix+http(s)://, nix+file:// or grpc+unix://, grpc+http://", r)
		}
	}
	s.pathInfo = &nixcache.Composite{Local: s.pathInfo, Substituters: subs}
	return nil
}

// ensureDataDir creates the embedded store's directory when a default
// address points into it.
func ensureDataDir(c *cli.Context) error {
	d := dataDir()
	for _, f := range []string{"blob-service-addr", "directory-service-addr", "path-info-service-addr"} {
		if !c.IsSet(f) && os.Getenv(envOf(f)) == "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("create data directory %s: %w", d, err)
			}
			return nil
		}
	}
	return nil
}

func envOf(flag string) string {
	switch flag {
	case "blob-service-addr":
		return "BLOB_SERVICE_ADDR"
	case "directory-service-addr":
		return "DIRECTORY_SERVICE_ADDR"
	}
	return "PATH_INFO_SERVICE_ADDR"
}
