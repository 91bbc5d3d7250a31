package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/internal/testenv"
)

// sampleTree is a tree with every node kind and the corner cases a store
// path can hold.
var sampleTree = map[string]string{
	"bin/hello*":             "#!/bin/sh\necho hello\n",
	"bin/link-to-hello":      "->hello",
	"empty-file":             "",
	"empty-dir/":             "",
	"share/doc/README":       "read me\n",
	"share/doc/name with sp": "spaces\n",
	"share/doc/ünïcødé":      "unicode\n",
	"share/abs-link":         "->/nix/store/00000000000000000000000000000000-x/y",
	"share/dangling":         "->does/not/exist",
	"share/dir-link":         "->doc",
	"lib/a/b/c/d/deep":       "deep\n",
}

func randomBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// sampleStore builds the sample tree plus a multi-chunk file in src and
// imports it as one store path; it also adds a store path that is a single
// file and one that is a symlink.
func sampleStore(t *testing.T) (s *testStore, src, tree, file, link string) {
	t.Helper()
	return sampleStoreIn(t, newTestStore())
}

func sampleStoreIn(t *testing.T, s *testStore) (_ *testStore, src, tree, file, link string) {
	t.Helper()
	src = filepath.Join(t.TempDir(), "src")
	writeTree(t, src, sampleTree)
	if err := os.WriteFile(filepath.Join(src, "share/big"), randomBytes(1, 5<<20+123), 0o444); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	writeTree(t, other, map[string]string{"single*": "#!/bin/sh\n", "symlink": "->/etc/hostname"})
	tree = s.addStorePath(t, src, "sample-tree")
	file = s.addStorePath(t, filepath.Join(other, "single"), "single-file")
	link = s.addStorePath(t, filepath.Join(other, "symlink"), "a-symlink")
	return s, src, tree, file, link
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The mount serves the same tree from blobs in memory (copied through the
// process) and from the pack store (spliced from the pack files).
func TestMountMatchesSource(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testMountMatchesSource(t, newTestStore()) })
	t.Run("pack", func(t *testing.T) {
		s := newTestStore()
		blobs, err := blobstore.NewPack(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { blobs.Close() })
		opens := &openCounter{Store: blobs}
		s.blobs = opens
		m := testMountMatchesSource(t, s)
		if !m.KernelPassthrough() {
			t.Skip("this kernel offers no FUSE passthrough; reads went through the mount")
		}
		// share/big (5 MiB) is a blob the pack store keeps as a file of its
		// own: the kernel reads it by passthrough, so the mount never opens
		// the blob. Smaller files are read through the mount.
		if n := opens.n.Load(); n == 0 {
			t.Fatal("no blob opened by the mount: small files should be read through it")
		}
		if opens.big.Load() != 0 {
			t.Fatal("the mount opened the 5 MiB blob: passthrough not used")
		}
	})
}

// openCounter counts Opens of the pack store's blobs, noting those big
// enough for passthrough.
type openCounter struct {
	*blobstore.Store
	n, big atomic.Int64
}

func (c *openCounter) Open(ctx context.Context, d castore.Digest) (castore.BlobReader, error) {
	r, err := c.Store.Open(ctx, d)
	c.n.Add(1)
	if err == nil && r.Size() >= passthroughMinSize {
		c.big.Add(1)
	}
	return r, err
}

