package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/tvix-go/tvix/build"
	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/glue"
	"github.com/tvix-go/tvix/nix/derivation"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/nix/workerproto"
	"github.com/tvix-go/tvix/store/gc"
	"github.com/tvix-go/tvix/store/nixcache"
	"github.com/tvix-go/tvix/store/nixdaemon"
	"github.com/tvix-go/tvix/store/registry"
)

// NixDaemonConfig serves Nix's daemon protocol: unmodified Nix clients use
// the store (--store unix:///path) and build with the daemon's builder
// (Build's backend and limits).
type NixDaemonConfig struct {
	// Listen lists unix:///path sockets (tcp:// works too, but Nix
	// clients only speak to sockets and stdio).
	Listen []string
	// TrustedUsers and AllowedUsers are Nix's trusted-users (default
	// root) and allowed-users (default everyone): names, @group, *.
	TrustedUsers, AllowedUsers []string
	// SigningKeyFile, if set, signs the path infos clients are sent (as
	// Nix's secret-key-files signs what it builds).
	SigningKeyFile string
	// NoRequireSigs turns off Nix's require-sigs for paths clients add.
	NoRequireSigs bool
	// Roots, if set, serves the garbage-collector operations.
	Roots nixdaemon.Roots
}

// NewNixDaemon is the Nix daemon protocol server over s; builds run with
// the backend bcfg names.
func NewNixDaemon(s *registry.Services, cfg NixDaemonConfig, bcfg BuildConfig, sub registry.Substitution, limits Limits) (*nixdaemon.Server, error) {
	lim, _, err := limits.resolve()
	if err != nil {
		return nil, err
	}
	b, err := LocalBuilder(bcfg.Backend, s, bcfg)
	if err != nil {
		return nil, err
	}
	var trustedKeys []narinfo.PublicKey
	for _, k := range sub.TrustedPublicKeys {
		pk, err := narinfo.ParsePublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("trusted public key %q: %w", k, err)
		}
		trustedKeys = append(trustedKeys, pk)
	}
	st := nixdaemon.Store{
		Blobs: s.Blobs, Dirs: s.Directories, PathInfos: s.PathInfos,
		Builder:     &realiserBuilder{s: s, builder: build.Limit(b, max(bcfg.Jobs, 1)), jobs: max(bcfg.Jobs, 1)},
		TrustedKeys: trustedKeys, RequireSigs: !cfg.NoRequireSigs, Roots: cfg.Roots, Limits: lim,
	}
	// Validity queries must not substitute; what substitutes is the
	// composite in front of the store.
	if c, ok := castore.As[*nixcache.Composite](s.PathInfos); ok {
		st.PathInfos, st.Substituting = c.Local, s.PathInfos
	}
	if cfg.SigningKeyFile != "" {
		k, err := readSigningKey(cfg.SigningKeyFile)
		if err != nil {
			return nil, err
		}
		st.SigningKey = &k
	}
	srv := &nixdaemon.Server{Store: st, NixVersion: "tvix-go"}
	trusted := nixdaemon.Users(cfg.TrustedUsers)
	if len(trusted) == 0 {
		trusted = nixdaemon.Users{"root"}
	}
	srv.Trusted = trusted.Match
	if len(cfg.AllowedUsers) > 0 {
		srv.Allowed = nixdaemon.Users(cfg.AllowedUsers).Match
	}
	return srv, nil
}

func (d *Daemon) startNixDaemon(ctx context.Context, cfg Config) error {
	if len(cfg.NixDaemon.Listen) == 0 {
		return nil
	}
	ncfg := cfg.NixDaemon
	if ncfg.Roots == nil && d.GC != nil {
		ncfg.Roots = NixRoots(d.GC)
	}
	srv, err := NewNixDaemon(d.Services, ncfg, cfg.Build, cfg.Substitution, cfg.Limits)
	if err != nil {
		return err
	}
	for _, addr := range cfg.NixDaemon.Listen {
		lis, err := d.listenOn(ctx, addr, cfg.SocketGroup)
		if err != nil {
			return fmt.Errorf("--nix-daemon-listen: %w", err)
		}
		d.record("nix-daemon", lis.Addr())
		d.g.Go(func() error { return srv.Serve(ctx, lis) })
	}
	return nil
}

// realiserBuilder builds for Nix clients with the glue Realiser: the
// daemon's limit on concurrent builds applies to all clients together.
type realiserBuilder struct {
	s       *registry.Services
	builder build.Builder
	jobs    int
}

