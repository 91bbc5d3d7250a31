package main

import (
	"context"

	"github.com/urfave/cli/v2"

	tvixfs "github.com/tvix-go/tvix/castore/fs"
	"github.com/tvix-go/tvix/store/storefs"
	"github.com/tvix-go/tvix/virtiofs"
)

// storeTree is the read-only store tree every transport serves: the FUSE
// mount, virtio-fs for VMs, boot's in-process server.
func storeTree(s *services) tvixfs.Services {
	return tvixfs.Services{Blobs: s.blobs, Directories: s.dirs, Roots: storefs.New(s.pathInfo, nil)}
}

// tvix daemon --virtiofs PATH serves the store tree to VMs over vhost-user.
func init() {
	daemonHooks = append(daemonHooks, daemonHook{
		flags: []cli.Flag{
			&cli.StringFlag{Name: "virtiofs", Usage: "serve the store to VMs as a vhost-user virtio-fs device on socket `PATH`"},
			&cli.BoolFlag{Name: "virtiofs-list-root", Usage: "allow guests to list the store's root"},
		},
		start: func(ctx context.Context, c *cli.Context, s *services) (func() error, error) {
			sock := c.String("virtiofs")
			if sock == "" {
				return nil, nil
			}
			opts := tvixfs.Options{ListRoot: c.Bool("virtiofs-list-root"), Timeout: tvixfs.DefaultTimeout}
			raw := tvixfs.NewRawFileSystem(ctx, storeTree(s), opts)
			l, err := virtiofs.Listen(sock)
			if err != nil {
				return nil, err
			}
			return func() error { return virtiofs.ServeListener(ctx, l, raw, virtiofs.Options{}) }, nil
		},
	})
}
