package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/store/registry"
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

// defaultAddrs is the embedded default store: chunks in pack files with a
// bbolt index (an import is a few sequential files and one flush instead
// of a file per chunk), directories and path infos in one bbolt file.
func defaultAddrs(dataDir string) registry.Addrs {
	db := "bbolt://" + filepath.Join(dataDir, "db.bolt")
	return registry.Addrs{Blob: "pack+file://" + filepath.Join(dataDir, "packs"), Directory: db, PathInfo: db}
}

// serviceFlag names a flag, its environment variable and the service kind.
type serviceFlag struct {
	name, env string
	kind      registry.Kind
}

var storeServiceFlags = []serviceFlag{
	{"blob-service-addr", "BLOB_SERVICE_ADDR", registry.Blob},
	{"directory-service-addr", "DIRECTORY_SERVICE_ADDR", registry.Directory},
	{"path-info-service-addr", "PATH_INFO_SERVICE_ADDR", registry.PathInfo},
}

// serviceFlags are accepted by every command that touches the store.
func serviceFlags() []cli.Flag {
	reg := registry.Default()
	def := defaultAddrs(dataDir())
	defaults := []string{def.Blob, def.Directory, def.PathInfo}
	var flags []cli.Flag
	for i, f := range storeServiceFlags {
		flags = append(flags, &cli.StringFlag{Name: f.name, EnvVars: []string{f.env}, Value: defaults[i],
			Usage: fmt.Sprintf("%s URL, scheme one of: %s", f.kind, strings.Join(reg.Names(f.kind), ", "))})
	}
	return append(flags,
		&cli.StringFlag{Name: "substituters", EnvVars: []string{"TVIX_SUBSTITUTERS"},
			Usage: "space-separated upstreams asked, in order, for paths the local store lacks: nix+http://, nix+https://, nix+file:// binary caches or grpc+unix://, grpc+http:// tvix daemons"},
		&cli.StringFlag{Name: "trusted-public-keys", EnvVars: []string{"TVIX_TRUSTED_PUBLIC_KEYS"},
			Usage: "space-separated name:base64 keys; binary cache narinfos must carry a signature by one of them"},
		&cli.BoolFlag{Name: "allow-unsigned-substitutes", Usage: "accept unsigned narinfos from binary caches (NAR hashes are still checked)"},
	)
}

// storeAddrs reads the service flags, creating the embedded store's
// directory when a default points into it.
func storeAddrs(c *cli.Context) (registry.Addrs, error) {
	a := registry.Addrs{Blob: c.String("blob-service-addr"), Directory: c.String("directory-service-addr"), PathInfo: c.String("path-info-service-addr")}
	for _, f := range storeServiceFlags {
		if !c.IsSet(f.name) && os.Getenv(f.env) == "" {
			d := dataDir()
			if err := os.MkdirAll(d, 0o755); err != nil {
				return a, fmt.Errorf("create data directory %s: %w", d, err)
			}
			break
		}
	}
	return a, nil
}

// substitution reads the flags that say which binary caches to trust.
func substitution(c *cli.Context) registry.Substitution {
	return registry.Substitution{
		TrustedPublicKeys: strings.Fields(c.String("trusted-public-keys")),
		AllowUnsigned:     c.Bool("allow-unsigned-substitutes"),
	}
}

// openServices opens all three services with the substituters behind them.
func openServices(ctx context.Context, c *cli.Context) (*registry.Services, error) {
	a, err := storeAddrs(c)
	if err != nil {
		return nil, err
	}
	return registry.Default().Open(ctx, a, substitution(c), strings.Fields(c.String("substituters"))...)
}

// openCastore opens blob and directory services only.
func openCastore(ctx context.Context, c *cli.Context) (*registry.Services, error) {
	a, err := storeAddrs(c)
	if err != nil {
		return nil, err
	}
	a.PathInfo = ""
	return registry.Default().Open(ctx, a, registry.Substitution{})
}

// openBlobs opens the blob service only.
func openBlobs(ctx context.Context, c *cli.Context) (castore.BlobService, func(), error) {
	a, err := storeAddrs(c)
	if err != nil {
		return nil, nil, err
	}
	o := registry.Default().NewOpener(registry.Substitution{})
	b, err := o.BlobService(ctx, a.Blob)
	if err != nil {
		o.Close()
		return nil, nil, err
	}
	return b, func() { b.Close(); o.Close() }, nil
}
