package main

import (
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tvix-go/tvix/internal/nixtest"
)

// TestKill9Import kills `tvix store import` at random points until it has
// been killed mid-way 20 times; after each kill `tvix store verify
// --check-contents` must find the store sound, and the import must
// succeed when run again.
func TestKill9Import(t *testing.T) {
	data := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + data}
	rng := rand.New(rand.NewSource(14))
	tree := func(i int) string {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("tree-%d", i))
		for j := range 12 {
			b := make([]byte, 1<<20+rng.Intn(1<<20))
			rng.Read(b)
			p := filepath.Join(dir, fmt.Sprintf("d%d", j%2), fmt.Sprintf("big-%d", j))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for j := range 100 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("small-%d", j)), []byte(fmt.Sprintf("%d/%d %x", i, j, rng.Int63())), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	killed, runs := 0, 0
	for i := 0; killed < 20 && i < 60; i++ {
		runs++
		src := tree(i)
		cmd := exec.Command(tvixBinary(t), "store", "import", src)
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(10+rng.Intn(120)) * time.Millisecond)
		if cmd.Process.Kill() == nil {
			if err := cmd.Wait(); err != nil && strings.Contains(err.Error(), "killed") {
				killed++
			}
		}
		if out, stderr, err := run(t, env, "store", "verify", "--check-contents"); err != nil {
			t.Fatalf("verify after kill %d: %v\n%s%s", i, err, out, stderr)
		}
		if out, stderr, err := run(t, env, "store", "import", src); err != nil {
			t.Fatalf("import again after kill %d: %v\n%s%s", i, err, out, stderr)
		}
	}
	if killed < 20 {
		t.Fatalf("only %d of %d imports were killed before finishing; the kill points are too late", killed, runs)
	}
	out, stderr, err := run(t, env, "store", "verify", "--check-contents")
	if err != nil || !strings.Contains(out, fmt.Sprintf("checked %d paths", runs)) || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("final verify: %v\n%s%s", err, out, stderr)
	}
	t.Logf("%d of %d imports killed mid-way", killed, runs)
}

// TestKill9NARUpload kills `tvix nar-bridge` with -9 while `nix copy --to`
// uploads to it, until 20 uploads were cut off; after each kill the store
// verifies clean, and the copy succeeds against a restarted bridge. The
// paths are then fetched back whole with `nix copy --from`.
func TestKill9NARUpload(t *testing.T) {
	nixtest.Require(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + data}
	rng := rand.New(rand.NewSource(15))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	url := "http://" + addr
	// Uncompressed: xz would spend seconds per path in Nix before a byte
	// is sent.
	to := url + "?compression=none"
	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(tvixBinary(t), "nar-bridge", "--listen", addr, "--http-allow-anonymous-uploads")
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if resp, err := http.Get(url + "/nix-cache-info"); err == nil {
				resp.Body.Close()
				return cmd
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("nar-bridge did not start")
			}
		}
	}
	var paths []string
	cut := 0
	for i := 0; cut < 20 && i < 40; i++ {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("upload-%d", i))
		os.MkdirAll(dir, 0o755)
		for j := range 3 {
			b := make([]byte, 2<<20)
			rng.Read(b)
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", j)), b, 0o644)
		}
		p := nixtest.Text(t, "nix-store", "--add", dir)
		paths = append(paths, p)
		bridge := start()
		// One attempt: Nix retries a failed upload with backoff, which
		// here would only wait for a bridge that is gone.
		copyCmd := nixtest.Command("nix", "copy", "--option", "download-attempts", "1", "--option", "connect-timeout", "1", "--to", to, p)
		if err := copyCmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Intn(100)) * time.Millisecond)
		bridge.Process.Kill()
		bridge.Wait()
		if copyCmd.Wait() != nil {
			cut++
		}
		if out, stderr, err := run(t, env, "store", "verify", "--check-contents"); err != nil {
			t.Fatalf("verify after kill %d: %v\n%s%s", i, err, out, stderr)
		}
		bridge = start()
		_, err := nixtest.RunErr("nix", "copy", "--to", to, p)
		bridge.Process.Signal(os.Interrupt)
		bridge.Wait()
		if err != nil {
			t.Fatalf("nix copy again after kill %d: %v", i, err)
		}
	}
	if cut < 20 {
		t.Fatalf("only %d uploads were cut off by the kill", cut)
	}
	bridge := start()
	defer func() { bridge.Process.Signal(os.Interrupt); bridge.Wait() }()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	root := t.TempDir()
	args := append([]string{"copy", "--from", url, "--to", "local?root=" + root, "--option", "require-sigs", "false"}, paths...)
	nixtest.Run(t, "nix", args...)
	t.Logf("%d uploads cut off by kill -9, %d paths fetched back", cut, len(paths))
}
