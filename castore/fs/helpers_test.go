package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/castore/dirstore"
	"github.com/tvix-go/tvix/internal/testenv"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/pathinfo"
	"github.com/tvix-go/tvix/store/storefs"
	"github.com/tvix-go/tvix/store/storev1"
)

// nsEnv marks the copy of the test binary that runs in its own mount
// namespace: every mount made there vanishes with the process, even when a
// test crashes, and /nix/store can be mounted over without touching the
// host.
const nsEnv = "TVIX_FS_TEST_MOUNTNS"

func TestMain(m *testing.M) {
	if os.Getenv(nsEnv) == "" && os.Geteuid() == 0 {
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), nsEnv+"=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		// Go makes / private (MS_REC|MS_PRIVATE) after unsharing, so
		// nothing mounted in the child propagates back.
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			os.Exit(0)
		case errors.As(err, &ee) && ee.ExitCode() >= 0:
			os.Exit(ee.ExitCode())
		case errors.As(err, &ee):
			fmt.Fprintf(os.Stderr, "test process in private mount namespace died: %v\n", err)
			os.Exit(1)
		}
		// Could not create the namespace (e.g. in a restricted
		// container): run here, relying on t.Cleanup to unmount.
		fmt.Fprintf(os.Stderr, "no private mount namespace (%v); mounting in the current one\n", err)
	}
	os.Exit(m.Run())
}

func inPrivateNamespace() bool { return os.Getenv(nsEnv) != "" }

// testStore holds in-memory services a test fills by hand.
type testStore struct {
	blobs castore.BlobService
	dirs  *dirstore.Memory
	paths *pathinfo.Memory
}

func newTestStore() *testStore {
	return &testStore{blobs: blobstore.NewMemory(), dirs: dirstore.NewMemory(), paths: pathinfo.NewMemory()}
}

func (s *testStore) services() Services {
	return Services{Blobs: s.blobs, Directories: s.dirs, Roots: s.roots()}
}

// roots serves the store paths added, as the store's mount does.
func (s *testStore) roots() RootNodes { return storefs.New(s.paths, nil) }

func (s *testStore) putBlob(t testing.TB, r io.Reader) (castore.Digest, uint64) {
	t.Helper()
	w, err := s.blobs.Put(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(w, r)
	if err != nil {
		w.Abort()
		t.Fatal(err)
	}
	d, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return d, uint64(n)
}

// importPath imports a file tree (as `nix-store --add` would see it) and
// returns its root node, named name.
func (s *testStore) importPath(t testing.TB, path, name string) *castorev1.Node {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	nb := []byte(name)
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			t.Fatal(err)
		}
		return &castorev1.Node{Node: &castorev1.Node_Symlink{Symlink: &castorev1.SymlinkNode{Name: nb, Target: []byte(target)}}}
	case fi.Mode().IsRegular():
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		d, size := s.putBlob(t, f)
		return &castorev1.Node{Node: &castorev1.Node_File{File: &castorev1.FileNode{Name: nb, Digest: d.Bytes(), Size: size, Executable: fi.Mode()&0o100 != 0}}}
	case fi.IsDir():
		ents, err := os.ReadDir(path)
		if err != nil {
			t.Fatal(err)
		}
		dir := &castorev1.Directory{}
		for _, e := range ents { // ReadDir sorts by name, as castore needs
			n := s.importPath(t, filepath.Join(path, e.Name()), e.Name())
			switch {
			case n.GetDirectory() != nil:
				dir.Directories = append(dir.Directories, n.GetDirectory())
			case n.GetFile() != nil:
				dir.Files = append(dir.Files, n.GetFile())
			default:
				dir.Symlinks = append(dir.Symlinks, n.GetSymlink())
			}
		}
		size, ok := castore.DirectorySize(dir)
		if !ok {
			t.Fatal("directory size overflow")
		}
		d, err := s.dirs.Put(context.Background(), dir)
		if err != nil {
			t.Fatalf("put directory %s: %v", path, err)
		}
		return &castorev1.Node{Node: &castorev1.Node_Directory{Directory: &castorev1.DirectoryNode{Name: nb, Digest: d.Bytes(), Size: size}}}
	}
	t.Fatalf("import %s: unsupported file type %v", path, fi.Mode())
	return nil
}

