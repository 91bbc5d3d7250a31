package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tvix-go/tvix/castore/castoregrpc"
	"github.com/tvix-go/tvix/internal/grpcdial"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// daemonHooks let other lines add servers to the daemon (mount, virtiofs,
// nar-bridge) without editing this file: each gets the opened services
// and runs until ctx ends.
type daemonHook struct {
	flags []cli.Flag
	// start returns nil, nil when its flags are not set.
	start func(ctx context.Context, c *cli.Context, s *services) (run func() error, err error)
}

var daemonHooks []daemonHook

var daemonCommand *cli.Command

// addDaemonHookFlags runs from newApp, after every init has registered.
func addDaemonHookFlags() {
	for _, h := range daemonHooks {
		daemonCommand.Flags = append(daemonCommand.Flags, h.flags...)
	}
}

// narCalculator is set by the store layer to answer CalculateNAR.
var narCalculator func(s *services) pathinfo.NARCalculator

func init() {
	cmd := &cli.Command{
		Name:   "daemon",
		Usage:  "serve the store over gRPC (and HTTP, mounts) until interrupted",
		Action: runDaemon,
		Before: func(c *cli.Context) error { return nil },
	}
	// Hooks register from other files' init functions, which may run after
	// this one: collect their flags when the app is built.
	cmd.Flags = append(serviceFlags(),
		&cli.StringSliceFlag{Name: "listen", Aliases: []string{"l"}, EnvVars: []string{"TVIX_LISTEN"},
			Usage: "gRPC listen address: unix:///path.sock or tcp://127.0.0.1:PORT (repeatable)"},
	)
	register(cmd)
	daemonCommand = cmd
}

func listen(addr string) (net.Listener, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w", addr, err)
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" {
			return nil, fmt.Errorf("--listen %q: want unix:///absolute/path.sock", addr)
		}
		// A socket left by a daemon that died is in the way; a live one is not ours to take.
		if conn, err := net.Dial("unix", u.Path); err == nil {
			conn.Close()
			return nil, fmt.Errorf("--listen %q: another process is serving on this socket", addr)
		}
		os.Remove(u.Path)
		return net.Listen("unix", u.Path)
	case "tcp":
		return net.Listen("tcp", u.Host)
	}
	return nil, fmt.Errorf("--listen %q: want unix:///path.sock or tcp://host:port", addr)
}

func runDaemon(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := openServices(ctx, c)
	if err != nil {
		return err
	}
	defer s.Close()

	srv := grpc.NewServer(grpc.MaxRecvMsgSize(grpcdial.MaxMessageSize), grpc.MaxSendMsgSize(grpcdial.MaxMessageSize))
	castoregrpc.Register(srv, s.blobs, s.dirs)
	var calc pathinfo.NARCalculator
	if narCalculator != nil {
		calc = narCalculator(s)
	}
	pathinfo.RegisterServer(srv, s.pathInfo, calc)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)

	g, gctx := errgroup.WithContext(ctx)
	addrs := c.StringSlice("listen")
	for _, a := range addrs {
		lis, err := listen(a)
		if err != nil {
			return err
		}
		if strings.HasPrefix(a, "unix://") {
			defer os.Remove(strings.TrimPrefix(a, "unix://"))
		}
		slog.Info("serving gRPC", "addr", a, "bound", lis.Addr().String())
		g.Go(func() error { return srv.Serve(lis) })
	}
	anyHookStarted := false
	for _, h := range daemonHooks {
		run, err := h.start(gctx, c, s)
		if err != nil {
			srv.Stop()
			return err
		}
		if run != nil {
			anyHookStarted = true
			g.Go(run)
		}
	}
	if len(addrs) == 0 && !anyHookStarted {
		return cli.Exit("daemon: nothing to serve; give --listen (or --mount, --http-listen, --virtiofs)", 2)
	}
	g.Go(func() error {
		<-gctx.Done()
		slog.Info("shutting down")
		hs.Shutdown()
		// In-flight calls finish; new ones are refused.
		srv.GracefulStop()
		return nil
	})
	if err := g.Wait(); err != nil && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
