package fs

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/internal/testenv"
	"github.com/tvix-go/tvix/nix/storepath"
)

// hostLibs returns the dynamic loader and the libraries a binary needs, as
// ldd resolves them on this machine.
func hostLibs(t *testing.T, bin string) (loader string, libs []string) {
	t.Helper()
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		testenv.Missing(t, "ldd %s: %v", bin, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/") && strings.Contains(f[0], "ld-linux"):
			loader = f[0]
		}
	}
	if loader == "" {
		testenv.Missing(t, "no dynamic loader in ldd output:\n%s", out)
	}
	return loader, libs
}

// TestExecDynamicFromNixStore mounts a two-path closure (a glibc path and
// a hello path whose interpreter and RUNPATH point into it) at /nix/store
// in the test's private mount namespace and runs hello from it.
func TestExecDynamicFromNixStore(t *testing.T) {
	testenv.FUSE(t)
	if !inPrivateNamespace() {
		testenv.Missing(t, "mounting at /nix/store needs the private mount namespace (run as root)")
	}
	hello := testenv.Tool(t, "hello", "hello")
	patchelf := testenv.Tool(t, "patchelf", "patchelf")
	loader, libs := hostLibs(t, hello)

	glibc := fakeStorePath("glibc-host")
	helloPath := fakeStorePath("hello-host")
	libDir := storepath.StoreDir + "/" + glibc.Basename() + "/lib"

	glibcSrc := filepath.Join(t.TempDir(), "glibc")
	for _, l := range append([]string{loader}, libs...) {
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(glibcSrc+"/lib", 0o755); err != nil {
			t.Fatal(err)
		}
		run(t, "cp", real, filepath.Join(glibcSrc, "lib", filepath.Base(l)))
	}
	helloSrc := filepath.Join(t.TempDir(), "hello")
	writeTree(t, helloSrc, map[string]string{
		"bin/greet":       "->hello",
		"lib":             "->" + libDir,
		"share/doc/NOTES": "a closure of two store paths\n",
	})
	run(t, "cp", hello, filepath.Join(helloSrc, "bin/hello"))
	run(t, patchelf, "--set-interpreter", libDir+"/"+filepath.Base(loader), "--set-rpath", libDir, filepath.Join(helloSrc, "bin/hello"))

	s := newTestStore()
	if got := s.addStorePath(t, glibcSrc, "glibc-host"); got != glibc.Basename() {
		t.Fatalf("store path %s, want %s", got, glibc.Basename())
	}
	s.addStorePath(t, helloSrc, "hello-host")

	if err := os.MkdirAll(storepath.StoreDir, 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := Mount(context.Background(), storepath.StoreDir, s.services(), Options{AllowNonEmpty: true, Logger: testLogger(t, nil)})
	if err != nil {
		t.Fatalf("Mount at %s: %v", storepath.StoreDir, err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("Unmount: %v", err)
		}
	})

	bin := helloPath.String() + "/bin"
	for _, prog := range []string{bin + "/hello", bin + "/greet"} {
		cmd := commandFromMount(prog, "--greeting=hello from /nix/store")
		cmd.Env = []string{"LC_ALL=C"}
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "hello from /nix/store\n" {
			t.Errorf("%s: %q, %v", prog, out, err)
		}
	}
	// The libraries come from the mount, not from the host.
	out, err := commandFromMount(libDir+"/"+filepath.Base(loader), "--list", bin+"/hello").CombinedOutput()
	if err != nil || !strings.Contains(string(out), libDir+"/libc.so.6") {
		t.Errorf("hello does not load libc from the store: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(run(t, "readlink", "-f", helloPath.String()+"/lib/libc.so.6")); got != libDir+"/libc.so.6" {
		t.Errorf("readlink -f through a cross-store-path symlink: %q", got)
	}
}