// fakeStorePath makes a store path for name with a digest derived from it.
func fakeStorePath(name string) storepath.StorePath {
	h := sha256.Sum256([]byte("tvix-go fs test " + name))
	var sp storepath.StorePath
	copy(sp.Digest[:], h[:])
	sp.Name = name
	return sp
}

// addStorePath imports path as the store path for name and returns its
// basename.
func (s *testStore) addStorePath(t testing.TB, path, name string) string {
	t.Helper()
	sp := fakeStorePath(name)
	node := s.importPath(t, path, sp.Basename())
	info := &storev1.PathInfo{Node: node, Narinfo: &storev1.NARInfo{NarSize: 1, NarSha256: make([]byte, 32)}}
	if _, err := s.paths.Put(context.Background(), info); err != nil {
		t.Fatal(err)
	}
	return sp.Basename()
}

// mount mounts s on a fresh directory and unmounts at the end of the test,
// whether it passes or not.
func (s *testStore) mount(t testing.TB, opts Options) *Mounted {
	t.Helper()
	return mountServices(t, s.services(), opts)
}

func mountServices(t testing.TB, svc Services, opts Options) *Mounted {
	t.Helper()
	testenv.FUSE(t)
	mp := t.TempDir()
	if opts.Logger == nil {
		opts.Logger = testLogger(t, nil)
	}
	m, err := Mount(context.Background(), mp, svc, opts)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("Unmount: %v", err)
		}
		if _, ok, _ := mountedAt(mp); ok {
			t.Errorf("%s still mounted after Unmount", mp)
		}
	})
	return m
}

// logBuffer collects log output so tests can assert on what was logged.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t testing.TB, buf *logBuffer) *slog.Logger {
	var w io.Writer = testWriter{t}
	if buf != nil {
		w = io.MultiWriter(w, buf)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// faultyBlobs hides some blobs and counts what is read.
type faultyBlobs struct {
	BlobService
	missing   map[castore.Digest]bool
	bytesRead atomic.Int64
	opens     atomic.Int64
}

func (f *faultyBlobs) Open(ctx context.Context, d castore.Digest) (castore.BlobReader, error) {
	if f.missing[d] {
		return nil, fmt.Errorf("open blob %s: %w", d, castore.ErrNotFound)
	}
	f.opens.Add(1)
	r, err := f.BlobService.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	return &countingReader{BlobReader: r, n: &f.bytesRead}, nil
}

type countingReader struct {
	castore.BlobReader
	n *atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.BlobReader.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// pathInfos wraps a PathInfoService to count, fail or hang calls.
type pathInfos struct {
	storefs.PathInfoService
	gets atomic.Int64
	fail error
	hang bool
}

func (p *pathInfos) Get(ctx context.Context, d [storepath.DigestSize]byte) (*storev1.PathInfo, error) {
	p.gets.Add(1)
	if p.hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if p.fail != nil {
		return nil, p.fail
	}
	return p.PathInfoService.Get(ctx, d)
}

func (p *pathInfos) List(ctx context.Context) iter.Seq2[*storev1.PathInfo, error] {
	if p.fail != nil {
		return func(yield func(*storev1.PathInfo, error) bool) { yield(nil, p.fail) }
	}
	return p.PathInfoService.List(ctx)
}

// writeTree creates files from a map of relative path to contents; a
// value starting with "->" makes a symlink, a key ending in / a directory,
// a key ending in * an executable.
func writeTree(t testing.TB, root string, files map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := files[k]
		mode := os.FileMode(0o644)
		name := k
		if n := len(k); n > 0 && k[n-1] == '*' {
			mode, name = 0o755, k[:n-1]
		}
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case name[len(name)-1] == '/':
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case len(v) >= 2 && v[:2] == "->":
			if err := os.Symlink(v[2:], p); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(p, []byte(v), mode); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// withTimeout runs f and fails the test if it does not return in time, so
// a hanging filesystem shows as a failure, not a stuck test.
func withTimeout(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// commandFromMount runs a program stored on a mount this process serves.
// It must not be exec'd from here directly: Go forks with vfork, and the
// forking thread keeps its P without being in a syscall until the child's
// execve returns, which needs this process to answer FUSE reads; a garbage
// collection starting meanwhile can never stop the world, so nothing
// answers. A shell (on the host) in between makes the fork return at once.
func commandFromMount(prog string, args ...string) *exec.Cmd {
	return exec.Command("/bin/sh", append([]string{"-c", `exec "$0" "$@"`, prog}, args...)...)
}
