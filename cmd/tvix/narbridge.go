package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/store/narbridge"
	// nix+http(s)://, nix+file:// path info services (binary cache substituters).
	_ "github.com/tvix-go/tvix/store/nixcache"
)

// The Nix HTTP binary cache (nar-bridge) runs inside the daemon with
// --http-listen, or on its own as `tvix nar-bridge`.
func init() {
	daemonHooks = append(daemonHooks, daemonHook{
		flags: []cli.Flag{
			&cli.StringFlag{Name: "http-listen", Usage: "also serve a Nix binary cache (nar-bridge) on `ADDR` (host:port)"},
			&cli.StringFlag{Name: "signing-key-file", Usage: "sign served narinfos with the Nix secret key in `FILE`"},
			&cli.IntFlag{Name: "http-priority", Value: 39, Usage: "Priority announced in nix-cache-info"},
			&cli.BoolFlag{Name: "http-read-only", Usage: "refuse uploads (nix copy --to)"},
		},
		start: func(ctx context.Context, c *cli.Context, s *services) (func() error, error) {
			addr := c.String("http-listen")
			if addr == "" {
				return nil, nil
			}
			h, err := newNarBridge(c, s, c.Int("http-priority"), c.Bool("http-read-only"))
			if err != nil {
				return nil, err
			}
			return serveHTTP(ctx, addr, h)
		},
	})
	register(&cli.Command{
		Name:  "nar-bridge",
		Usage: "serve the store as a Nix HTTP binary cache (nix copy --to/--from http://…, substituters)",
		Flags: append(serviceFlags(),
			&cli.StringFlag{Name: "listen", Aliases: []string{"l"}, Value: "[::]:9000", Usage: "listen on `ADDR` (host:port)"},
			&cli.StringFlag{Name: "signing-key-file", Usage: "sign served narinfos with the Nix secret key in `FILE`"},
			&cli.IntFlag{Name: "priority", Value: 39, Usage: "Priority announced in nix-cache-info"},
			&cli.BoolFlag{Name: "read-only", Usage: "refuse uploads (nix copy --to)"},
		),
		Action: func(c *cli.Context) error {
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			s, err := openServices(ctx, c)
			if err != nil {
				return err
			}
			defer s.Close()
			h, err := newNarBridge(c, s, c.Int("priority"), c.Bool("read-only"))
			if err != nil {
				return err
			}
			run, err := serveHTTP(ctx, c.String("listen"), h)
			if err != nil {
				return err
			}
			return run()
		},
	})
}

func newNarBridge(c *cli.Context, s *services, priority int, readOnly bool) (http.Handler, error) {
	opts := narbridge.Options{Priority: priority, ReadOnly: readOnly}
	if f := c.String("signing-key-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--signing-key-file: %w", err)
		}
		k, err := narinfo.ParseSecretKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("--signing-key-file %s: %w", f, err)
		}
		opts.SigningKey = &k
	}
	return narbridge.New(s.blobs, s.dirs, s.pathInfo, opts), nil
}

// serveHTTP listens now (so a taken port fails at start) and returns the
// function that serves until ctx ends, then lets requests finish.
func serveHTTP(ctx context.Context, addr string, h http.Handler) (func() error, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nar-bridge: listen %s: %w", addr, err)
	}
	slog.Info("serving Nix binary cache", "addr", addr, "bound", lis.Addr().String())
	return serveListener(ctx, "nar-bridge", lis, h, func() {}), nil
}
