package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/daemon"
)

func daemonCommands() []*cli.Command {
	flags := append(append(serviceFlags(), uploadFlags()...),
		&cli.StringSliceFlag{Name: "listen", Aliases: []string{"l"}, EnvVars: []string{"TVIX_LISTEN"},
			Usage: "gRPC listen address: unix:///path.sock or tcp://HOST:PORT (no host: 127.0.0.1) (repeatable)"},
		storeConfigFlag(),
		&cli.StringFlag{Name: "http-listen", Usage: "also serve a Nix binary cache (nar-bridge) on `ADDR` (host:port)"},
		&cli.StringFlag{Name: "signing-key-file", Usage: "sign served narinfos with the Nix secret key in `FILE`"},
		&cli.IntFlag{Name: "http-priority", Value: 39, Usage: "Priority announced in nix-cache-info"},
		&cli.BoolFlag{Name: "http-read-only", Usage: "refuse uploads (nix copy --to)"},
		chunkCacheFlag("http-chunk-cache-mib"),
		&cli.StringFlag{Name: "socket-group", Usage: "give the unix sockets created (0660) to `GROUP` (name or id), whose members may then connect"},
		&cli.StringFlag{Name: "mount", Usage: "also mount the store read-only at `MOUNTPOINT` (FUSE)"},
		&cli.BoolFlag{Name: "mount-list-root", Usage: "allow listing the mount's root"},
		&cli.BoolFlag{Name: "mount-allow-other", Usage: "let other users access the mount"},
		&cli.BoolFlag{Name: "mount-allow-non-empty", Usage: "mount over a non-empty directory"},
		&cli.StringFlag{Name: "virtiofs", Usage: "serve the store to VMs as a vhost-user virtio-fs device on socket `PATH`"},
		&cli.BoolFlag{Name: "virtiofs-list-root", Usage: "allow guests to list the store's root"},
		&cli.StringFlag{Name: "eval-listen", Usage: "also serve POST /eval (evaluate, then substitute the outputs' closures) over HTTP on `ADDR`: unix:///path.sock or tcp://127.0.0.1:PORT; evaluation reads files with the daemon's rights, keep it local"},
		&cli.IntFlag{Name: "eval-jobs", Value: 1, Usage: "evaluations run at once by /eval; more wait"},
		&cli.StringFlag{Name: "gc-roots", Usage: "gcroots `DIR` (symlinks to store paths; auto/ for indirect roots) whose closures tvix store gc --roots and delete keep"},
		&cli.StringSliceFlag{Name: "build-listen", Usage: "serve builds (Tvix's BuildService, with the store's services for fetching outputs) on `ADDR`: unix:///path.sock or tcp://127.0.0.1:PORT (repeatable)"},
		&cli.IntFlag{Name: "build-jobs", Value: 1, Usage: "builds run at once for --build-listen clients; more wait"},
		&cli.DurationFlag{Name: "build-timeout", Usage: "kill a build running longer than this (0: no limit)"},
		&cli.StringFlag{Name: "build-backend", Value: "sandbox", Usage: "where served builds run: sandbox or microvm"},
		&cli.DurationFlag{Name: "build-max-silent-time", Usage: "kill a build that logs nothing for this long (0: no limit)"},
		&cli.StringSliceFlag{Name: "nix-daemon-listen", Usage: "serve Nix's daemon protocol on `ADDR` (unix:///path.sock; repeatable): Nix clients use the store with --store unix:///path.sock and build with the --build-backend"},
	)
	flags = append(flags, nixDaemonFlags()...)
	return []*cli.Command{{
		Name:   "daemon",
		Usage:  "serve the store over gRPC (and HTTP, mounts) until interrupted",
		Flags:  flags,
		Action: runDaemon,
	}}
}

// uploadFlags have the same names for `daemon` and `nar-bridge`; they are
// made per command, since a cli.Flag records whether it was set.
func uploadFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "http-upload-auth-file",
			Usage: "accept uploads (nix copy --to) from the users in `FILE` (user:password lines; HTTP Basic, as from Nix's netrc-file, or Bearer PASSWORD)"},
		&cli.BoolFlag{Name: "http-allow-anonymous-uploads",
			Usage: "accept uploads from anyone who can connect (refused unless listening on loopback or a unix socket)"},
		&cli.IntFlag{Name: "max-depth", Value: castore.DefaultMaxDepth,
			Usage: "refuse uploaded trees (NARs, gRPC directories) nested deeper than this (0: no limit)"},
		&cli.IntFlag{Name: "max-dir-entries", Value: castore.DefaultMaxEntries,
			Usage: "refuse uploaded directories with more entries than this (0: no limit)"},
		&cli.IntFlag{Name: "max-name-length", Value: castore.MaxNameLen,
			Usage: "refuse uploaded entry names longer than this many bytes (at most 255; 0: 255)"},
		&cli.Int64Flag{Name: "max-nar-size", Value: daemon.DefaultMaxNARSize,
			Usage: "refuse uploaded NARs of more than this many bytes, uncompressed (0: no limit)"},
		&cli.Int64Flag{Name: "max-narinfo-size", Value: daemon.DefaultMaxNarinfoSize,
			Usage: "refuse uploaded narinfos of more than this many bytes (0: no limit)"},
	}
}

