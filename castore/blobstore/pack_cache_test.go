package blobstore

import (
	"bytes"
	"context"
	"io"
	"math/rand"
	"os"
	"syscall"
	"testing"

	"github.com/tvix-go/tvix/castore"
)

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// Under a descriptor limit far below the number of packs (every large
// blob gets a pack of its own), writing and reading many large blobs
// works, and the packs open stay bounded.
func TestPackFilesBoundedUnderLowFDLimit(t *testing.T) {
	ctx := context.Background()
	defer func(n int) { maxOpenPacks = n }(maxOpenPacks)
	maxOpenPacks = 8
	s := mustPack(t, t.TempDir())
	defer s.Close()

	base := openFDs(t)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = uint64(base + 40)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)

	const n = 100
	blob := func(i int) []byte {
		b := make([]byte, 1<<20+100<<10)
		rand.New(rand.NewSource(int64(i))).Read(b)
		return b
	}
	digests := make([]castore.Digest, n)
	for i := range n {
		digests[i] = putBlob(t, s, blob(i))
		if i%10 == 9 {
			if err := s.Sync(ctx); err != nil {
				t.Fatalf("sync after %d blobs: %v", i+1, err)
			}
		}
	}
	if got := openFDs(t) - base; got > maxOpenPacks+4 {
		t.Fatalf("%d descriptors more after writing %d large blobs, want at most %d", got, n, maxOpenPacks+4)
	}
	for i, d := range digests {
		r, err := s.Open(ctx, d)
		if err != nil {
			t.Fatalf("open blob %d: %v", i, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, blob(i)) {
			t.Fatalf("read blob %d: %v", i, err)
		}
	}
	if got := s.b.(*packBackend).packs.openCount(); got > maxOpenPacks {
		t.Fatalf("%d packs open for reading after reading them all, want at most %d", got, maxOpenPacks)
	}
	if got := openFDs(t) - base; got > maxOpenPacks+4 {
		t.Fatalf("%d descriptors more after reading %d large blobs, want at most %d", got, n, maxOpenPacks+4)
	}
}

// A removed pack (gc) stays readable through references held before its
// removal, closes when the last is released, and is not handed out again.
func TestForgottenPackStaysReadableWhileHeld(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/1.pack"
	if err := os.WriteFile(path, []byte("pack bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newPackCache(4, func(uint64) (*os.File, error) { return os.Open(path) })
	defer c.close()
	held, err := c.acquire(1)
	if err != nil {
		t.Fatal(err)
	}
	idle, err := c.acquire(1)
	if err != nil || idle != held {
		t.Fatalf("second acquire: %v, same ref %v", err, idle == held)
	}
	c.release(idle)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	c.forget(1)
	buf := make([]byte, 4)
	if _, err := held.f.ReadAt(buf, 5); err != nil || string(buf) != "byte" {
		t.Fatalf("read of the removed pack: %q, %v", buf, err)
	}
	if n := c.openCount(); n != 0 {
		t.Errorf("forgotten pack still listed: %d open", n)
	}
	if _, err := c.acquire(1); !os.IsNotExist(err) {
		t.Errorf("acquire after removal: %v, want not exist", err)
	}
	f := held.f
	c.release(held)
	if _, err := f.ReadAt(buf, 0); err == nil {
		t.Error("the file is still open after its last release")
	}
}
