package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	tvixfs "github.com/tvix-go/tvix/castore/fs"
	"github.com/tvix-go/tvix/daemon"
)

func mountCommands() []*cli.Command {
	var cmds []*cli.Command
	cmds = append(cmds, &cli.Command{
		Name:      "mount",
		Usage:     "mount the store read-only (as /nix/store) with FUSE, fetching contents on demand",
		ArgsUsage: "MOUNTPOINT",
		Description: "Shows every store path the PathInfoService knows below MOUNTPOINT, resolving each\n" +
			"only when looked up and streaming file contents from the BlobService on demand.\n" +
			"Runs in the foreground; SIGINT or SIGTERM unmounts (a busy mount is detached and\n" +
			"served until its last user is done; a second signal exits at once).\n" +
			"Mounts with mount(2) when permitted (root), else with the fusermount3/fusermount helper.",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "list-root", Aliases: []string{"l"}, Usage: "allow listing the root (enumerates every store path)"},
			&cli.BoolFlag{Name: "allow-other", Usage: "let other users access the mount (needs user_allow_other in /etc/fuse.conf unless root)"},
			&cli.IntFlag{Name: "threads", Usage: "`N` threads serving requests (default: number of CPUs)"},
			&cli.BoolFlag{Name: "allow-non-empty", Usage: "mount over a directory with entries, hiding them (e.g. /nix/store in a private mount namespace)"},
			&cli.DurationFlag{Name: "timeout", Value: tvixfs.DefaultTimeout, Usage: "give up on a service call after this long (the reader gets EIO)"},
			&cli.BoolFlag{Name: "debug-fuse", Usage: "log every FUSE request"},
		}, serviceFlags()...),
		Action: runMount,
	})
	return cmds
}

func runMount(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("tvix mount: want exactly one MOUNTPOINT", 2)
	}
	if n := c.Int("threads"); n > 0 {
		// go-fuse runs as many request readers as GOMAXPROCS (2..16).
		runtime.GOMAXPROCS(n)
	} else if n < 0 {
		return cli.Exit(fmt.Sprintf("tvix mount: --threads %d: want a positive number", n), 2)
	}
	svcs, err := openServices(c.Context, c)
	if err != nil {
		return err
	}
	defer svcs.Close()
	svc := daemon.StoreTree(svcs)

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := tvixfs.Mount(ctx, c.Args().First(), svc, tvixfs.Options{
		ListRoot:      c.Bool("list-root"),
		AllowOther:    c.Bool("allow-other"),
		AllowNonEmpty: c.Bool("allow-non-empty"),
		Timeout:       c.Duration("timeout"),
		Debug:         c.Bool("debug-fuse"),
	})
	if err != nil {
		if errors.Is(err, tvixfs.ErrMountpoint) {
			return cli.Exit("tvix mount: "+err.Error(), 1)
		}
		return err
	}
	select {
	case <-m.Done():
		slog.Info("unmounted externally", "mountpoint", m.Mountpoint())
		return nil
	case <-ctx.Done():
	}
	// The context cancel makes Mount unmount; restore default signal
	// handling once a second signal has been seen, so a third kills.
	slog.Info("unmounting", "mountpoint", m.Mountpoint())
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	select {
	case <-m.Done():
		return waitUnmounted(m)
	case <-again:
		return cli.Exit(fmt.Sprintf("tvix mount: exiting while %s is still in use; its users will see ENOTCONN", m.Mountpoint()), 1)
	}
}

// waitUnmounted reports an unmount failure Mount's cancel hook only logged.
func waitUnmounted(m *tvixfs.Mounted) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Unmount() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("unmount %s: timed out", m.Mountpoint())
	}
}
