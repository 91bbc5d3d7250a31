package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/urfave/cli/v2"

	"github.com/tvix-go/tvix/boot"
	"github.com/tvix-go/tvix/boot/guest"
	"github.com/tvix-go/tvix/castore"
	tvixfs "github.com/tvix-go/tvix/castore/fs"
	"github.com/tvix-go/tvix/daemon"
	"github.com/tvix-go/tvix/nbd"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/closure"
	"github.com/tvix-go/tvix/store/nixcache"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/registry"
	"github.com/tvix-go/tvix/virtiofs"
)

func bootCommands() []*cli.Command {
	var cmds []*cli.Command
	cmds = append(cmds, &cli.Command{
		Name:      "virtiofs",
		Usage:     "serve a tree to VMs as a vhost-user virtio-fs device",
		ArgsUsage: " ",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "socket", Required: true, Usage: "vhost-user `PATH` for QEMU's -chardev socket"},
			&cli.StringFlag{Name: "dir", Usage: "serve this host `DIR` instead of the store"},
			&cli.BoolFlag{Name: "list-root", Usage: "allow guests to list the store's root"},
			&cli.IntFlag{Name: "request-queues", Value: 1, Usage: "request queues offered (QEMU num-request-queues)"},
			&cli.IntFlag{Name: "workers", Usage: "FUSE requests served at once per VM (default 2×CPUs)"},
		}, serviceFlags()...),
		Action: func(c *cli.Context) error {
			rawFS, closeTree, err := treeFromFlags(c)
			if err != nil {
				return err
			}
			defer closeTree()
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			slog.Info("serving virtio-fs", "socket", c.String("socket"))
			return virtiofs.Serve(ctx, c.String("socket"), rawFS, virtiofs.Options{
				RequestQueues: c.Int("request-queues"), Workers: c.Int("workers"),
			})
		},
	})

	cmds = append(cmds, &cli.Command{
		Name:      "boot",
		Usage:     "boot a QEMU VM with the store as /nix/store over virtio-fs",
		ArgsUsage: "[-- ARGS for --run]",
		Description: "Exactly one of --run, --shell, --find, --system. The store comes from a running\n" +
			"server (--virtiofs-socket) or is served in-process (--dir). --disk DIGEST attaches an\n" +
			"image imported with `tvix castore import-image` read-only as /dev/vda (/dev/tvix-disk0).\n" +
			"Example: tvix boot --dir /nix/store --run /nix/store/...-hello/bin/hello",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "run", Usage: "run `PROGRAM` in the guest (extra args after --) and exit with its status"},
			&cli.BoolFlag{Name: "shell", Usage: "interactive busybox shell on the console"},
			&cli.BoolFlag{Name: "find", Usage: "list /nix/store as the guest sees it"},
			&cli.StringFlag{Name: "system", Usage: "switch_root into this system's init `PATH` (kernel init=)"},
			&cli.StringFlag{Name: "virtiofs-socket", Usage: "vhost-user `PATH` of a running `tvix virtiofs`/daemon"},
			&cli.StringFlag{Name: "dir", Usage: "serve this host `DIR` as /nix/store in-process"},
			&cli.StringSliceFlag{Name: "disk", Usage: "attach the blob `DIGEST` (from `tvix castore import-image`) read-only as /dev/vda, /dev/vdb, ... (repeatable); fetched lazily from --blob-service-addr over NBD"},
			&cli.StringFlag{Name: "kernel", Usage: "kernel `PATH` (default: newest /boot/vmlinuz-*)"},
			&cli.StringFlag{Name: "modules", Usage: "module `DIR` matching the kernel (default /lib/modules/RELEASE)"},
			&cli.StringFlag{Name: "init", Usage: "tvix-init `PATH` (default: next to tvix, in PATH, or tvix itself)", EnvVars: []string{"TVIX_INIT"}},
			&cli.StringFlag{Name: "qemu", Usage: "QEMU `PATH` (default qemu-system-x86_64)"},
			&cli.StringFlag{Name: "busybox", Usage: "static busybox `PATH` for --shell and --tools (default /bin/busybox)"},
			&cli.BoolFlag{Name: "tools", Usage: "put busybox (sh, dd, md5sum, ...) into the guest's /bin for --run commands"},
			&cli.StringFlag{Name: "machine", Value: boot.MachineMicroVM, Usage: "microvm (virtio-mmio, fastest) or q35 (virtio-pci)"},
			&cli.StringFlag{Name: "accel", Value: "auto", Usage: "auto (KVM when /dev/kvm is usable), kvm or tcg"},
			&cli.IntFlag{Name: "cpus", Value: 1, Usage: "virtual CPUs"},
			&cli.IntFlag{Name: "memory", Value: 512, Usage: "guest memory in `MiB`"},
			&cli.StringFlag{Name: "tag", Value: guest.DefaultTag, Usage: "virtio-fs tag"},
			&cli.StringSliceFlag{Name: "append", Usage: "extra kernel command line `PARAM`s"},
			&cli.DurationFlag{Name: "boot-timeout", Value: 60 * time.Second, Usage: "give up when the store is not mounted by then"},
			&cli.DurationFlag{Name: "timeout", Usage: "kill the VM after this long (0: no limit)"},
			&cli.BoolFlag{Name: "no-direct-boot", Usage: "boot the compressed kernel instead of the vmlinux extracted from it (PVH)"},
			&cli.BoolFlag{Name: "times", Usage: "print boot timings to stderr"},
			&cli.StringFlag{Name: "expr", Aliases: []string{"E"}, Usage: "Nix `EXPR` whose first output a relative --run path is in"},
			&cli.StringFlag{Name: "file", Usage: "Nix `FILE` whose first output a relative --run path is in"},
			&cli.StringSliceFlag{Name: "attr", Aliases: []string{"A"}, Usage: "attribute `PATH` of the expression"},
		}, serviceFlags()...),
		Action: bootAction,
	})
	return cmds
}

