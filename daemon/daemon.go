package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tvix-go/tvix/boot"
	"github.com/tvix-go/tvix/build"
	"github.com/tvix-go/tvix/build/buildv1"
	"github.com/tvix-go/tvix/build/microvm"
	"github.com/tvix-go/tvix/build/sandbox"
	"github.com/tvix-go/tvix/castore/castoregrpc"
	tvixfs "github.com/tvix-go/tvix/castore/fs"
	"github.com/tvix-go/tvix/internal/netlisten"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/store/gc"
	"github.com/tvix-go/tvix/store/narbridge"
	"github.com/tvix-go/tvix/store/narcastore"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/registry"
	"github.com/tvix-go/tvix/store/storefs"
	"github.com/tvix-go/tvix/virtiofs"
)

// ErrNothingToServe is returned by Start for a Config that serves nothing.
var ErrNothingToServe = errors.New("daemon: nothing to serve; give --listen (or --mount, --http-listen, --virtiofs, --eval-listen)")

// Daemon is a started daemon.
type Daemon struct {
	// Services are the store's services, open until Wait returns.
	Services *registry.Services
	// GC collects the store's garbage (nil without a path-info service);
	// its Roots hold the temporary roots of sessions.
	GC *gc.Collector

	g    *errgroup.Group
	stop context.CancelFunc
	// limits and maxNarinfo are Config.Limits resolved.
	limits     narcastore.Limits
	maxNarinfo int64
	mu         sync.Mutex
	bound      map[string][]net.Addr
}

// Run starts the daemon and serves until ctx ends or a server fails.
func Run(ctx context.Context, cfg Config) error {
	d, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	return d.Wait()
}

// Start opens the services and starts every server the Config asks for;
// a listener that cannot be bound fails Start, before anything serves.
func Start(ctx context.Context, cfg Config) (_ *Daemon, err error) {
	if !cfg.serves() {
		return nil, ErrNothingToServe
	}
	limits, maxNarinfo, err := cfg.Limits.resolve()
	if err != nil {
		return nil, err
	}
	reg := cfg.Registry
	if reg == nil {
		reg = registry.Default()
	}
	s, err := openStore(ctx, reg, cfg)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(ctx)
	d := &Daemon{Services: s, g: g, stop: stop, bound: map[string][]net.Addr{}, limits: limits, maxNarinfo: maxNarinfo}
	defer func() {
		if err != nil {
			stop()
			g.Wait()
			d.close()
		}
	}()
	starters := []func(context.Context, Config) error{d.startGC, d.startGRPC, d.startBuild, d.startNixDaemon, d.startHTTP, d.startEval, d.startMount, d.startVirtioFS}
	for _, start := range starters {
		if err := start(gctx, cfg); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// openStore opens the services the composition file or else the
// addresses name.
func openStore(ctx context.Context, reg *registry.Registry, cfg Config) (*registry.Services, error) {
	if cfg.StoreConfig == "" {
		return reg.Open(ctx, cfg.Store, cfg.Substitution, cfg.Substituters...)
	}
	c, err := registry.ParseComposition(cfg.StoreConfig)
	if err != nil {
		return nil, err
	}
	return reg.OpenComposition(ctx, c, cfg.Substitution, cfg.Substituters...)
}

// Wait serves until the daemon's context ends or a server fails, then
// stops every server, lets in-flight requests finish and closes the
// services. A stop by the context is not an error.
func (d *Daemon) Wait() error {
	err := d.g.Wait()
	d.stop()
	d.close()
	if errors.Is(err, context.Canceled) || errors.Is(err, grpc.ErrServerStopped) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Stop asks the daemon to stop; Wait reports when it has.
func (d *Daemon) Stop() { d.stop() }

// Addrs lists what a server bound ("grpc", "http", "eval"): useful with
// port 0.
func (d *Daemon) Addrs(server string) []net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]net.Addr(nil), d.bound[server]...)
}

func (d *Daemon) record(server string, a net.Addr) {
	d.mu.Lock()
	d.bound[server] = append(d.bound[server], a)
	d.mu.Unlock()
}