func testMountMatchesSource(t *testing.T, s *testStore) *Mounted {
	s, src, tree, file, link := sampleStoreIn(t, s)
	m := s.mount(t, Options{})
	mnt := filepath.Join(m.Mountpoint(), tree)

	t.Run("diff -r", func(t *testing.T) {
		run(t, "diff", "-r", "--no-dereference", src, mnt)
	})
	t.Run("ls -lR", func(t *testing.T) {
		out := strings.Join(strings.Fields(run(t, "ls", "-lR", "--time-style=+%s", mnt)), " ")
		for _, want := range []string{
			"-r-xr-xr-x 1 root root 21 1 hello",
			"lrwxrwxrwx 1 root root 5 1 link-to-hello -> hello",
			"-r--r--r-- 1 root root 0 1 empty-file",
			"dr-xr-xr-x 2 root root 0 1 empty-dir",
			"dr-xr-xr-x 3 root root 5 1 lib",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("ls -lR output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("find -type l", func(t *testing.T) {
		got := strings.Fields(run(t, "find", mnt, "-type", "l", "-printf", "%P\n"))
		want := strings.Fields(run(t, "find", src, "-type", "l", "-printf", "%P\n"))
		if strings.Join(sorted(got), " ") != strings.Join(sorted(want), " ") || len(got) != 4 {
			t.Errorf("symlinks: got %q, want %q", got, want)
		}
	})
	t.Run("readlink", func(t *testing.T) {
		for name, want := range map[string]string{
			"share/abs-link": "/nix/store/00000000000000000000000000000000-x/y",
			"share/dangling": "does/not/exist",
		} {
			if got := strings.TrimSpace(run(t, "readlink", filepath.Join(mnt, name))); got != want {
				t.Errorf("readlink %s = %q, want %q", name, got, want)
			}
		}
		if got := strings.TrimSpace(run(t, "readlink", filepath.Join(m.Mountpoint(), link))); got != "/etc/hostname" {
			t.Errorf("readlink of symlink store path = %q", got)
		}
	})
	t.Run("stat", func(t *testing.T) {
		out := run(t, "stat", "-c", "%A %h %u %g %s %X %Y %Z", filepath.Join(mnt, "bin/hello"), filepath.Join(mnt, "share"), filepath.Join(m.Mountpoint(), file))
		want := "-r-xr-xr-x 1 0 0 21 1 1 1\ndr-xr-xr-x 3 0 0 8 1 1 1\n-r-xr-xr-x 1 0 0 10 1 1 1\n"
		if out != want {
			t.Errorf("stat:\n%s\nwant:\n%s", out, want)
		}
	})
	t.Run("nlink", func(t *testing.T) {
		for dir, want := range map[string]uint64{"": 6, "share": 3, "share/doc": 2, "lib/a": 3, "empty-dir": 2} {
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(mnt, dir), &st); err != nil {
				t.Fatal(err)
			}
			if st.Nlink != want {
				t.Errorf("nlink of %q = %d, want %d", dir, st.Nlink, want)
			}
		}
	})
	t.Run("random access", func(t *testing.T) {
		want, err := os.ReadFile(filepath.Join(src, "share/big"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(mnt, "share/big"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rng := rand.New(rand.NewSource(2))
		for i := 0; i < 200; i++ {
			off := rng.Int63n(int64(len(want)) + 10)
			buf := make([]byte, rng.Intn(300000))
			n, err := f.ReadAt(buf, off)
			if err != nil && err != io.EOF {
				t.Fatalf("ReadAt(%d, %d): %v", len(buf), off, err)
			}
			end := min(off+int64(len(buf)), int64(len(want)))
			if off > int64(len(want)) {
				end = off
			}
			if int64(n) != end-off || (n > 0 && !bytes.Equal(buf[:n], want[off:end])) {
				t.Fatalf("ReadAt(%d, %d): got %d bytes, want %d, equal=%v", len(buf), off, n, end-off, n > 0 && bytes.Equal(buf[:n], want[off:end]))
			}
		}
	})
	t.Run("xattrs", func(t *testing.T) {
		node := s.importPath(t, filepath.Join(src, "share/big"), "x")
		fileDigest, _ := castore.DigestFromBytes(node.GetFile().GetDigest())
		dnode := s.importPath(t, filepath.Join(src, "share"), "x")
		dirDigest, _ := castore.DigestFromBytes(dnode.GetDirectory().GetDigest())
		for _, c := range []struct{ path, attr, want string }{
			{"share/big", XattrBlobDigest, fileDigest.String()},
			{"share", XattrDirectoryDigest, dirDigest.String()},
		} {
			buf := make([]byte, 256)
			n, err := syscall.Getxattr(filepath.Join(mnt, c.path), c.attr, buf)
			if err != nil || string(buf[:n]) != c.want {
				t.Errorf("getxattr %s %s = %q, %v; want %q", c.path, c.attr, buf[:max(n, 0)], err, c.want)
			}
			if n, err := syscall.Getxattr(filepath.Join(mnt, c.path), c.attr, nil); err != nil || n != len(c.want) {
				t.Errorf("getxattr size query %s = %d, %v", c.path, n, err)
			}
			n, err = syscall.Listxattr(filepath.Join(mnt, c.path), buf)
			if err != nil || string(buf[:n]) != c.attr+"\x00" {
				t.Errorf("listxattr %s = %q, %v", c.path, buf[:max(n, 0)], err)
			}
		}
		if _, err := syscall.Getxattr(filepath.Join(mnt, "share/big"), XattrDirectoryDigest, make([]byte, 64)); err != syscall.ENODATA {
			t.Errorf("directory xattr on a file: %v, want ENODATA", err)
		}
		if !strings.HasPrefix(fileDigest.String(), "b3:") {
			t.Errorf("digest display %q lacks b3: prefix", fileDigest)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		target := filepath.Join(mnt, "bin/hello")
		for what, err := range map[string]error{
			"create":     os.WriteFile(filepath.Join(mnt, "new"), nil, 0o644),
			"open rw":    openClose(target, os.O_RDWR),
			"truncate":   os.Truncate(target, 0),
			"chmod":      os.Chmod(target, 0o777),
			"mkdir":      os.Mkdir(filepath.Join(mnt, "d"), 0o755),
			"remove":     os.Remove(target),
			"rename":     os.Rename(target, filepath.Join(mnt, "bin/x")),
			"symlink":    os.Symlink("x", filepath.Join(mnt, "l")),
			"setxattr":   syscall.Setxattr(target, "user.x", []byte("y"), 0),
			"root mkdir": os.Mkdir(filepath.Join(m.Mountpoint(), fakeStorePath("new").Basename()), 0o755),
		} {
			if !errors.Is(err, syscall.EROFS) {
				t.Errorf("%s: %v, want EROFS", what, err)
			}
		}
	})
	t.Run("root", func(t *testing.T) {
		if _, err := os.ReadDir(m.Mountpoint()); !errors.Is(err, syscall.EPERM) {
			t.Errorf("readdir of root without ListRoot: %v, want EPERM", err)
		}
		for _, name := range []string{"not-a-store-path", fakeStorePath("unknown").Basename(), tree[:33] + "other-name"} {
			if _, err := os.Lstat(filepath.Join(m.Mountpoint(), name)); !errors.Is(err, syscall.ENOENT) {
				t.Errorf("lstat %s: %v, want ENOENT", name, err)
			}
		}
		var st syscall.Stat_t
		if err := syscall.Stat(m.Mountpoint(), &st); err != nil || st.Mode != syscall.S_IFDIR|0o555 || st.Ino != 1 {
			t.Errorf("root: mode %o ino %d err %v", st.Mode, st.Ino, err)
		}
	})
	t.Run("stable inodes", func(t *testing.T) {
		paths := []string{"bin/hello", "share/doc", "share/dir-link", "lib/a/b/c/d/deep"}
		before := inodes(t, mnt, paths)
		// Make the kernel forget its dentries and inodes (FORGET), so
		// the numbers must come from the tree again.
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
			testenv.Missing(t, "cannot drop caches (needs root): %v", err)
		}
		after := inodes(t, mnt, paths)
		for i := range paths {
			if before[i] != after[i] {
				t.Errorf("inode of %s changed from %d to %d", paths[i], before[i], after[i])
			}
		}
		seen := map[uint64]string{}
		for i, ino := range after {
			if p, dup := seen[ino]; dup {
				t.Errorf("%s and %s share inode %d", p, paths[i], ino)
			}
			seen[ino] = paths[i]
		}
	})
	return m
}

func openClose(path string, flag int) error {
	f, err := os.OpenFile(path, flag, 0)
	if err == nil {
		f.Close()
	}
	return err
}

func inodes(t *testing.T, root string, paths []string) []uint64 {
	t.Helper()
	out := make([]uint64, len(paths))
	for i, p := range paths {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(root, p), &st); err != nil {
			t.Fatal(err)
		}
		out[i] = st.Ino
	}
	return out
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func TestListRoot(t *testing.T) {
	s, _, tree, file, link := sampleStore(t)
	m := s.mount(t, Options{ListRoot: true})
	ents, err := os.ReadDir(m.Mountpoint())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	want := sorted([]string{tree, file, link})
	if strings.Join(sorted(got), ",") != strings.Join(want, ",") {
		t.Errorf("root listing %q, want %q", got, want)
	}
	if os.Geteuid() == 0 {
		var st syscall.Stat_t
		if err := syscall.Stat(m.Mountpoint(), &st); err != nil {
			t.Fatal(err)
		}
		ra, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", st.Dev>>8&0xfff, st.Dev&0xff|st.Dev>>12&0xfff00))
		if err != nil || strings.TrimSpace(string(ra)) != fmt.Sprint(DefaultReadAheadKiB) {
			t.Errorf("readahead of the mount: %q, %v; want %d", ra, err, DefaultReadAheadKiB)
		}
	}
	out := run(t, "ls", "-l", m.Mountpoint())
	if !strings.Contains(out, "dr-xr-xr-x 6 root root") || !strings.Contains(out, "-> /etc/hostname") {
		t.Errorf("ls -l of root:\n%s", out)
	}
}

func TestExecStatic(t *testing.T) {
	busybox := testenv.Tool(t, "busybox", "busybox-static")
	if out, _ := exec.Command("file", "-L", busybox).Output(); bytes.Contains(out, []byte("dynamically")) {
		testenv.Missing(t, "static busybox (busybox-static) needed: %s is dynamically linked", busybox)
	}
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "cp", busybox, filepath.Join(src, "bin/busybox"))
	if err := os.Symlink("busybox", filepath.Join(src, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	s := newTestStore()
	bb := s.addStorePath(t, src, "busybox")
	m := s.mount(t, Options{})
	out, err := commandFromMount(filepath.Join(m.Mountpoint(), bb, "bin/sh"), "-c", "echo hello from the store").CombinedOutput()
	if err != nil || string(out) != "hello from the store\n" {
		t.Errorf("busybox sh said %q, %v", out, err)
	}
}

func TestMountpointRefused(t *testing.T) {
	testenv.FUSE(t)
	s := newTestStore()
	nonEmpty := t.TempDir()
	writeTree(t, nonEmpty, map[string]string{"x": "y"})
	file := filepath.Join(nonEmpty, "x")
	for _, c := range []struct {
		mp, want string
	}{
		{nonEmpty, "not empty"},
		{file, "not a directory"},
		{filepath.Join(nonEmpty, "missing"), "does not exist"},
	} {
		_, err := Mount(context.Background(), c.mp, s.services(), Options{})
		if !errors.Is(err, ErrMountpoint) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Mount(%s): %v, want an error saying %q", c.mp, err, c.want)
		}
	}
	m := s.mount(t, Options{})
	_, err := Mount(context.Background(), m.Mountpoint(), s.services(), Options{})
	if !errors.Is(err, ErrMountpoint) || !strings.Contains(err.Error(), "already a mount point (fuse.tvix)") {
		t.Errorf("Mount over a mount: %v", err)
	}
}

func TestUnmountOnCancel(t *testing.T) {
	testenv.FUSE(t)
	s := newTestStore()
	mp := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	m, err := Mount(ctx, mp, s.services(), Options{Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Unmount() })
	if _, ok, _ := mountedAt(mp); !ok {
		t.Fatal("not mounted")
	}
	cancel()
	withTimeout(t, 10*time.Second, "unmount after cancel", m.Wait)
	if _, ok, _ := mountedAt(mp); ok {
		t.Error("still mounted after the context was cancelled")
	}
}

func TestUnmountBusyDetaches(t *testing.T) {
	s, _, tree, _, _ := sampleStore(t)
	m := s.mount(t, Options{})
	f, err := os.Open(filepath.Join(m.Mountpoint(), tree, "share/doc/README"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // on failure, lets the detached mount go away
	done := make(chan error, 1)
	go func() { done <- m.Unmount() }()
	// Unmount retries for a while before detaching.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, ok, _ := mountedAt(m.Mountpoint()); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("busy mount not detached")
		}
	}
	// The open file keeps the detached mount served; reads still work.
	b, err := io.ReadAll(f)
	if err != nil || string(b) != "read me\n" {
		t.Errorf("read from detached mount: %q, %v", b, err)
	}
	f.Close()
	withTimeout(t, 10*time.Second, "unmount of a busy mount", func() {
		if err := <-done; err != nil {
			t.Errorf("Unmount: %v", err)
		}
	})
}
