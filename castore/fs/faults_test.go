package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castorev1"
	"github.com/tvix-go/tvix/internal/testenv"
	"github.com/tvix-go/tvix/store/storefs"
)

func TestMissingBlobIsEIO(t *testing.T) {
	s, src, tree, _, _ := sampleStore(t)
	readme := s.importPath(t, filepath.Join(src, "share/doc/README"), "x").GetFile()
	missingDigest, _ := castore.DigestFromBytes(readme.GetDigest())
	blobs := &faultyBlobs{BlobService: s.blobs, missing: map[castore.Digest]bool{missingDigest: true}}
	var logs logBuffer
	m := mountServices(t, Services{Blobs: blobs, Directories: s.dirs, Roots: s.roots()}, Options{Logger: testLogger(t, &logs)})
	mnt := filepath.Join(m.Mountpoint(), tree)

	// stat needs no blob; reading does.
	if fi, err := os.Stat(filepath.Join(mnt, "share/doc/README")); err != nil || fi.Size() != 8 {
		t.Fatalf("stat of a file with a missing blob: %v, %v", fi, err)
	}
	withTimeout(t, 10*time.Second, "read of a missing blob", func() {
		_, err := os.ReadFile(filepath.Join(mnt, "share/doc/README"))
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("read of a missing blob: %v, want EIO", err)
		}
	})
	if !strings.Contains(logs.String(), missingDigest.String()) || !strings.Contains(logs.String(), "blob missing") {
		t.Errorf("log does not name the missing blob %s:\n%s", missingDigest, logs.String())
	}
	// The mount stays up.
	if b, err := os.ReadFile(filepath.Join(mnt, "bin/hello")); err != nil || !bytes.HasPrefix(b, []byte("#!/bin/sh")) {
		t.Errorf("read after the failure: %q, %v", b, err)
	}
}

func TestPathInfoErrorsAreEIO(t *testing.T) {
	s, _, tree, _, _ := sampleStore(t)
	for _, c := range []struct {
		name string
		p    *pathInfos
		opts Options
	}{
		{"failing", &pathInfos{PathInfoService: s.paths, fail: errors.New("backend down")}, Options{ListRoot: true}},
		{"hanging", &pathInfos{PathInfoService: s.paths, hang: true}, Options{Timeout: 300 * time.Millisecond}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := mountServices(t, Services{Blobs: s.blobs, Directories: s.dirs, Roots: storefs.New(c.p, nil)}, c.opts)
			withTimeout(t, 10*time.Second, "lookup with a broken PathInfoService", func() {
				_, err := os.Lstat(filepath.Join(m.Mountpoint(), tree))
				if !errors.Is(err, syscall.EIO) {
					t.Errorf("lookup: %v, want EIO", err)
				}
			})
			if c.p.gets.Load() == 0 {
				t.Error("PathInfoService was not asked")
			}
			if c.opts.ListRoot {
				withTimeout(t, 10*time.Second, "readdir with a broken PathInfoService", func() {
					if _, err := os.ReadDir(m.Mountpoint()); !errors.Is(err, syscall.EIO) {
						t.Errorf("readdir: %v, want EIO", err)
					}
				})
			}
		})
	}
}

// failingDirs fails Get for one digest.
type failingDirs struct {
	DirectoryService
	bad castore.Digest
}

func (f failingDirs) Get(ctx context.Context, d castore.Digest) (*castorev1.Directory, error) {
	if d == f.bad {
		return nil, fmt.Errorf("get directory %s: %w", d, castore.ErrNotFound)
	}
	return f.DirectoryService.Get(ctx, d)
}

