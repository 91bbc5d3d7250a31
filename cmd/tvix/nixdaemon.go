package main

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/daemon"
	"github.com/tvix-go/tvix/store/nixdaemon"
)

// nixDaemonFlags configure the Nix daemon protocol, for `daemon` and
// `nix-daemon` alike.
func nixDaemonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "trusted-users", Value: "root", Usage: "Nix clients trusted to add unsigned paths and build input-addressed derivations (Nix's trusted-users: names, @group, *)"},
		&cli.StringFlag{Name: "allowed-users", Value: "*", Usage: "Nix clients allowed to connect at all (Nix's allowed-users)"},
		&cli.BoolFlag{Name: "no-require-sigs", Usage: "let any Nix client add input-addressed paths without a trusted signature (Nix's require-sigs = false)"},
		&cli.StringFlag{Name: "nix-signing-key-file", Usage: "sign the path infos sent to Nix clients with the Nix secret key in `FILE` (as Nix's secret-key-files)"},
	}
}

func nixDaemonConfig(c *cli.Context) daemon.NixDaemonConfig {
	return daemon.NixDaemonConfig{
		TrustedUsers: strings.Fields(c.String("trusted-users")), AllowedUsers: strings.Fields(c.String("allowed-users")),
		NoRequireSigs: c.Bool("no-require-sigs"), SigningKeyFile: c.String("nix-signing-key-file"),
	}
}

func nixDaemonCommands() []*cli.Command {
	flags := append(serviceFlags(),
		&cli.BoolFlag{Name: "stdio", Usage: "serve one client on standard input and output (ssh-ng:// remote-program)"},
		&cli.IntFlag{Name: "build-jobs", Value: 1, Usage: "builds run at once"},
		&cli.DurationFlag{Name: "build-timeout", Usage: "kill a build running longer than this (0: no limit)"},
		&cli.StringFlag{Name: "build-backend", Value: "sandbox", Usage: "where builds run: sandbox or microvm"},
		&cli.DurationFlag{Name: "build-max-silent-time", Usage: "kill a build that logs nothing for this long (0: no limit)"},
		&cli.StringFlag{Name: "gc-roots", Usage: "gcroots `DIR` where Nix clients' indirect roots (result symlinks) are recorded (default: gcroots beside the embedded store)"},
	)
	flags = append(flags, nixDaemonFlags()...)
	return []*cli.Command{{
		Name:  "nix-daemon",
		Usage: "speak Nix's daemon protocol on stdin/stdout (--stdio), as `nix-daemon --stdio` for ssh-ng:// clients",
		Description: "The caller of --stdio already has a shell as the user tvix runs as, so it is trusted, as with Nix. " +
			"Give --store to use a running daemon's store (grpc+unix:///path.sock) instead of opening the embedded one, which a running daemon holds locked.",
		Flags:  flags,
		Action: runNixDaemon,
	}}
}

func runNixDaemon(c *cli.Context) error {
	if !c.Bool("stdio") {
		return cli.Exit("nix-daemon: only --stdio is served here; `tvix daemon --nix-daemon-listen unix:///path` serves a socket", 2)
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := openServices(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()
	bcfg := daemon.BuildConfig{Jobs: c.Int("build-jobs"), Timeout: c.Duration("build-timeout"),
		MaxSilentTime: c.Duration("build-max-silent-time"), Backend: c.String("build-backend")}
	srv, err := daemon.NewStdioNixDaemon(s, nixDaemonConfig(c), bcfg, substitution(c), gcRootsDir(c))
	if err != nil {
		return err
	}
	err = srv.ServeConn(ctx, os.Stdin, os.Stdout, nixdaemon.Peer{UID: os.Getuid(), GID: os.Getgid(), PID: os.Getppid(), Stdio: true})
	if err != nil && ctx.Err() == nil && !isEOF(err) {
		return err
	}
	return nil
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// gcRootsDir is --gc-roots, or the gcroots directory beside the embedded
// store: Nix clients record roots (nix-build's result) wherever they go.
func gcRootsDir(c *cli.Context) string {
	if d := c.String("gc-roots"); d != "" {
		return d
	}
	return filepath.Join(dataDir(), "gcroots")
}
