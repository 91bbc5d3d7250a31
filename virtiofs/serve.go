// Package virtiofs serves a go-fuse file system to virtual machines as a
// vhost-user virtio-fs device: the VMM (QEMU, cloud-hypervisor) connects to
// a unix socket, shares guest memory and the virtqueues, and the guest's
// FUSE requests are answered by fuse.ProtocolServer straight from and into
// guest memory.
package virtiofs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tvix-go/tvix/internal/fuselog"
	"github.com/tvix-go/tvix/internal/netlisten"
)

// Options tune the device. The zero value is usable.
type Options struct {
	// MountOptions are passed to fuse.NewProtocolServer (timeouts live in
	// the file system's own options; Debug logs every FUSE request).
	MountOptions fuse.MountOptions
	// RequestQueues is the number of request queues offered besides the
	// high-priority one; the VMM may use fewer (QEMU: num-request-queues).
	// Default 1.
	RequestQueues int
	// Workers bounds the FUSE requests served at once per connection.
	// Default 2×GOMAXPROCS, at least 4.
	Workers int
	// Logger receives connection events; default slog.Default().
	Logger *slog.Logger
}

func (o *Options) withDefaults() Options {
	r := *o
	if r.RequestQueues <= 0 {
		r.RequestQueues = 1
	}
	if r.Workers <= 0 {
		r.Workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	return r
}

// Listen creates the vhost-user socket (see netlisten.Unix: a stale
// socket is replaced, a live one or anything that is not a socket is
// refused).
func Listen(socketPath string) (*net.UnixListener, error) {
	return netlisten.Unix(context.Background(), socketPath)
}

// Serve listens on socketPath and serves rawFS to every VMM that connects,
// until ctx is cancelled; then it closes the connections, removes the
// socket and returns nil.
func Serve(ctx context.Context, socketPath string, rawFS fuse.RawFileSystem, opts Options) error {
	l, err := Listen(socketPath)
	if err != nil {
		return err
	}
	return ServeListener(ctx, l, rawFS, opts)
}

// ServeListener is Serve on a listener from Listen. The listener (and its
// socket file) is closed on return.
func ServeListener(ctx context.Context, l *net.UnixListener, rawFS fuse.RawFileSystem, opts Options) error {
	o := opts.withDefaults()
	l.SetUnlinkOnClose(true)
	// Closing acc, not l, so that an Accept waiting out EMFILE ends at once.
	acc := netlisten.Retry(l, netlisten.Logger(o.Logger))
	var (
		mu    sync.Mutex
		conns = map[*net.UnixConn]struct{}{}
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() {
		acc.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	defer wg.Wait()
	defer acc.Close()
	for {
		c, err := acc.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accept on %s: %w", l.Addr(), err)
		}
		conn := c.(*net.UnixConn) // a UnixListener's
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			conn.Close()
			return nil
		}
		conns[conn] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, conn)
				mu.Unlock()
				conn.Close()
			}()
			serveConn(conn, rawFS, o)
		}()
	}
}

// serveConn serves one VMM. Each connection gets its own ProtocolServer:
// FUSE INIT state belongs to one guest.
func serveConn(conn *net.UnixConn, rawFS fuse.RawFileSystem, o Options) {
	mo := o.MountOptions
	mo.DisableSplice = true
	if mo.Logger == nil {
		mo.Logger = fuselog.New(o.Logger, slog.LevelDebug)
	}
	ps := fuse.NewProtocolServer(rawFS, &mo)
	dev := newDevice(o.Logger, 1+o.RequestQueues, o.Workers, func(in, out [][]byte) int {
		n, _ := ps.HandleRequest(in, out)
		return n
	})
	o.Logger.Debug("virtiofs: VMM connected")
	if err := dev.serve(conn); err != nil {
		o.Logger.Warn("virtiofs: connection ended", "err", err)
		return
	}
	o.Logger.Debug("virtiofs: VMM disconnected")
}
