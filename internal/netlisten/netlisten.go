// Package netlisten is how every server in the module opens its listening
// socket: one parser for the addresses users give (unix:///path,
// tcp://host:port, host:port), one careful way to put a unix socket on a
// path, and a listener whose Accept survives running out of file
// descriptors.
//
// Running out of descriptors is the case that matters: Accept then fails
// with EMFILE while the connection stays queued, and a server loop that
// returns on an Accept error stops serving for good, though a moment later
// (when some other connection closes) it could have carried on. net/http
// backs off and retries; so does every listener from here.
package netlisten

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultMode is the permission of a unix socket: connecting needs write
// permission, so this lets the owner and its group in and nobody else.
const DefaultMode os.FileMode = 0o660

// Backoff bounds, as in net/http's Server.Serve.
const (
	minDelay = 5 * time.Millisecond
	maxDelay = time.Second
)

// liveProbeTimeout bounds the connection attempt that tells a live socket
// from a stale one; a server too busy to accept within it is live.
const liveProbeTimeout = time.Second

type options struct {
	mode   os.FileMode
	logger *slog.Logger
}

// An Option adjusts Listen, Unix or Retry.
type Option func(*options)

// Mode sets the permissions of a unix socket (default DefaultMode).
func Mode(m os.FileMode) Option { return func(o *options) { o.mode = m.Perm() } }

// Logger receives the warnings about Accept retries (default
// slog.Default()).
func Logger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func apply(opts []Option) options {
	o := options{mode: DefaultMode, logger: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Listen listens on addr, which is unix:///absolute/path, tcp://host:port,
// or host:port (TCP, the form HTTP servers take). The listener's Accept
// retries temporary errors (see Retry); for a unix socket see Unix. ctx
// bounds setting up only, not the listener's life.
func Listen(ctx context.Context, addr string, opts ...Option) (net.Listener, error) {
	network, where, err := Parse(addr)
	if err != nil {
		return nil, err
	}
	var l net.Listener
	if network == "unix" {
		ul, err := Unix(ctx, where, opts...)
		if err != nil {
			return nil, err
		}
		l = ul
	} else {
		var lc net.ListenConfig
		if l, err = lc.Listen(ctx, "tcp", where); err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
	}
	return Retry(l, opts...), nil
}

// Parse splits a listen address into the network ("unix" or "tcp") and
// the socket path or host:port.
func Parse(addr string) (network, where string, err error) {
	scheme, _, isURL := strings.Cut(addr, "://")
	if !isURL {
		if strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "tcp:") {
			return "", "", fmt.Errorf("listen address %q: want unix:///absolute/path.sock or tcp://host:port", addr)
		}
		if addr == "" {
			return "", "", errors.New("listen address is empty: want unix:///absolute/path.sock, tcp://host:port or host:port")
		}
		return "tcp", addr, nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	switch scheme {
	case "unix":
		// unix://relative/x.sock would parse as host "relative"; taking
		// only the path would listen somewhere the user did not ask.
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return "", "", fmt.Errorf("listen address %q: want unix:///absolute/path.sock (three slashes)", addr)
		}
		return "unix", filepath.Clean(u.Path), nil
	case "tcp":
		if u.Host == "" || (u.Path != "" && u.Path != "/") {
			return "", "", fmt.Errorf("listen address %q: want tcp://host:port", addr)
		}
		return "tcp", u.Host, nil
	}
	return "", "", fmt.Errorf("listen address %q: unknown scheme %q, want unix:// or tcp://", addr, scheme)
}

// Unix creates a unix socket at path with the Mode permissions, creating
// missing parent directories (0o755). What is already at path decides:
//
//   - nothing: the socket is created;
//   - a socket nobody accepts on (left by a server that died): it is
//     replaced;
//   - a socket a server accepts on: an error, it is not ours to take;
//   - anything else (a file, a directory, a symlink): an error naming it,
//     and it is left alone, since a mistyped flag must not delete data.
//
// The listener removes the socket when closed. Its Accept does not retry:
// it is for callers that need a *net.UnixListener (to pass descriptors);
// wrap it with Retry where a net.Listener will do.
func Unix(ctx context.Context, path string, opts ...Option) (*net.UnixListener, error) {
	o := apply(opts)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := clearStale(ctx, path); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	// bind(2) applies the umask, which says nothing about who should
	// connect; until this chmod the umask's permissions apply.
	if err := os.Chmod(path, o.mode); err != nil {
		ul.Close()
		return nil, fmt.Errorf("listen on %s: set permissions: %w", path, err)
	}
	return ul, nil
}

// clearStale removes a socket at path that nobody accepts on, and refuses
// anything else that is there.
func clearStale(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("listen on %s: a %s is there, not a socket; remove it or choose another path", path, describe(fi.Mode()))
	}
	d := net.Dialer{Timeout: liveProbeTimeout}
	c, err := d.DialContext(ctx, "unix", path)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("listen on %s: another process is accepting connections on this socket", path)
	case errors.Is(err, syscall.ENOENT):
		// Its server removed it meanwhile.
		return nil
	case !errors.Is(err, syscall.ECONNREFUSED):
		// Refused is the only answer that proves nobody listens; a socket
		// we may not connect to may well be live.
		return fmt.Errorf("listen on %s: cannot tell whether the socket there is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listen on %s: remove stale socket: %w", path, err)
	}
	return nil
}

func describe(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeDevice != 0:
		return "device"
	}
	return "file of mode " + m.String()
}

// Retry returns l with an Accept that, on a Temporary error (EMFILE,
// ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, ...), logs it, waits (5 ms,
// doubling to 1 s, reset by a success) and tries again instead of
// returning it. Close ends a wait at once; Accept then returns an error
// matching net.ErrClosed.
func Retry(l net.Listener, opts ...Option) net.Listener {
	if r, ok := l.(*retrying); ok {
		return r
	}
	return &retrying{Listener: l, log: apply(opts).logger, closed: make(chan struct{})}
}

type retrying struct {
	net.Listener
	log       *slog.Logger
	closed    chan struct{}
	closeOnce sync.Once
}

func (r *retrying) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := r.Listener.Accept()
		if err == nil || !Temporary(err) {
			return c, err
		}
		delay = nextDelay(delay)
		r.log.Warn("accept failed, retrying", "addr", r.Addr().String(), "err", err, "delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.closed:
			t.Stop()
			return nil, &net.OpError{Op: "accept", Net: r.Addr().Network(), Addr: r.Addr(), Err: net.ErrClosed}
		}
	}
}

func (r *retrying) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	return r.Listener.Close()
}

func nextDelay(d time.Duration) time.Duration {
	if d == 0 {
		return minDelay
	}
	return min(2*d, maxDelay)
}

// Temporary reports whether an Accept error may go away by itself: the
// process or system is out of descriptors or memory, or (accept(2), Linux)
// the connection at the head of the queue failed, which says nothing about
// the next one. A deadline the caller set (os.ErrDeadlineExceeded) is not
// temporary: retrying would defeat it.
func Temporary(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		return false
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EINTR,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO,
		syscall.ENETDOWN, syscall.ENOPROTOOPT, syscall.EHOSTDOWN, syscall.ENONET,
		syscall.EHOSTUNREACH, syscall.EOPNOTSUPP, syscall.ENETUNREACH:
		return true
	}
	return false
}
