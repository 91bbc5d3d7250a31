package main

import (
	"context"
	"errors"
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
	flags := []cli.Flag{storeFlag()}
	for i, f := range storeServiceFlags {
		flags = append(flags, &cli.StringFlag{Name: f.name, EnvVars: []string{f.env}, DefaultText: defaults[i],
			Usage: fmt.Sprintf("%s URL (overrides --store), scheme one of: %s", f.kind, strings.Join(reg.Names(f.kind), ", "))})
	}
	return append(flags,
		&cli.StringFlag{Name: "substituters", EnvVars: []string{"TVIX_SUBSTITUTERS"},
			Usage: "space-separated upstreams asked, in order, for paths the local store lacks: nix+http://, nix+https://, nix+file:// binary caches or grpc+unix://, grpc+http:// tvix daemons"},
		&cli.StringFlag{Name: "trusted-public-keys", EnvVars: []string{"TVIX_TRUSTED_PUBLIC_KEYS"},
			Usage: "space-separated name:base64 keys; binary cache narinfos must carry a signature by one of them"},
		&cli.BoolFlag{Name: "allow-unsigned-substitutes", Usage: "accept unsigned narinfos from binary caches (NAR hashes are still checked)"},
	)
}

const storeUsage = "the `STORE` of every service: a tvix daemon (unix:///path.sock, grpc+unix:///path.sock, " +
	"grpc+http://host:port, or the path of its socket), a directory holding an embedded store, or memory:// (gone on exit); " +
	"an explicit --blob-service-addr, --directory-service-addr or --path-info-service-addr overrides it for that service"

// storeConfigFlag is --store-config, of the commands that can open a
// store composition (the daemon, gc).
func storeConfigFlag() cli.Flag {
	return &cli.StringFlag{Name: "store-config", EnvVars: []string{"TVIX_STORE_CONFIG"},
		Usage: "open the store's services from the composition `FILE` (TOML: blobservices, directoryservices, pathinfoservices, each with a root; see docs/deployment.md) instead of --store and the service flags"}
}

// storeConfig is --store-config, which replaces the store flags.
func storeConfig(c *cli.Context) (string, error) {
	file := c.String("store-config")
	if file == "" {
		return "", nil
	}
	for _, f := range []string{"store", "blob-service-addr", "directory-service-addr", "path-info-service-addr"} {
		if c.IsSet(f) {
			return "", cli.Exit(fmt.Sprintf("--store-config and --%s both name the store's services; give one", f), 2)
		}
	}
	return file, nil
}

// storeFlag is --store, one setting for all three services.
func storeFlag() cli.Flag {
	return &cli.StringFlag{Name: "store", EnvVars: []string{"TVIX_STORE"}, Usage: storeUsage}
}

// storeBase is what --store names: the three addresses of a daemon, or of
// the embedded store in a directory (embedded is then that directory, to
// be created before use).
func storeBase(store string) (a registry.Addrs, embedded string, err error) {
	switch {
	case store == "":
		d := dataDir()
		return defaultAddrs(d), d, nil
	case strings.HasPrefix(store, "unix://"):
		store = "grpc+" + store
		return registry.Addrs{Blob: store, Directory: store, PathInfo: store}, "", nil
	case strings.HasPrefix(store, "grpc+") || store == "memory://":
		return registry.Addrs{Blob: store, Directory: store, PathInfo: store}, "", nil
	case strings.Contains(store, "://"):
		return a, "", fmt.Errorf("--store %q: want unix://, grpc+unix://, grpc+http://, memory:// or a directory; "+
			"other schemes name one service and go to --blob-service-addr, --directory-service-addr or --path-info-service-addr", store)
	}
	abs, err := filepath.Abs(store)
	if err != nil {
		return a, "", fmt.Errorf("--store %q: %w", store, err)
	}
	if fi, err := os.Stat(abs); err == nil && fi.Mode()&os.ModeSocket != 0 {
		u := "grpc+unix://" + abs
		return registry.Addrs{Blob: u, Directory: u, PathInfo: u}, "", nil
	} else if err == nil && !fi.IsDir() {
		return a, "", fmt.Errorf("--store %s: neither a directory nor a daemon's socket", store)
	}
	return defaultAddrs(abs), abs, nil
}

// resolveAddrs combines --store (or the default store) with the services
// given one by one; set reports an explicitly given address.
func resolveAddrs(store string, set func(serviceFlag) (string, bool)) (registry.Addrs, error) {
	a, embedded, err := storeBase(store)
	if err != nil {
		return a, err
	}
	usesEmbedded := false
	for _, f := range storeServiceFlags {
		v, ok := set(f)
		if !ok {
			usesEmbedded = embedded != ""
			continue
		}
		switch f.kind {
		case registry.Blob:
			a.Blob = v
		case registry.Directory:
			a.Directory = v
		default:
			a.PathInfo = v
		}
	}
	if usesEmbedded {
		if err := os.MkdirAll(embedded, 0o755); err != nil {
			return a, fmt.Errorf("create store directory %s: %w", embedded, err)
		}
	}
	return a, nil
}

// storeAddrs reads --store and the service flags, creating the embedded
// store's directory when a service is in it.
func storeAddrs(c *cli.Context) (registry.Addrs, error) {
	return resolveAddrs(c.String("store"), func(f serviceFlag) (string, bool) {
		if !c.IsSet(f.name) {
			return "", false
		}
		return c.String(f.name), true
	})
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
	return openStore(ctx, c, a, strings.Fields(c.String("substituters")), func(string) string { return "--substituters" })
}

// openStore opens a with the upstreams subs behind it; a failing upstream
// is reported under the flag the user gave it in (flagOf).
func openStore(ctx context.Context, c *cli.Context, a registry.Addrs, subs []string, flagOf func(url string) string) (*registry.Services, error) {
	s, err := registry.Default().Open(ctx, a, substitution(c), subs...)
	var se *registry.SubstituterError
	if errors.As(err, &se) {
		hint := ""
		for _, p := range []string{"file://", "http://", "https://"} {
			if strings.HasPrefix(se.URL, p) {
				hint = fmt.Sprintf(" (a Nix binary cache is nix+%s)", se.URL)
			}
		}
		return nil, fmt.Errorf("%s %q: %w%s", flagOf(se.URL), se.URL, se.Err, hint)
	}
	return s, err
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