func TestMissingDirectory(t *testing.T) {
	s, src, tree, _, _ := sampleStore(t)
	doc := s.importPath(t, filepath.Join(src, "share/doc"), "x").GetDirectory()
	bad, _ := castore.DigestFromBytes(doc.GetDigest())
	m := mountServices(t, Services{Blobs: s.blobs, Directories: failingDirs{s.dirs, bad}, Roots: s.roots()}, Options{})
	mnt := filepath.Join(m.Mountpoint(), tree)
	if fi, err := os.Stat(filepath.Join(mnt, "share/doc")); err != nil || !fi.IsDir() {
		t.Errorf("stat of a directory that cannot be fetched: %v, %v", fi, err)
	}
	if _, err := os.ReadDir(filepath.Join(mnt, "share/doc")); !errors.Is(err, syscall.EIO) {
		t.Errorf("readdir: %v, want EIO", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "share/doc/README")); !errors.Is(err, syscall.EIO) {
		t.Errorf("lookup inside: %v, want EIO", err)
	}
}

func TestParallelReaders(t *testing.T) {
	src := t.TempDir()
	const files = 8
	want := make([][32]byte, files)
	for i := 0; i < files; i++ {
		b := randomBytes(int64(100+i), 1<<20+i*333333)
		want[i] = sha256.Sum256(b)
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), b, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "shared"), randomBytes(99, 3<<20), 0o444); err != nil {
		t.Fatal(err)
	}
	s := newTestStore()
	base := s.addStorePath(t, src, "parallel")
	m := s.mount(t, Options{})
	var wg sync.WaitGroup
	for i := 0; i < files; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(i)))
			for round := 0; round < 3; round++ {
				f, err := os.Open(filepath.Join(m.Mountpoint(), base, fmt.Sprintf("f%d", i)))
				if err != nil {
					t.Error(err)
					return
				}
				h := sha256.New()
				buf := make([]byte, 1+rng.Intn(200000))
				_, err = io.CopyBuffer(struct{ io.Writer }{h}, struct{ io.Reader }{f}, buf)
				f.Close()
				if err != nil {
					t.Errorf("read f%d: %v", i, err)
					return
				}
				if got := [32]byte(h.Sum(nil)); got != want[i] {
					t.Errorf("f%d round %d: contents differ", i, round)
				}
			}
		}(i)
	}
	withTimeout(t, 60*time.Second, "parallel readers", wg.Wait)

	// Many readers of one open file: more concurrent reads than the
	// handle has blob readers.
	content, err := os.ReadFile(filepath.Join(src, "shared"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(m.Mountpoint(), base, "shared"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			buf := make([]byte, 64<<10)
			for i := 0; i < 20; i++ {
				off := rng.Int63n(int64(len(content)))
				n, err := f.ReadAt(buf, off)
				if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], content[off:off+int64(n)]) {
					t.Errorf("shared handle ReadAt(%d): %d bytes, %v", off, n, err)
					return
				}
			}
		}(g)
	}
	withTimeout(t, 60*time.Second, "readers sharing one handle", wg.Wait)
}

