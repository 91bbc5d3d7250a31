package netlisten

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		addr, network, where string
	}{
		{"unix:///run/tvix/d.sock", "unix", "/run/tvix/d.sock"},
		{"unix:///run//tvix/../d.sock", "unix", "/run/d.sock"},
		{"tcp://127.0.0.1:8000", "tcp", "127.0.0.1:8000"},
		{"tcp://[::1]:8000/", "tcp", "[::1]:8000"},
		{"localhost:9000", "tcp", "localhost:9000"},
		{":9000", "tcp", ":9000"},
	} {
		network, where, err := Parse(tc.addr)
		if err != nil || network != tc.network || where != tc.where {
			t.Errorf("Parse(%q) = %q, %q, %v; want %q, %q", tc.addr, network, where, err, tc.network, tc.where)
		}
	}
	for _, bad := range []string{"", "unix://relative/d.sock", "unix:/abs.sock", "unix://", "tcp://", "tcp://h:1/path", "tcp:8000", "http://h:1"} {
		if n, w, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %q, %q, want an error", bad, n, w)
		}
	}
}

// staleSocket leaves a socket file with nobody accepting on it, as a
// server that died does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
}

// echo checks that l serves: the probe Listen makes of a live socket is a
// connection too, so it serves until l is closed, not just once.
func echo(t *testing.T, l net.Listener, addr string) {
	t.Helper()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	network, where, _ := Parse(addr)
	c, err := net.Dial(network, where)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("echo = %q, %v", buf, err)
	}
}

