package boot

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/tvix-go/tvix/internal/testenv"
	"github.com/ulikunitz/xz"
)

type cpioEntry struct {
	mode uint32
	rdev [2]uint32
	data string
}

// readCPIO parses a newc archive (the test's independent reader).
func readCPIO(t *testing.T, b []byte) map[string]cpioEntry {
	t.Helper()
	out := map[string]cpioEntry{}
	off := 0
	field := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("cpio header at %d: %v", off, err)
		}
		return uint32(v)
	}
	for {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad cpio magic at %d", off)
		}
		mode, size, rmaj, rmin, nsize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+int(nsize)-1])
		off = (off + 110 + int(nsize) + 3) &^ 3
		data := string(b[off : off+int(size)])
		off = (off + int(size) + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out[name] = cpioEntry{mode, [2]uint32{rmaj, rmin}, data}
	}
}

func writeCompressed(t *testing.T, path, content string) {
	t.Helper()
	var buf bytes.Buffer
	switch {
	case strings.HasSuffix(path, ".xz"):
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, content)
		w.Close()
	case strings.HasSuffix(path, ".zst"):
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, content)
		w.Close()
	default:
		buf.WriteString(content)
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fakeModules(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	dep := `kernel/fs/fuse/fuse.ko.xz:
kernel/fs/fuse/virtiofs.ko.zst: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko.xz
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci-legacy-dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci-legacy-dev.ko:
`
	os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644)
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/virtio/virtio_ring.ko\n"), 0o644)
	for _, l := range strings.Split(strings.TrimSpace(dep), "\n") {
		p, _, _ := strings.Cut(l, ":")
		if strings.Contains(p, "virtio_ring") {
			continue // built in: no file
		}
		writeCompressed(t, filepath.Join(dir, p), "ELF of "+moduleName(p))
	}
	return dir
}

func TestResolveModules(t *testing.T) {
	db, err := loadModuleDB(fakeModules(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names []string
		want  []string
	}{
		{[]string{"virtio_mmio", "virtiofs"}, []string{"virtio", "virtio_mmio", "fuse", "virtiofs"}},
		{[]string{"virtio-pci", "virtiofs"}, []string{"virtio", "virtio_pci_legacy_dev", "virtio_pci", "fuse", "virtiofs"}},
		{[]string{"virtio_ring"}, nil},
	}
	for _, tc := range tests {
		files, err := db.resolve(tc.names)
		if err != nil {
			t.Fatalf("%v: %v", tc.names, err)
		}
		var got []string
		for _, f := range files {
			got = append(got, moduleName(f))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%v: load order %v, want %v", tc.names, got, tc.want)
		}
	}
	if _, err := db.resolve([]string{"nosuch"}); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("missing module: %v", err)
	}
	if _, err := loadModuleDB(t.TempDir()); err == nil {
		t.Error("module dir without modules.dep accepted")
	}
}

func TestWriteInitramfs(t *testing.T) {
	dir := t.TempDir()
	initBin := filepath.Join(dir, "init")
	os.WriteFile(initBin, []byte("#!init"), 0o755)
	shell := filepath.Join(dir, "busybox")
	os.WriteFile(shell, []byte("BB"), 0o755)
	var buf bytes.Buffer
	err := WriteInitramfs(&buf, InitramfsSpec{Init: initBin, ModulesDir: fakeModules(t), Modules: []string{"virtio_mmio", "virtiofs"}, Shell: shell})
	if err != nil {
		t.Fatal(err)
	}
	es := readCPIO(t, buf.Bytes())
	if e := es["init"]; e.data != "#!init" || e.mode != cpioFile|0o755 {
		t.Errorf("init entry %+v", e)
	}
	if e := es["dev/console"]; e.mode != cpioChar|0o600 || e.rdev != [2]uint32{5, 1} {
		t.Errorf("dev/console entry %+v", e)
	}
	if e := es["bin/sh"]; e.mode != cpioSymlink|0o777 || e.data != "busybox" {
		t.Errorf("bin/sh entry %+v", e)
	}
	// Compressed modules are stored decompressed, under their module name.
	for _, m := range []string{"fuse", "virtiofs", "virtio", "virtio_mmio"} {
		if e := es["lib/modules/"+m+".ko"]; e.data != "ELF of "+m {
			t.Errorf("module %s: %q", m, e.data)
		}
	}
	if got := es["lib/modules/tvix.order"].data; got != "virtio.ko\nvirtio_mmio.ko\nfuse.ko\nvirtiofs.ko\n" {
		t.Errorf("module order %q", got)
	}
	if _, ok := es["nix/store"]; !ok {
		t.Error("no nix/store directory")
	}
}

func TestCPIOErrors(t *testing.T) {
	c := newCPIOWriter(io.Discard)
	if err := c.file("x", 0o644, 10, strings.NewReader("short")); err == nil {
		t.Error("short file content accepted")
	}
	if err := c.dir("a\x00b", 0o755); err == nil {
		t.Error("name with NUL accepted")
	}
}

func FuzzParseModulesDep(f *testing.F) {
	f.Add("kernel/a.ko: kernel/b.ko.xz\nkernel/b.ko.xz:\n", "a")
	f.Add("a.ko: a.ko\n", "a")
	f.Fuzz(func(t *testing.T, dep, name string) {
		db := &moduleDB{path: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
		if err := db.parseDep(strings.NewReader(dep)); err != nil {
			return
		}
		files, err := db.resolve([]string{name})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, f := range files {
			if seen[f] {
				t.Fatalf("%s loaded twice", f)
			}
			seen[f] = true
		}
	})
}

func TestVersionLess(t *testing.T) {
	if !versionLess("/boot/vmlinuz-6.1.0-9-amd64", "/boot/vmlinuz-6.1.0-10-amd64") {
		t.Error("6.1.0-9 should sort before 6.1.0-10")
	}
	if versionLess("/boot/vmlinuz-6.10.0-1-amd64", "/boot/vmlinuz-6.9.0-1-amd64") {
		t.Error("6.10 should sort after 6.9")
	}
}

func TestDirectBootKernel(t *testing.T) {
	dir := t.TempDir()
	notKernel := filepath.Join(dir, "vmlinuz-x")
	os.WriteFile(notKernel, bytes.Repeat([]byte{0}, 4096), 0o644)
	got, err := directBootKernel(notKernel, filepath.Join(dir, "cache"))
	if err == nil || got != notKernel {
		t.Errorf("non-bzImage: %q, %v; want the file itself and an error", got, err)
	}
	kernel, _, err := findKernel("")
	if err != nil {
		testenv.Missing(t, "%v", err)
	}
	cache := filepath.Join(dir, "cache")
	got, err = directBootKernel(kernel, cache)
	if err != nil {
		t.Skipf("kernel %s cannot be booted directly: %v", kernel, err)
	}
	if !hasPVHNote(got) || filepath.Dir(got) != cache {
		t.Errorf("extracted %s lacks the PVH note or is outside the cache", got)
	}
	again, err := directBootKernel(kernel, cache)
	if err != nil || again != got {
		t.Errorf("second call: %q, %v; want the cached %q", again, err, got)
	}
}
