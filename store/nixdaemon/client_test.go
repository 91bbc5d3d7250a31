package nixdaemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/workerproto"
	"github.com/tvix-go/tvix/store/pathinfo"
)

// testClient speaks the client side of the protocol, as Nix's RemoteStore
// does, for tests that need byte-level control.
type testClient struct {
	t    testing.TB
	conn net.Conn
	r    *workerproto.Reader
	w    *workerproto.Writer
	logs []string
}

type testDaemon struct {
	srv   *Server
	store Store
	done  chan error
}

// newStore is an empty in-memory store.
func newStore() Store {
	return Store{Blobs: blobstore.NewMemory(), Dirs: dirstore.NewMemory(), PathInfos: pathinfo.NewMemory(), RequireSigs: true}
}

// connect serves one connection for peer and returns its client side,
// handshake done.
func connect(t testing.TB, st Store, peer Peer) (*testClient, *testDaemon) {
	t.Helper()
	a, b := net.Pipe()
	d := &testDaemon{srv: &Server{Store: st, NixVersion: "test"}, store: st, done: make(chan error, 1)}
	go func() {
		d.done <- d.srv.ServeConn(context.Background(), a, a, peer)
		a.Close()
	}()
	c := &testClient{t: t, conn: b, r: workerproto.NewReader(b), w: workerproto.NewWriter(b)}
	t.Cleanup(func() { b.Close() })
	c.w.Uint64(workerproto.MagicClient)
	c.w.Flush()
	if m := c.r.Uint64("magic"); m != workerproto.MagicServer {
		t.Fatalf("daemon magic %#x: %v", m, c.r.Err())
	}
	if v := c.r.Uint64("version"); v != workerproto.Version {
		t.Fatalf("daemon version %#x", v)
	}
	c.w.Uint64(workerproto.Version)
	c.w.Uint64(0) // cpu affinity
	c.w.Uint64(0) // reserve space
	c.w.Flush()
	if v := c.r.String("nix version"); v != "test" {
		t.Fatalf("daemon's nix version %q", v)
	}
	if err := c.stderr(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return c, d
}

// daemonError is a STDERR_ERROR.
type daemonError struct{ msg string }

func (e *daemonError) Error() string { return e.msg }

// stderr reads the stderr channel up to the last message; a daemon error
// is returned as *daemonError.
func (c *testClient) stderr() error {
	for {
		msg := c.r.Uint64("stderr")
		if err := c.r.Err(); err != nil {
			return err
		}
		switch msg {
		case workerproto.StderrLast:
			return nil
		case workerproto.StderrError:
			c.r.String("type")
			c.r.Uint64("level")
			c.r.String("name")
			m := c.r.String("message")
			c.r.Uint64("pos")
			n := c.r.Uint64("traces")
			for i := uint64(0); i < n; i++ {
				c.r.Uint64("pos")
				c.r.String("trace")
			}
			if err := c.r.Err(); err != nil {
				return err
			}
			return &daemonError{m}
		case workerproto.StderrNext:
			c.logs = append(c.logs, c.r.String("log"))
		case workerproto.StderrStartActivity:
			c.r.Uint64("id")
			c.r.Uint64("level")
			c.r.Uint64("type")
			c.logs = append(c.logs, c.r.String("text"))
			c.fields()
			c.r.Uint64("parent")
		case workerproto.StderrStopActivity:
			c.r.Uint64("id")
		case workerproto.StderrResult:
			c.r.Uint64("id")
			c.r.Uint64("type")
			c.fields()
		default:
			return fmt.Errorf("unknown stderr message %#x", msg)
		}
	}
}

func (c *testClient) fields() {
	n := c.r.Uint64("fields")
	for i := uint64(0); i < n; i++ {
		if c.r.Uint64("field type") == 0 {
			c.r.Uint64("int")
		} else {
			c.logs = append(c.logs, c.r.String("string"))
		}
	}
}

// op sends an operation and its arguments, then reads the stderr channel
// (sending framed data from framed first, if given).
func (c *testClient) op(op workerproto.Op, args func(w *workerproto.Writer), framed []byte) error {
	c.w.Uint64(uint64(op))
	if args != nil {
		args(c.w)
	}
	if framed != nil {
		fw := c.w.Framed()
		for len(framed) > 0 {
			n := min(len(framed), 4096)
			fw.Write(framed[:n])
			framed = framed[n:]
		}
		fw.Close()
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	return c.stderr()
}

func (c *testClient) isValid(p string) bool {
	c.t.Helper()
	if err := c.op(workerproto.OpIsValidPath, func(w *workerproto.Writer) { w.String(p) }, nil); err != nil {
		c.t.Fatalf("IsValidPath %s: %v", p, err)
	}
	return c.r.Bool("valid")
}

// makeNAR is the NAR of a regular file.
func makeNAR(t testing.TB, contents string) []byte {
	var b bytes.Buffer
	w := nar.NewWriter(&b)
	if err := w.File(false, uint64(len(contents)), bytes.NewReader([]byte(contents))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func narHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// addNAR is AddToStoreNar.
func (c *testClient) addNAR(pi workerproto.PathInfo, narBytes []byte, dontCheckSigs bool) error {
	return c.op(workerproto.OpAddToStoreNar, func(w *workerproto.Writer) {
		w.String(pi.Path)
		w.String(pi.Deriver)
		w.String(pi.NarHash)
		w.Strings(pi.References)
		w.Uint64(pi.RegistrationTime)
		w.Uint64(pi.NarSize)
		w.Bool(pi.Ultimate)
		w.Strings(pi.Sigs)
		w.String(pi.CA)
		w.Bool(false)
		w.Bool(dontCheckSigs)
	}, narBytes)
}

// closed says whether the daemon ended the connection (within a second).
func (d *testDaemon) closed() (bool, error) {
	select {
	case err := <-d.done:
		return true, err
	case <-time.After(time.Second):
		return false, nil
	}
}

func isDaemonError(err error) bool {
	var de *daemonError
	return errors.As(err, &de)
}

var _ = io.EOF