func (rb *realiserBuilder) realiser(opts nixdaemon.BuildOptions, ev nixdaemon.BuildEvents) *glue.Realiser {
	var mu sync.Mutex
	logs := map[string]io.Writer{}
	return &glue.Realiser{
		Blobs: rb.s.Blobs, Dirs: rb.s.Directories, PathInfos: rb.s.PathInfos, Builder: rb.builder,
		Jobs: rb.jobs, Cores: opts.Cores, Timeout: opts.Timeout, MaxSilentTime: opts.MaxSilentTime,
		StopAtFirstFailure: !opts.KeepGoing,
		Started: func(p string) {
			w := ev.Started(p)
			mu.Lock()
			logs[p] = w
			mu.Unlock()
		},
		Log: func(p string) io.Writer {
			mu.Lock()
			defer mu.Unlock()
			return logs[p]
		},
		Finished: func(p string, err error) {
			var f *build.Failure
			ev.Finished(p, err, errors.As(err, &f) && f.TimedOut)
		},
	}
}

func (rb *realiserBuilder) Realise(ctx context.Context, drvPaths []string, opts nixdaemon.BuildOptions, ev nixdaemon.BuildEvents) error {
	_, err := rb.realiser(opts, ev).Realise(ctx, drvPaths)
	return err
}

func (rb *realiserBuilder) BuildDerivation(ctx context.Context, drvPath string, drv *derivation.Derivation, opts nixdaemon.BuildOptions, ev nixdaemon.BuildEvents) error {
	_, err := rb.realiser(opts, ev).RealiseDerivation(ctx, drvPath, drv)
	return err
}

// NewStdioNixDaemon is NewNixDaemon for one client on stdio, with its own
// garbage collector over s whose indirect roots are kept in rootsDir.
func NewStdioNixDaemon(s *registry.Services, cfg NixDaemonConfig, bcfg BuildConfig, sub registry.Substitution, rootsDir string) (*nixdaemon.Server, error) {
	cfg.Roots = NixRoots(&gc.Collector{Blobs: s.Blobs, Dirs: s.Directories, PathInfos: s.PathInfos, Roots: gc.NewRoots(rootsDir)})
	return NewNixDaemon(s, cfg, bcfg, sub, Limits{})
}

// NixRoots serves the Nix daemon protocol's gc operations with c: roots
// are the gcroots directory's and the clients' temporary roots, and a
// collection keeps only their closures, as Nix's collector does.
func NixRoots(c *gc.Collector) nixdaemon.Roots { return nixRoots{c} }

type nixRoots struct{ c *gc.Collector }

type nixSession struct{ s *gc.Session }

func (r nixRoots) Session() nixdaemon.RootSession { return nixSession{r.c.Roots.NewSession()} }

func (s nixSession) AddTempRoot(_ context.Context, p storepath.StorePath) error {
	return s.s.AddTempRoot(p)
}

func (s nixSession) Close() error {
	s.s.Release()
	return nil
}

func (r nixRoots) AddIndirectRoot(_ context.Context, link string) error {
	return r.c.Roots.AddIndirectRoot(link)
}

func (r nixRoots) FindRoots(ctx context.Context) (map[string]storepath.StorePath, error) {
	roots, err := r.c.Roots.FindRoots(ctx)
	if err != nil {
		return nil, err
	}
	temp, _ := r.c.Roots.TempRoots()
	for i, p := range temp {
		roots[fmt.Sprintf("{temp:%d}", i)] = p
	}
	return roots, nil
}

func (r nixRoots) Collect(ctx context.Context, req nixdaemon.GCRequest) (nixdaemon.GCResult, error) {
	opts := gc.Options{GCRoots: true, MaxFreed: req.MaxFreed}
	switch req.Action {
	case uint64(workerproto.GCReturnLive), uint64(workerproto.GCReturnDead):
		opts.DryRun = true
	case uint64(workerproto.GCDeleteSpecific):
		opts.Delete = req.Paths
	}
	rep, err := r.c.Collect(ctx, opts)
	if err != nil {
		return nixdaemon.GCResult{}, err
	}
	res := nixdaemon.GCResult{Paths: rep.Deleted, BytesFreed: uint64(rep.Castore.BytesFreed)}
	if req.Action == uint64(workerproto.GCReturnLive) {
		res.Paths = rep.Live
	}
	return res, nil
}