func TestListenUnix(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	t.Run("parents created, default mode", func(t *testing.T) {
		sock := filepath.Join(dir, "a", "b", "d.sock")
		l, err := Listen(ctx, "unix://"+sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		fi, err := os.Lstat(sock)
		if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != DefaultMode {
			t.Fatalf("socket = %v, %v, want a socket with mode %v", fi.Mode(), err, DefaultMode)
		}
		if pi, err := os.Stat(filepath.Dir(sock)); err != nil || !pi.IsDir() || pi.Mode().Perm() != 0o755&^umask() {
			t.Fatalf("parent = %v, %v, want a directory 0o755 (less umask)", pi.Mode(), err)
		}
		echo(t, l, "unix://"+sock)
	})

	t.Run("mode option", func(t *testing.T) {
		sock := filepath.Join(dir, "m.sock")
		l, err := Unix(ctx, sock, Mode(0o600))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if fi, _ := os.Lstat(sock); fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
		}
	})

	t.Run("stale socket replaced", func(t *testing.T) {
		sock := filepath.Join(dir, "stale.sock")
		staleSocket(t, sock)
		l, err := Listen(ctx, "unix://"+sock)
		if err != nil {
			t.Fatalf("over a stale socket: %v", err)
		}
		echo(t, l, "unix://"+sock)
		l.Close()
		if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after Close the socket is still there (%v)", err)
		}
	})

	t.Run("live socket refused", func(t *testing.T) {
		sock := filepath.Join(dir, "live.sock")
		live, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		if l, err := Listen(ctx, "unix://"+sock); err == nil {
			l.Close()
			t.Fatal("Listen took over a socket another server accepts on")
		} else if !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "another process") {
			t.Fatalf("error %q should name the socket and say it is in use", err)
		}
		echo(t, live, "unix://"+sock)
	})

	t.Run("regular file refused and kept", func(t *testing.T) {
		path := filepath.Join(dir, "data")
		if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Listen(ctx, "unix://"+path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "regular file") {
			t.Fatalf("Listen over a regular file = %v, want an error naming it", err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != "precious" {
			t.Fatalf("the file is now %q, %v", b, err)
		}
	})

	t.Run("directory refused and kept", func(t *testing.T) {
		path := filepath.Join(dir, "sub")
		if err := os.MkdirAll(filepath.Join(path, "keep"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := Unix(ctx, path); err == nil || !strings.Contains(err.Error(), "directory") {
			t.Fatalf("Listen over a directory = %v, want an error naming it", err)
		}
		if _, err := os.Stat(filepath.Join(path, "keep")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("symlink to a socket refused and kept", func(t *testing.T) {
		target := filepath.Join(dir, "target.sock")
		staleSocket(t, target)
		link := filepath.Join(dir, "link.sock")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if _, err := Unix(ctx, link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("Listen over a symlink = %v, want an error", err)
		}
		if _, err := os.Lstat(link); err != nil {
			t.Fatal(err)
		}
	})
}

func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

func TestListenTCP(t *testing.T) {
	for _, addr := range []string{"tcp://127.0.0.1:0", "127.0.0.1:0"} {
		l, err := Listen(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		echo(t, l, "tcp://"+l.Addr().String())
		l.Close()
	}
}

func TestTemporary(t *testing.T) {
	accept := func(e syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", e)}
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{accept(syscall.EMFILE), true},
		{accept(syscall.ENFILE), true},
		{accept(syscall.ENOBUFS), true},
		{accept(syscall.ECONNABORTED), true},
		{accept(syscall.EINVAL), false},
		{&net.OpError{Op: "accept", Err: os.ErrDeadlineExceeded}, false},
		{&net.OpError{Op: "accept", Err: net.ErrClosed}, false},
		{errors.New("boom"), false},
	} {
		if got := Temporary(tc.err); got != tc.want {
			t.Errorf("Temporary(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	var got []time.Duration
	for d := nextDelay(0); len(got) < 10; d = nextDelay(d) {
		got = append(got, d)
	}
	want := "[5ms 10ms 20ms 40ms 80ms 160ms 320ms 640ms 1s 1s]"
	if fmt.Sprint(got) != want {
		t.Fatalf("delays %v, want %s", got, want)
	}
}

// flaky fails Accept with EMFILE fails times, then hands out one end of a
// pipe each time, until closed.
type flaky struct {
	mu     sync.Mutex
	fails  int
	closed chan struct{}
}

func (f *flaky) Accept() (net.Conn, error) {
	select {
	case <-f.closed:
		return nil, net.ErrClosed
	default:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	a, b := net.Pipe()
	b.Close()
	return a, nil
}

func (f *flaky) Close() error   { close(f.closed); return nil }
func (f *flaky) Addr() net.Addr { return &net.UnixAddr{Name: "flaky", Net: "unix"} }

// logged collects the delays Accept announces.
type logged struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (l *logged) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, f := range strings.Fields(string(p)) {
			if v, ok := strings.CutPrefix(f, "delay="); ok {
				d, err := time.ParseDuration(v)
				if err != nil {
					return 0, err
				}
				l.delays = append(l.delays, d)
			}
		}
		return len(p), nil
	}), nil))
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func TestAcceptRetriesEMFILE(t *testing.T) {
	var log logged
	f := &flaky{fails: 4, closed: make(chan struct{})}
	l := Retry(f, Logger(log.logger()))
	start := time.Now()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept = %v, want the connection after the EMFILEs", err)
	}
	c.Close()
	if took := time.Since(start); took < 75*time.Millisecond {
		t.Fatalf("four retries took %v, want at least 5+10+20+40 ms", took)
	}
	if fmt.Sprint(log.delays) != "[5ms 10ms 20ms 40ms]" {
		t.Fatalf("logged delays %v, want [5ms 10ms 20ms 40ms]", log.delays)
	}

	// A success resets the backoff.
	f.mu.Lock()
	f.fails = 1
	f.mu.Unlock()
	log.delays = nil
	if c, err := l.Accept(); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
	if fmt.Sprint(log.delays) != "[5ms]" {
		t.Fatalf("after a success, delays %v, want [5ms]", log.delays)
	}
}

func TestCloseEndsBackoff(t *testing.T) {
	f := &flaky{fails: 1 << 30, closed: make(chan struct{})}
	l := Retry(f, Logger(slog.New(slog.DiscardHandler)))
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }()
	time.Sleep(1500 * time.Millisecond) // into the 1 s waits
	start := time.Now()
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
		}
		if took := time.Since(start); took > 200*time.Millisecond {
			t.Fatalf("Accept returned %v after Close", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting after Close")
	}
}

func TestAcceptReturnsPermanentErrors(t *testing.T) {
	l := Retry(&permanent{}, Logger(slog.New(slog.DiscardHandler)))
	if _, err := l.Accept(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Accept = %v, want EINVAL at once", err)
	}
}

type permanent struct{ net.Listener }

func (permanent) Accept() (net.Conn, error) {
	return nil, &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EINVAL)}
}

// TestAcceptUnderFDLimit runs out of descriptors for real, in a child
// process (the limit is per process and would starve the other tests).
func TestAcceptUnderFDLimit(t *testing.T) {
	if os.Getenv("NETLISTEN_FDLIMIT_CHILD") == "1" {
		fdLimitChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptUnderFDLimit$", "-test.v")
	cmd.Env = append(os.Environ(), "NETLISTEN_FDLIMIT_CHILD=1", "NETLISTEN_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("CHILD OK")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func fdLimitChild() {
	fail := func(format string, args ...any) {
		fmt.Printf("CHILD FAIL: "+format+"\n", args...)
		os.Exit(1)
	}
	var log logged
	sock := filepath.Join(os.Getenv("NETLISTEN_DIR"), "fd.sock")
	l, err := Listen(context.Background(), "unix://"+sock, Logger(log.logger()))
	if err != nil {
		fail("%v", err)
	}
	// Queued before the descriptors run out, so accept(2) has a
	// connection to fail on.
	client, err := net.Dial("unix", sock)
	if err != nil {
		fail("%v", err)
	}
	defer client.Close()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 64, Max: 64}); err != nil {
		fail("setrlimit: %v", err)
	}
	var filler []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				fail("filling descriptors: %v", err)
			}
			break
		}
		filler = append(filler, f)
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	select {
	case err := <-accepted:
		fail("Accept returned %v with no descriptor free", err)
	case <-time.After(300 * time.Millisecond):
	}
	filler[0].Close()
	select {
	case err := <-accepted:
		if err != nil {
			fail("Accept after a descriptor was freed: %v", err)
		}
	case <-time.After(5 * time.Second):
		fail("Accept did not recover after a descriptor was freed")
	}
	log.mu.Lock()
	n := len(log.delays)
	log.mu.Unlock()
	if n < 3 {
		fail("only %d retries logged in 300 ms of EMFILE", n)
	}
	fmt.Printf("CHILD OK after %d retries\n", n)
}
