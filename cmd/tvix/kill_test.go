package main

import (
	"fmt"
	"math/rand"
	"net"
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
	var src string
	runs := killMatrix(t, "imports", same(env), 20, 60, func(i int) bool {
		src = tree(i)
		cmd := exec.Command(tvixBinary(t), "store", "import", src)
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return killAfter(cmd, time.Duration(10+rng.Intn(120))*time.Millisecond)
	}, func(i int) {
		if out, stderr, err := run(t, env, "store", "import", src); err != nil {
			t.Fatalf("import again after kill %d: %v\n%s%s", i, err, out, stderr)
		}
	})
	out := verifyClean(t, env, "at the end")
	if !strings.Contains(out, fmt.Sprintf("checked %d paths", runs)) {
		t.Fatalf("final verify: %s, want %d paths", out, runs)
	}
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
	start := func() *tvixProc {
		t.Helper()
		p := startTvix(t, env, "nar-bridge", "--listen", addr, "--http-allow-anonymous-uploads")
		waitHTTP(t, p, url)
		return p
	}
	var paths []string
	killMatrix(t, "uploads", same(env), 20, 40, func(i int) bool {
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
		killAfter(bridge.cmd, time.Duration(rng.Intn(100))*time.Millisecond)
		return copyCmd.Wait() != nil
	}, func(i int) {
		bridge := start()
		_, err := nixtest.RunErr("nix", "copy", "--to", to, paths[len(paths)-1])
		bridge.stop()
		if err != nil {
			t.Fatalf("nix copy again after kill %d: %v", i, err)
		}
	})
	start()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	root := t.TempDir()
	args := append([]string{"copy", "--from", url, "--to", "local?root=" + root, "--option", "require-sigs", "false"}, paths...)
	nixtest.Run(t, "nix", args...)
	t.Logf("%d paths fetched back", len(paths))
}

// killMatrix runs try(i) until want of the tries were cut off by a kill
// -9 (at most maxRuns tries); after each, the store at env must verify
// clean with --check-contents, and rerun(i) must make the operation
// succeed. env(i) is the environment naming try i's store. It returns how
// many tries ran.
func killMatrix(t *testing.T, what string, env func(i int) []string, want, maxRuns int, try func(i int) (cut bool), rerun func(i int)) int {
	t.Helper()
	cut, runs := 0, 0
	for i := 0; cut < want && i < maxRuns; i++ {
		runs++
		if try(i) {
			cut++
		}
		verifyClean(t, env(i), fmt.Sprintf("after kill %d", i))
		rerun(i)
	}
	if cut < want {
		t.Fatalf("only %d of %d %s were cut off by the kill; the kill points are too late", cut, runs, what)
	}
	t.Logf("%d of %d %s cut off by kill -9", cut, runs, what)
	return runs
}

// verifyClean runs tvix store verify --check-contents on the store at env
// and returns its output.
func verifyClean(t *testing.T, env []string, when string) string {
	t.Helper()
	out, stderr, err := run(t, env, "store", "verify", "--check-contents")
	if err != nil || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify %s: %v\n%s%s", when, err, out, stderr)
	}
	return out
}

// killAfter kills cmd with -9 after d and says whether that cut it off
// (it had not exited by itself).
func killAfter(cmd *exec.Cmd, d time.Duration) bool {
	time.Sleep(d)
	if cmd.Process.Kill() != nil {
		cmd.Wait()
		return false
	}
	err := cmd.Wait()
	return err != nil && strings.Contains(err.Error(), "killed")
}

// same is the env of a matrix whose tries share one store.
func same(env []string) func(int) []string { return func(int) []string { return env } }
