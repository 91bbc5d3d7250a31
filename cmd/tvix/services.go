package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castoreurl"
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

// serviceFlags are accepted by every command that touches the store.
func serviceFlags() []cli.Flag {
	d := dataDir()
	return []cli.Flag{
		&cli.StringFlag{Name: "blob-service-addr", EnvVars: []string{"BLOB_SERVICE_ADDR"}, Value: "objectstore+file://" + filepath.Join(d, "blobs"),
			Usage: "blob service URL: memory://, objectstore+file:///path, grpc+unix:///sock, grpc+http://host:port"},
		&cli.StringFlag{Name: "directory-service-addr", EnvVars: []string{"DIRECTORY_SERVICE_ADDR"}, Value: "bbolt://" + filepath.Join(d, "db.bolt"),
			Usage: "directory service URL: memory://, bbolt:///path/file.db, grpc+unix:///sock, grpc+http://host:port"},
		&cli.StringFlag{Name: "path-info-service-addr", EnvVars: []string{"PATH_INFO_SERVICE_ADDR"}, Value: "bbolt://" + filepath.Join(d, "db.bolt"),
			Usage: "path info service URL: memory://, bbolt:///path/file.db, grpc+unix:///sock, grpc+http://host:port"},
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
	return s, nil
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