func TestReadsOnlyWhatIsNeeded(t *testing.T) {
	src := t.TempDir()
	const size = 16 << 20
	content := randomBytes(7, size)
	if err := os.WriteFile(filepath.Join(src, "big"), content, 0o444); err != nil {
		t.Fatal(err)
	}
	s := newTestStore()
	base := s.addStorePath(t, src, "sparse-read")
	blobs := &faultyBlobs{BlobService: s.blobs}
	m := mountServices(t, Services{Blobs: blobs, Directories: s.dirs, Roots: s.roots()}, Options{})
	f, err := os.Open(filepath.Join(m.Mountpoint(), base, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	const off = 11<<20 + 12345
	if _, err := f.ReadAt(buf, off); err != nil || !bytes.Equal(buf, content[off:off+4096]) {
		t.Fatalf("ReadAt: %v, equal=%v", err, bytes.Equal(buf, content[off:off+4096]))
	}
	// Kernel readahead may ask for a little more, never for the start.
	if n := blobs.bytesRead.Load(); n == 0 || n > 4<<20 {
		t.Errorf("reading 4 KiB at %d read %d bytes from the blob", off, n)
	}
}

func TestFusermountFallback(t *testing.T) {
	testenv.FUSE(t)
	fm, err := lookFusermount()
	if err != nil {
		testenv.Missing(t, "no fusermount binary (fuse3): %v", err)
	}
	s, _, tree, _, _ := sampleStore(t)
	m := s.mount(t, Options{skipDirectMount: true})
	if m.Method() != MethodFusermount {
		t.Fatalf("method %q, want %q", m.Method(), MethodFusermount)
	}
	if b, err := os.ReadFile(filepath.Join(m.Mountpoint(), tree, "share/doc/README")); err != nil || string(b) != "read me\n" {
		t.Errorf("read via %s mount: %q, %v", fm, b, err)
	}
}

// The tree answers FUSE requests without a kernel mount, as the virtio-fs
// transport uses it.
func TestRawFileSystemLookups(t *testing.T) {
	s, _, tree, _, _ := sampleStore(t)
	p := &pathInfos{PathInfoService: s.paths}
	raw := NewRawFileSystem(context.Background(), Services{Blobs: s.blobs, Directories: s.dirs, Roots: storefs.New(p, nil)}, Options{Logger: testLogger(t, nil)})
	lookup := func(name string) (fuse.Status, *fuse.EntryOut) {
		var out fuse.EntryOut
		st := raw.Lookup(nil, &fuse.InHeader{NodeId: 1}, name, &out)
		return st, &out
	}
	for _, name := range []string{"x", "not-a-store-path", strings.Repeat("e", 32) + "-x", tree[:32] + "-bad/name"} {
		if st, _ := lookup(name); st != fuse.ENOENT {
			t.Errorf("lookup %q: %v, want ENOENT", name, st)
		}
	}
	if n := p.gets.Load(); n != 0 {
		t.Errorf("invalid names caused %d PathInfoService calls", n)
	}
	st, out := lookup(tree)
	if st != fuse.OK || out.Attr.Mode != syscall.S_IFDIR|0o555 || out.Attr.Mtime != 1 || out.Attr.Size != 20 {
		t.Fatalf("lookup %s: %v %+v", tree, st, out.Attr)
	}
	if st, _ := lookup(tree); st != fuse.OK || p.gets.Load() != 1 {
		t.Errorf("second lookup: %v, %d service calls in all, want 1", st, p.gets.Load())
	}
	var oo fuse.OpenOut
	if st := raw.OpenDir(nil, &fuse.OpenIn{InHeader: fuse.InHeader{NodeId: 1}}, &oo); st != fuse.Status(syscall.EPERM) {
		t.Errorf("opendir of root: %v, want EPERM", st)
	}
	var a fuse.AttrOut
	if st := raw.GetAttr(nil, &fuse.GetAttrIn{InHeader: fuse.InHeader{NodeId: 1}}, &a); st != fuse.OK || a.Ino != 1 || a.Uid != 0 {
		t.Errorf("getattr root: %v %+v", st, a)
	}

	// Without a kernel mount flag in front, the tree itself refuses writes.
	dir := fuse.InHeader{NodeId: out.NodeId}
	var bin, hello fuse.EntryOut
	if st := raw.Lookup(nil, &dir, "bin", &bin); st != fuse.OK {
		t.Fatalf("lookup bin: %v", st)
	}
	if st := raw.Lookup(nil, &fuse.InHeader{NodeId: bin.NodeId}, "hello", &hello); st != fuse.OK {
		t.Fatalf("lookup hello: %v", st)
	}
	file := fuse.InHeader{NodeId: hello.NodeId}
	var eo fuse.EntryOut
	var co fuse.CreateOut
	var ao fuse.AttrOut
	for what, st := range map[string]fuse.Status{
		"mkdir":    raw.Mkdir(nil, &fuse.MkdirIn{InHeader: dir, Mode: 0o755}, "d", &eo),
		"create":   raw.Create(nil, &fuse.CreateIn{InHeader: dir, Flags: syscall.O_WRONLY | syscall.O_CREAT, Mode: 0o644}, "f", &co),
		"symlink":  raw.Symlink(nil, &dir, "target", "l", &eo),
		"unlink":   raw.Unlink(nil, &dir, "bin"),
		"rename":   raw.Rename(nil, &fuse.RenameIn{InHeader: dir, Newdir: out.NodeId}, "bin", "nib"),
		"setattr":  raw.SetAttr(nil, &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{InHeader: file, Valid: fuse.FATTR_MODE, Mode: 0o777}}, &ao),
		"setxattr": raw.SetXAttr(nil, &fuse.SetXAttrIn{InHeader: file}, "user.x", []byte("y")),
		"open rw":  raw.Open(nil, &fuse.OpenIn{InHeader: file, Flags: syscall.O_RDWR}, &oo),
	} {
		if st != fuse.EROFS {
			t.Errorf("%s: %v, want EROFS", what, st)
		}
	}
}

func FuzzUnescapeMountinfo(f *testing.F) {
	for _, s := range []string{"/mnt/a\\040b", "/plain", "\\", "\\12", "\\777", "\\0401\\011x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u := unescapeMountinfo(s)
		if len(u) > len(s) {
			t.Errorf("unescape grew %q to %q", s, u)
		}
		if !strings.Contains(s, `\`) && u != s {
			t.Errorf("unescape changed %q without escapes to %q", s, u)
		}
	})
}

func TestPageCacheKeptAcrossOpens(t *testing.T) {
	src := t.TempDir()
	content := randomBytes(9, 3<<20)
	if err := os.WriteFile(filepath.Join(src, "f"), content, 0o444); err != nil {
		t.Fatal(err)
	}
	s := newTestStore()
	base := s.addStorePath(t, src, "page-cache")
	blobs := &faultyBlobs{BlobService: s.blobs}
	m := mountServices(t, Services{Blobs: blobs, Directories: s.dirs, Roots: s.roots()}, Options{})
	path := filepath.Join(m.Mountpoint(), base, "f")
	for i := 0; i < 3; i++ {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(b, content) {
			t.Fatalf("read %d: %v, equal=%v", i, err, bytes.Equal(b, content))
		}
	}
	// Only the first open reads the blob; later opens hit the page cache.
	// (Slack for one extra read, in case something drops caches meanwhile.)
	if n := blobs.bytesRead.Load(); n < int64(len(content)) || n > 2*int64(len(content)) {
		t.Errorf("three reads of a %d-byte file read %d bytes from the blob service", len(content), n)
	}
}

// wrongDirs answers every Get with the same, wrong directory.
type wrongDirs struct{ dir *castorev1.Directory }

func (w wrongDirs) Get(context.Context, castore.Digest) (*castorev1.Directory, error) {
	return w.dir, nil
}

// A directory that does not hash to the digest asked for, or that breaks
// the castore rules, never reaches the kernel.
func TestBadDirectoryFromService(t *testing.T) {
	s, _, tree, _, _ := sampleStore(t)
	bad := []*castorev1.Directory{
		{Files: []*castorev1.FileNode{{Name: []byte("ok"), Digest: make([]byte, 32)}}},
	}
	for _, dir := range bad {
		var logs logBuffer
		raw := NewRawFileSystem(context.Background(), Services{Blobs: s.blobs, Directories: wrongDirs{dir}, Roots: s.roots()}, Options{Logger: testLogger(t, &logs)})
		var out fuse.EntryOut
		if st := raw.Lookup(nil, &fuse.InHeader{NodeId: 1}, tree, &out); st != fuse.OK {
			t.Fatalf("lookup %s: %v", tree, st)
		}
		var child fuse.EntryOut
		if st := raw.Lookup(nil, &fuse.InHeader{NodeId: out.NodeId}, "ok", &child); st != fuse.EIO {
			t.Errorf("lookup in a directory the service answered wrongly: %v, want EIO", st)
		}
		if !strings.Contains(logs.String(), "service returned directory") {
			t.Errorf("log does not explain the failure:\n%s", logs.String())
		}
	}
}
