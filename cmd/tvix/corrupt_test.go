package main

import (
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
