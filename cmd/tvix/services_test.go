package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/store/registry"
)

func TestStoreFlagSetsAllThreeAndServiceFlagsOverride(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	none := func(serviceFlag) (string, bool) { return "", false }
	dir := filepath.Join(t.TempDir(), "store")
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	daemonAddrs := registry.Addrs{Blob: "grpc+unix://" + sock, Directory: "grpc+unix://" + sock, PathInfo: "grpc+unix://" + sock}
	for _, c := range []struct {
		store string
		want  registry.Addrs
	}{
		{"", defaultAddrs(dataDir())},
		{dir, defaultAddrs(dir)},
		{"unix://" + sock, daemonAddrs},
		{"grpc+unix://" + sock, daemonAddrs},
		{sock, daemonAddrs},
		{"grpc+http://h:1", registry.Addrs{Blob: "grpc+http://h:1", Directory: "grpc+http://h:1", PathInfo: "grpc+http://h:1"}},
		{"memory://", registry.Addrs{Blob: "memory://", Directory: "memory://", PathInfo: "memory://"}},
	} {
		got, err := resolveAddrs(c.store, none)
		if err != nil || got != c.want {
			t.Errorf("--store %q: %+v, %v; want %+v", c.store, got, err, c.want)
		}
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("--store DIR did not create %s: %v", dir, err)
	}
	got, err := resolveAddrs("unix://"+sock, func(f serviceFlag) (string, bool) {
		return "memory://", f.name == "blob-service-addr"
	})
	if want := (registry.Addrs{Blob: "memory://", Directory: daemonAddrs.Directory, PathInfo: daemonAddrs.PathInfo}); err != nil || got != want {
		t.Errorf("--store with --blob-service-addr: %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"bbolt:///x.db", "nix+https://cache.nixos.org", sock + "x/.."} {
		if bad == sock+"x/.." {
			f := filepath.Join(t.TempDir(), "file")
			os.WriteFile(f, nil, 0o644)
			bad = f
		}
		if _, err := resolveAddrs(bad, none); err == nil || !strings.Contains(err.Error(), "--store") {
			t.Errorf("--store %q: want an error naming --store, got %v", bad, err)
		}
	}
}

// TestStoreEnvReachesDaemon: TVIX_STORE names a daemon for a second
// process, as the README shows.
func TestStoreEnvReachesDaemon(t *testing.T) {
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	sock := filepath.Join(t.TempDir(), "tvix.sock")
	d := startTvix(t, env, "daemon", "--listen", "unix://"+sock)
	d.waitFor(t, sock)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	remote := append(env, "TVIX_STORE=unix://"+sock)
	out, stderr, err := run(t, remote, "castore", "import", src)
	if err != nil {
		t.Fatalf("import via TVIX_STORE: %v %s", err, stderr)
	}
	digest := strings.Fields(out)[2]
	if out, stderr, err := run(t, env, "castore", "ls", digest, "--store", sock); err != nil || !strings.Contains(out, "f\tfile") {
		t.Fatalf("ls via --store SOCKET: %q %s %v", out, stderr, err)
	}
}
