package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/testenv"
)

// A flipped byte in a pack is never served as data: `tvix store dump`
// fails naming the corrupt chunk, and a read of the file through the
// mount gets EIO; verify --check-contents reports the path.
func TestCorruptPackNeverServed(t *testing.T) {
	testenv.FUSE(t)
	testenv.Root(t, "mounting")
	env, sp := corruptStore(t)
	if _, stderr, err := run(t, env, "store", "dump", sp); err == nil || !strings.Contains(stderr, "do not match their digest") {
		t.Fatalf("dump of a corrupt path: %v\n%s", err, stderr)
	}
	if _, stderr, err := run(t, env, "store", "verify", "--check-contents"); err == nil || !strings.Contains(stderr, "is damaged") {
		t.Fatalf("verify --check-contents: %v\n%s", err, stderr)
	}
	mp := t.TempDir()
	unmountAtEnd(t, mp)
	m := startTvix(t, env, "mount", mp)
	big := filepath.Join(mp, filepath.Base(sp), "big")
	m.waitFor(t, filepath.Join(mp, filepath.Base(sp), "x"))
	if _, err := os.ReadFile(big); err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("read of a corrupt file through the mount: %v", err)
	}
	if m.stop(); !strings.Contains(m.log.String(), "do not match their digest") {
		t.Fatalf("the mount's log does not name the corruption:\n%s", m.log.String())
	}
}

// corruptStore imports writeTree's tree (a large file "big", a small one
// x/y/z/small) into a fresh store and flips one byte in the middle of its
// largest pack; it returns the store's env and the store path.
func corruptStore(t *testing.T) ([]string, string) {
	t.Helper()
	data := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + data}
	src := filepath.Join(t.TempDir(), "tree")
	writeTree(t, src, 3<<20)
	out, stderr, err := run(t, env, "store", "import", src)
	if err != nil {
		t.Fatalf("import: %v %s", err, stderr)
	}
	sp := strings.TrimSpace(out)
	packs, _ := filepath.Glob(filepath.Join(data, "tvix", "packs", "packs", "*.pack"))
	if len(packs) == 0 {
		packs, _ = filepath.Glob(filepath.Join(data, "tvix", "packs", "*", "*.pack"))
	}
	var biggest string
	var size int64
	for _, p := range packs {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			biggest, size = p, fi.Size()
		}
	}
	if biggest == "" {
		t.Fatalf("no pack files under %s", data)
	}
	f, err := os.OpenFile(biggest, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, size/2)
	b[0] ^= 0xff
	f.WriteAt(b, size/2)
	f.Close()
	return env, sp
}

// The same flipped byte, read inside a MicroVM over virtio-fs from the
// daemon: the guest's read fails with EIO (a file beside it reads fine),
// and the daemon logs the corrupt chunk.
func TestCorruptPackEIOOverVirtioFS(t *testing.T) {
	testenv.Tool(t, "qemu-system-x86_64", "qemu-system-x86")
	testenv.Tool(t, "busybox", "busybox-static")
	init, err := testenv.TvixInit()
	if err != nil {
		t.Fatal(err)
	}
	env, sp := corruptStore(t)
	sock := filepath.Join(t.TempDir(), "virtiofs.sock")
	d := startTvix(t, env, "daemon", "--virtiofs", sock)
	d.waitFor(t, sock)
	script := fmt.Sprintf("cat %[1]s/x/y/z/small && echo && echo small-ok; if cat %[1]s/big >/dev/null; then echo big-read; else echo big-failed; fi", sp)
	out, stderr, err := run(t, []string{"TVIX_INIT=" + init}, "boot", "--virtiofs-socket", sock, "--accel", "tcg", "--tools", "--run", "/bin/sh", "--", "-c", script)
	if err != nil || !strings.Contains(out, "hello\nsmall-ok") || !strings.Contains(out, "big-failed") {
		t.Fatalf("guest reading the corrupt file: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
	}
	if !strings.Contains(out+stderr, "Input/output error") {
		t.Errorf("guest's cat did not fail with EIO:\n%s\n%s", out, stderr)
	}
	if d.stop(); !strings.Contains(d.log.String(), "do not match their digest") {
		t.Fatalf("the daemon's log does not name the corruption:\n%s", d.log.String())
	}
}