func (d *Daemon) close() {
	if err := d.Services.Close(); err != nil {
		slog.Warn("closing the store", "err", err)
	}
}

// listenOn binds addr (a unix socket is removed again when its listener
// closes, and given to group); Accept backs off instead of failing when
// file descriptors run out, so a daemon under load keeps serving.
func (d *Daemon) listenOn(ctx context.Context, addr, group string) (net.Listener, error) {
	addr, err := LocalDefault(addr)
	if err != nil {
		return nil, err
	}
	lis, err := netlisten.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	if ua, ok := lis.Addr().(*net.UnixAddr); ok && group != "" {
		gid, err := lookupGroup(group)
		if err == nil {
			err = os.Chown(ua.Name, -1, gid)
		}
		if err != nil {
			lis.Close()
			return nil, fmt.Errorf("listen on %s: socket group %q: %w", addr, group, err)
		}
	}
	return lis, nil
}

func lookupGroup(name string) (int, error) {
	if gid, err := strconv.Atoi(name); err == nil {
		return gid, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// LocalDefault gives a TCP listen address without a host (":9000",
// "tcp://:9000") the host 127.0.0.1. Go would bind every interface, and
// every server here hands out (or takes) the store: exposing it to the
// network must be asked for by naming an address.
func LocalDefault(addr string) (string, error) {
	network, where, err := netlisten.Parse(addr)
	if err != nil || network != "tcp" {
		return addr, err
	}
	host, port, err := net.SplitHostPort(where)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host != "" {
		return addr, nil
	}
	return "tcp://" + net.JoinHostPort("127.0.0.1", port), nil
}

// isLocal says whether only this machine can connect to addr: a unix
// socket, or TCP on a loopback address.
func isLocal(addr string) bool {
	network, where, err := netlisten.Parse(addr)
	if err != nil {
		return false
	}
	if network == "unix" {
		return true
	}
	host, _, err := net.SplitHostPort(where)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (d *Daemon) startGRPC(ctx context.Context, cfg Config) error {
	if len(cfg.GRPC) == 0 {
		return nil
	}
	return d.serveGRPC(ctx, "grpc", "--listen", cfg.GRPC, cfg.SocketGroup, func(srv *grpc.Server) { d.registerGCAdmin(srv, cfg.GRPC) })
}

func (d *Daemon) startBuild(ctx context.Context, cfg Config) error {
	if len(cfg.Build.Listen) == 0 {
		return nil
	}
	b, err := LocalBuilder(cfg.Build.Backend, d.Services, cfg.Build)
	if err != nil {
		return err
	}
	b = build.Limit(&fetchReporting{b: b, s: d.Services}, max(cfg.Build.Jobs, 1))
	return d.serveGRPC(ctx, "build", "--build-listen", cfg.Build.Listen, cfg.SocketGroup, func(srv *grpc.Server) { build.RegisterServer(srv, b) })
}

// fetchReporting tells each build's log how many bytes of inputs the
// daemon read from its upstreams meanwhile: what a builder with its store
// elsewhere transferred (concurrent builds share the count).
type fetchReporting struct {
	b build.Builder
	s *registry.Services
}

func (f *fetchReporting) Build(ctx context.Context, req *buildv1.BuildRequest, log io.Writer) (*buildv1.Build, error) {
	before := f.s.ReceivedBytes()
	res, err := f.b.Build(ctx, req, log)
	if len(f.s.Upstreams) > 0 && log != nil {
		fetched := f.s.ReceivedBytes() - before
		fmt.Fprintf(log, "tvix builder: fetched %d bytes of inputs from upstream\n", fetched)
		slog.Info("build inputs fetched", "outputs", req.GetOutputs(), "bytes", fetched)
	}
	return res, err
}

// LocalBuilder is the build backend a name selects, over s's castore.
func LocalBuilder(backend string, s *registry.Services, cfg BuildConfig) (build.Builder, error) {
	switch backend {
	case "", "sandbox":
		return &sandbox.Sandbox{Blobs: s.Blobs, Dirs: s.Directories, Timeout: cfg.Timeout, MaxSilentTime: cfg.MaxSilentTime}, nil
	case "microvm":
		mem := cfg.VMMemoryMB
		if mem == 0 {
			mem = 512
		}
		return &microvm.MicroVM{Blobs: s.Blobs, Dirs: s.Directories, Timeout: cfg.Timeout,
			Boot: boot.Config{MemoryMB: mem, Init: cfg.VMInit, SelfCanBeInit: true}}, nil
	}
	return nil, fmt.Errorf("build backend %q: want sandbox or microvm", backend)
}

// serveGRPC serves the store's services (and what extra registers) on
// addrs.
func (d *Daemon) serveGRPC(ctx context.Context, server, flag string, addrs []string, socketGroup string, extra func(*grpc.Server)) error {
	s := d.Services
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(registry.MaxMessageSize), grpc.MaxSendMsgSize(registry.MaxMessageSize),
		grpc.ChainUnaryInterceptor(logUploads))
	castoregrpc.Register(srv, s.Blobs, s.Directories, castoregrpc.WithLimits(d.limits.Limits))
	pathinfo.RegisterServer(srv, s.PathInfos, narcastore.NewCalculator(s.Blobs, s.Directories))
	if extra != nil {
		extra(srv)
	}
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	for _, a := range addrs {
		lis, err := d.listenOn(ctx, a, socketGroup)
		if err != nil {
			srv.Stop()
			return fmt.Errorf("%s: %w", flag, err)
		}
		d.record(server, lis.Addr())
		slog.Info("serving gRPC", "server", server, "addr", a, "bound", lis.Addr().String())
		d.g.Go(func() error { return srv.Serve(lis) })
	}
	d.g.Go(func() error {
		<-ctx.Done()
		slog.Info("shutting down")
		hs.Shutdown()
		// In-flight calls finish; new ones are refused.
		srv.GracefulStop()
		return nil
	})
	return nil
}

func (d *Daemon) startHTTP(ctx context.Context, cfg Config) error {
	if cfg.HTTP.Listen == "" {
		return nil
	}
	h, err := newNarBridge(d.Services, cfg.HTTP, d.limits, d.maxNarinfo)
	if err != nil {
		return err
	}
	addr := cfg.HTTP.Listen
	if !strings.Contains(addr, "://") {
		addr = "tcp://" + addr
	}
	addr, err = LocalDefault(addr)
	if err != nil {
		return fmt.Errorf("nar-bridge: %w", err)
	}
	if cfg.HTTP.AllowAnonymousUploads && !cfg.HTTP.ReadOnly && !isLocal(addr) {
		return fmt.Errorf("nar-bridge: --http-allow-anonymous-uploads on %s: anyone who can reach that address could write to the store; listen on loopback or a unix socket, or use --http-upload-auth-file", cfg.HTTP.Listen)
	}
	lis, err := d.listenOn(ctx, addr, cfg.SocketGroup)
	if err != nil {
		return fmt.Errorf("nar-bridge: %w", err)
	}
	d.record("http", lis.Addr())
	slog.Info("serving Nix binary cache", "addr", cfg.HTTP.Listen, "bound", lis.Addr().String(), "chunk_cache_mib", h.ChunkCache()>>20)
	d.g.Go(serveHTTP(ctx, "nar-bridge", lis, h))
	return nil
}

// newNarBridge makes the binary cache handler for s.
func newNarBridge(s *registry.Services, cfg HTTPConfig, lim narcastore.Limits, maxNarinfo int64) (*narbridge.Handler, error) {
	opts := narbridge.Options{Priority: cfg.Priority, ReadOnly: cfg.ReadOnly, AllowAnonymousUploads: cfg.AllowAnonymousUploads,
		Limits: lim, MaxNarinfoSize: maxNarinfo, ChunkCache: cfg.ChunkCache}
	if f := cfg.UploadAuthFile; f != "" {
		c, err := narbridge.LoadCredentials(f)
		if err != nil {
			return nil, fmt.Errorf("--http-upload-auth-file: %w", err)
		}
		opts.UploadCredentials = c
	}
	if opts.Priority == 0 {
		opts.Priority = 39
	}
	if f := cfg.SigningKeyFile; f != "" {
		k, err := readSigningKey(f)
		if err != nil {
			return nil, err
		}
		opts.SigningKey = &k
	}
	return narbridge.New(s.Blobs, s.Directories, s.PathInfos, opts), nil
}

// readSigningKey reads a Nix secret key file.
func readSigningKey(f string) (narinfo.SecretKey, error) {
	b, err := os.ReadFile(f)
	if err != nil {
		return narinfo.SecretKey{}, fmt.Errorf("--signing-key-file: %w", err)
	}
	k, err := narinfo.ParseSecretKey(string(b))
	if err != nil {
		return narinfo.SecretKey{}, fmt.Errorf("--signing-key-file %s: %w", f, err)
	}
	return k, nil
}

// serveHTTP serves h on lis until ctx ends, then lets requests finish (an
// evaluation cannot be interrupted) for up to 10 s.
func serveHTTP(ctx context.Context, what string, lis net.Listener, h http.Handler) func() error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, Protocols: new(http.Protocols)}
	// HTTP/2 for clients that open with it (h2c prior knowledge: curl
	// --http2-prior-knowledge, Go's transport); HTTP/1.1 for the rest,
	// Nix among them.
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	return func() error {
		done := make(chan struct{})
		go func() {
			defer close(done)
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		err := srv.Serve(lis)
		if errors.Is(err, http.ErrServerClosed) {
			<-done
			return nil
		}
		return fmt.Errorf("%s: %w", what, err)
	}
}

func (d *Daemon) startEval(ctx context.Context, cfg Config) error {
	if cfg.Eval.Listen == "" {
		return nil
	}
	jobs := cfg.Eval.Jobs
	if jobs == 0 {
		jobs = 1
	}
	if jobs < 1 {
		return fmt.Errorf("--eval-jobs %d: want at least 1", jobs)
	}
	lis, err := d.listenOn(ctx, cfg.Eval.Listen, cfg.SocketGroup)
	if err != nil {
		return fmt.Errorf("--eval-listen: %w", err)
	}
	d.record("eval", lis.Addr())
	slog.Info("serving /eval", "addr", cfg.Eval.Listen, "bound", lis.Addr().String())
	d.g.Go(serveHTTP(ctx, "eval endpoint", lis, newEvalHandler(d.Services, jobs)))
	return nil
}

// StoreTree is the read-only store tree every transport serves: the FUSE
// mount, virtio-fs for VMs, boot's in-process server.
func StoreTree(s *registry.Services) tvixfs.Services {
	return tvixfs.Services{Blobs: s.Blobs, Directories: s.Directories, Roots: storefs.New(s.PathInfos, nil)}
}

func (d *Daemon) startMount(ctx context.Context, cfg Config) error {
	if cfg.Mount.Path == "" {
		return nil
	}
	m, err := tvixfs.Mount(ctx, cfg.Mount.Path, StoreTree(d.Services), tvixfs.Options{
		ListRoot:      cfg.Mount.ListRoot,
		AllowOther:    cfg.Mount.AllowOther,
		AllowNonEmpty: cfg.Mount.AllowNonEmpty,
		Timeout:       tvixfs.DefaultTimeout,
	})
	if err != nil {
		return err
	}
	d.g.Go(func() error {
		<-ctx.Done()
		m.Wait()
		return nil
	})
	return nil
}

func (d *Daemon) startVirtioFS(ctx context.Context, cfg Config) error {
	if cfg.VirtioFS.Socket == "" {
		return nil
	}
	opts := tvixfs.Options{ListRoot: cfg.VirtioFS.ListRoot, Timeout: tvixfs.DefaultTimeout}
	raw := tvixfs.NewRawFileSystem(ctx, StoreTree(d.Services), opts)
	l, err := virtiofs.Listen(cfg.VirtioFS.Socket)
	if err != nil {
		return err
	}
	d.g.Go(func() error { return virtiofs.ServeListener(ctx, l, raw, virtiofs.Options{}) })
	return nil
}
