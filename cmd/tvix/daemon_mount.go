package main

import (
	"context"

	"github.com/urfave/cli/v2"

	tvixfs "github.com/tvix-go/tvix/castore/fs"
)

// tvix daemon --mount MOUNTPOINT serves the same tree as tvix mount from
// inside the daemon, unmounting when the daemon stops.
func init() {
	daemonHooks = append(daemonHooks, daemonHook{
		flags: []cli.Flag{
			&cli.StringFlag{Name: "mount", Usage: "also mount the store read-only at `MOUNTPOINT` (FUSE)"},
			&cli.BoolFlag{Name: "mount-list-root", Usage: "allow listing the mount's root"},
			&cli.BoolFlag{Name: "mount-allow-other", Usage: "let other users access the mount"},
			&cli.BoolFlag{Name: "mount-allow-non-empty", Usage: "mount over a non-empty directory"},
		},
		start: func(ctx context.Context, c *cli.Context, s *services) (func() error, error) {
			mp := c.String("mount")
			if mp == "" {
				return nil, nil
			}
			m, err := tvixfs.Mount(ctx, mp, storeTree(s), tvixfs.Options{
				ListRoot:      c.Bool("mount-list-root"),
				AllowOther:    c.Bool("mount-allow-other"),
				AllowNonEmpty: c.Bool("mount-allow-non-empty"),
				Timeout:       tvixfs.DefaultTimeout,
			})
			if err != nil {
				return nil, err
			}
			return func() error {
				<-ctx.Done()
				m.Wait()
				return nil
			}, nil
		},
	})
}