func bootAction(c *cli.Context) error {
	cfg := boot.Config{
		Shell: c.Bool("shell"), Find: c.Bool("find"), System: c.String("system"),
		Socket: c.String("virtiofs-socket"), Kernel: c.String("kernel"), ModulesDir: c.String("modules"),
		Init: c.String("init"), SelfCanBeInit: true, QEMU: c.String("qemu"), Busybox: c.String("busybox"), Tools: c.Bool("tools"),
		Machine: c.String("machine"), Accel: c.String("accel"), CPUs: c.Int("cpus"), MemoryMB: c.Int("memory"),
		Tag: c.String("tag"), Append: c.StringSlice("append"),
		BootTimeout: c.Duration("boot-timeout"), Timeout: c.Duration("timeout"),
		NoDirectBoot: c.Bool("no-direct-boot"),
		Stdin:        os.Stdin,
	}
	var need *storepath.StorePath // the output --run is in, checked before booting
	if p := c.String("run"); p != "" {
		if c.String("expr") != "" || c.String("file") != "" {
			var exprs, files []string
			if e := c.String("expr"); e != "" {
				exprs = append(exprs, e)
			}
			if f := c.String("file"); f != "" {
				files = append(files, f)
			}
			outs, err := evalOutputs(exprs, files, c.StringSlice("attr"), nil)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(p, "/") {
				p = outs[0].String() + "/" + p
				need = &outs[0]
			}
		}
		cfg.Run = append([]string{p}, c.Args().Slice()...)
	} else if c.Args().Present() {
		return fmt.Errorf("unexpected arguments %q (arguments go to --run PROGRAM)", c.Args().Slice())
	}
	if c.String("dir") != "" && cfg.Socket != "" {
		return errors.New("--dir and --virtiofs-socket exclude each other")
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM)
	defer stop()
	var blobs castore.BlobService
	if cfg.Socket == "" && c.String("dir") == "" {
		// No running server: serve the store itself in-process.
		s, err := openServices(c.Context, c)
		if err != nil {
			return err
		}
		defer s.Close()
		if need != nil {
			if err := checkClosure(ctx, s, *need); err != nil {
				return err
			}
		}
		opts := tvixfs.Options{ListRoot: c.Bool("list-root") || c.Bool("find"), Timeout: tvixfs.DefaultTimeout}
		cfg.FS = tvixfs.NewRawFileSystem(c.Context, daemon.StoreTree(s), opts)
		blobs = s.Blobs
	} else if cfg.Socket == "" {
		if need != nil {
			if _, err := os.Stat(filepath.Join(c.String("dir"), need.Basename())); err != nil {
				return fmt.Errorf("--dir %s lacks %s, the output of the expression --run is in", c.String("dir"), need.Basename())
			}
		}
		rawFS, closeTree, err := treeFromFlags(c)
		if err != nil {
			return err
		}
		defer closeTree()
		cfg.FS = rawFS
	}
	var disks []*nbd.BlobDisk
	if digests := c.StringSlice("disk"); len(digests) > 0 {
		if blobs == nil {
			// The same blob service the store would use: a daemon over
			// gRPC, or the local store.
			b, closeBlobs, err := openBlobs(ctx, c)
			if err != nil {
				return err
			}
			defer closeBlobs()
			blobs = b
		}
		for _, arg := range digests {
			d, err := castore.ParseDigest(arg)
			if err != nil {
				return fmt.Errorf("--disk %q: %w", arg, err)
			}
			disk, err := nbd.OpenBlob(ctx, blobs, d)
			if err != nil {
				return err
			}
			defer disk.Close()
			disks = append(disks, disk)
			cfg.Disks = append(cfg.Disks, disk.Export(""))
		}
	}
	if !cfg.Shell {
		// In the shell ^C belongs to the guest; elsewhere it stops the VM.
		var stopInt context.CancelFunc
		ctx, stopInt = signal.NotifyContext(ctx, os.Interrupt)
		defer stopInt()
	}
	res, err := boot.Run(ctx, cfg)
	if c.Bool("times") {
		fmt.Fprintf(os.Stderr, "tvix boot: accel=%s ready=%v total=%v\n", res.Accel, res.Ready.Round(time.Millisecond), res.Total.Round(time.Millisecond))
		var g strings.Builder
		for _, s := range res.Guest {
			fmt.Fprintf(&g, " %s=%v", s.Name, s.At.Round(time.Millisecond))
		}
		fmt.Fprintf(os.Stderr, "tvix boot: prepare=%v initramfs=%dB; guest uptime at:%s; poweroff=%v; qemu-cpu=%v\n",
			res.Prepare.Round(time.Millisecond), res.InitramfsBytes, g.String(), res.Poweroff.Round(time.Millisecond), res.QEMUCPU.Round(time.Millisecond))
		for i, d := range disks {
			st := d.Stats()
			fmt.Fprintf(os.Stderr, "tvix boot: disk %d %s: guest read %d bytes; fetched %d of %d chunks, %d of %d bytes\n",
				i, d.Digest(), st.BytesRead, st.ChunksFetched, st.Chunks, st.BytesFetched, st.Size)
		}
	}
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return cli.Exit("", res.ExitCode)
	}
	return nil
}