// uploadConfig reads uploadFlags into cfg.
func uploadConfig(c *cli.Context, cfg *daemon.Config) {
	cfg.HTTP.UploadAuthFile = c.String("http-upload-auth-file")
	cfg.HTTP.AllowAnonymousUploads = c.Bool("http-allow-anonymous-uploads")
	// A flag's 0 says no limit, as --build-timeout's does; the config's 0
	// is the default (the flags' defaults), its negative no limit.
	cfg.Limits = daemon.Limits{MaxDepth: noLimit(c.Int("max-depth")), MaxEntries: noLimit(c.Int("max-dir-entries")),
		MaxNameLen: noLimit(c.Int("max-name-length")), MaxNARSize: noLimit(c.Int64("max-nar-size")),
		MaxNarinfoSize: noLimit(c.Int64("max-narinfo-size"))}
}

func noLimit[T int | int64](flag T) T {
	if flag == 0 {
		return -1
	}
	return flag
}

// daemonStore reads the flags every serving command shares.
func daemonStore(c *cli.Context) (daemon.Config, error) {
	a, err := storeAddrs(c)
	if err != nil {
		return daemon.Config{}, err
	}
	return daemon.Config{Store: a, Substituters: strings.Fields(c.String("substituters")), Substitution: substitution(c)}, nil
}

func runDaemon(c *cli.Context) error {
	cache, err := chunkCache(c, "http-chunk-cache-mib") // before the store is opened
	if err != nil {
		return err
	}
	cfg, err := daemonStore(c)
	if err != nil {
		return err
	}
	if cfg.StoreConfig, err = storeConfig(c); err != nil {
		return err
	}
	cfg.GRPC = c.StringSlice("listen")
	cfg.HTTP = daemon.HTTPConfig{Listen: c.String("http-listen"), SigningKeyFile: c.String("signing-key-file"),
		Priority: c.Int("http-priority"), ReadOnly: c.Bool("http-read-only"), ChunkCache: cache}
	uploadConfig(c, &cfg)
	cfg.SocketGroup = c.String("socket-group")
	cfg.Mount = daemon.MountConfig{Path: c.String("mount"), ListRoot: c.Bool("mount-list-root"),
		AllowOther: c.Bool("mount-allow-other"), AllowNonEmpty: c.Bool("mount-allow-non-empty")}
	cfg.VirtioFS = daemon.VirtioFSConfig{Socket: c.String("virtiofs"), ListRoot: c.Bool("virtiofs-list-root")}
	cfg.Eval = daemon.EvalConfig{Listen: c.String("eval-listen"), Jobs: c.Int("eval-jobs")}
	cfg.GCRootsDir = c.String("gc-roots")
	cfg.Build = daemon.BuildConfig{Listen: c.StringSlice("build-listen"), Jobs: c.Int("build-jobs"),
		Timeout: c.Duration("build-timeout"), MaxSilentTime: c.Duration("build-max-silent-time"), Backend: c.String("build-backend")}
	cfg.NixDaemon = nixDaemonConfig(c)
	cfg.NixDaemon.Listen = c.StringSlice("nix-daemon-listen")
	if len(cfg.NixDaemon.Listen) > 0 {
		cfg.GCRootsDir = gcRootsDir(c)
	}
	if cfg.Eval.Listen != "" && cfg.Eval.Jobs < 1 {
		return fmt.Errorf("--eval-jobs %d: want at least 1", cfg.Eval.Jobs)
	}
	return serve(c, cfg)
}

// serve runs a daemon until SIGINT or SIGTERM.
func serve(c *cli.Context, cfg daemon.Config) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := daemon.Run(ctx, cfg)
	if errors.Is(err, daemon.ErrNothingToServe) {
		return cli.Exit(err.Error(), 2)
	}
	return err
}