// treeFromFlags serves --dir, or else the store the service flags name
// (substituting lazily with --substituters), as the FUSE mount does.
func treeFromFlags(c *cli.Context) (fuse.RawFileSystem, func(), error) {
	dir := c.String("dir")
	if dir == "" {
		s, err := openServices(c.Context, c)
		if err != nil {
			return nil, nil, err
		}
		opts := tvixfs.Options{ListRoot: c.Bool("list-root") || c.Bool("find"), Timeout: tvixfs.DefaultTimeout}
		return tvixfs.NewRawFileSystem(c.Context, daemon.StoreTree(s), opts), func() { s.Close() }, nil
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, nil, fmt.Errorf("--dir %s: not a directory (%v)", dir, err)
	}
	root, err := fs.NewLoopbackRoot(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("serve %s: %w", dir, err)
	}
	return fs.NewNodeFS(root, &fs.Options{}), func() {}, nil
}

// checkClosure says on the host what the guest would otherwise only fail
// to find: the paths of root's closure the store lacks. With substituters
// the root is fetched (the guest reads it first anyway) and the rest is
// left to be substituted as the guest reads it.
func checkClosure(ctx context.Context, s *registry.Services, root storepath.StorePath) error {
	infos, where := s.PathInfos, "the store lacks"
	if comp, ok := s.PathInfos.(*nixcache.Composite); ok && len(comp.Substituters) > 0 {
		if _, err := s.PathInfos.Get(ctx, root.Digest); err != nil && !errors.Is(err, pathinfo.ErrNotFound) {
			return fmt.Errorf("substitute %s: %w", root, err)
		}
		infos, where = comp.Local, "the store and its --substituters lack"
	}
	missing, err := closure.Missing(ctx, infos, root)
	if err != nil {
		return err
	}
	if len(missing) == 0 || infos != s.PathInfos && !slices.Contains(missing, root) {
		return nil // with the root there, the guest substitutes the rest as it reads
	}
	var names []string
	for _, m := range missing {
		names = append(names, m.String())
	}
	return fmt.Errorf("%s %s of the closure of %s, which --run needs: %s; "+
		"copy them in (tvix store copy --from CACHE %s) or boot with --substituters", where, count(len(missing), "path"), root, strings.Join(names, " "), root)
}
