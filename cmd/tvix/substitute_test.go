package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/testenv"
)

var (
	helloCacheOnce sync.Once
	helloCacheDir  string
	helloPath      string
	helloKey       string
	helloCacheErr  error
)

// helloCache builds the hello closure with real Nix and writes a signed
// binary cache with unrelated paths besides it, once per test run.
func helloCache(t *testing.T) (dir, hello, pubkey string) {
	t.Helper()
	nixtest.Require(t)
	helloCacheOnce.Do(func() {
		base, err := os.MkdirTemp("", "tvix-hello-cache-")
		if err != nil {
			helloCacheErr = err
			return
		}
		helloCacheDir = filepath.Join(base, "cache")
		out, err := exec.Command("../../scripts/hello/make-cache", helloCacheDir).Output()
		if err != nil {
			helloCacheErr = err
			return
		}
		f := strings.Fields(string(out))
		helloPath, helloKey = f[0], f[1]
	})
	if helloCacheErr != nil {
		t.Fatalf("make hello cache: %v", helloCacheErr)
	}
	return helloCacheDir, helloPath, helloKey
}

// countingCache serves a cache directory and counts NAR downloads.
type countingCache struct {
	mu   sync.Mutex
	nars []string
}

func serveCache(t *testing.T, dir string) (*httptest.Server, *countingCache) {
	cc := &countingCache{}
	fs := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/nar/") {
			cc.mu.Lock()
			cc.nars = append(cc.nars, r.URL.Path)
			cc.mu.Unlock()
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, cc
}

func (c *countingCache) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nars)
}

func TestStoreCopyFromBinaryCache(t *testing.T) {
	dir, hello, key := helloCache(t)
	srv, cc := serveCache(t, dir)
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}

	// A wrong key is refused and nothing is recorded.
	_, stderr, err := run(t, env, "store", "copy", "--from", "nix+"+srv.URL, "--trusted-public-keys", "other:zEN3cSpnLXFKELfQRCPfT/DLW1+VFJWGaklJrxLNlSw=", hello)
	if err == nil || !strings.Contains(stderr, "no signature by a trusted key") {
		t.Fatalf("copy with an untrusted key: %v %s", err, stderr)
	}
	if out, _, _ := run(t, env, "store", "ls"); strings.TrimSpace(out) != "" {
		t.Fatalf("refused copy left paths: %s", out)
	}
	// Unsigned is refused without keys.
	if _, stderr, err := run(t, env, "store", "copy", "--from", "nix+"+srv.URL, hello); err == nil || !strings.Contains(stderr, "trusted-public-keys") {
		t.Fatalf("copy without keys: %v %s", err, stderr)
	}

	if _, stderr, err := run(t, env, "store", "copy", "--from", "nix+"+srv.URL, "--trusted-public-keys", key, hello); err != nil {
		t.Fatalf("copy: %v %s", err, stderr)
	}
	if n := cc.count(); n != 2 {
		t.Fatalf("fetched %d NARs (%v), want the 2 of hello's closure", n, cc.nars)
	}
	got, _, err := run(t, env, "store", "query", "--requisites", hello)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(nixtest.Text(t, "nix-store", "-qR", hello))
	sort.Strings(want)
	if strings.Join(strings.Fields(got), " ") != strings.Join(want, " ") {
		t.Fatalf("closure %q, nix-store -qR says %q", got, want)
	}
	// Rendered back, each path is the NAR Nix has.
	for _, p := range want {
		nar, _, err := run(t, env, "store", "dump", p)
		if err != nil || nar != string(nixtest.Run(t, "nix-store", "--dump", p)) {
			t.Fatalf("NAR of %s differs from nix-store --dump", p)
		}
	}
	if _, stderr, err := run(t, env, "store", "verify", "--check-contents"); err != nil {
		t.Fatalf("verify: %v %s", err, stderr)
	}
}

// TestMountSubstitutesLazily: an empty daemon with a binary cache upstream
// fetches a path when the mount looks it up, with its closure (as Nix, a
// path is recorded only after its references), and nothing before.
func TestMountSubstitutesLazily(t *testing.T) {
	testenv.FUSE(t)
	dir, hello, key := helloCache(t)
	srv, cc := serveCache(t, dir)
	mp := t.TempDir()
	unmountAtEnd(t, mp)
	startTvix(t, []string{"XDG_DATA_HOME=" + t.TempDir()}, "daemon", "--mount", mp,
		"--substituters", "nix+"+srv.URL, "--trusted-public-keys", key)
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(b), " "+mp+" ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mount did not appear")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := cc.count(); n != 0 {
		t.Fatalf("fetched %d NARs before any lookup", n)
	}
	entries, err := os.ReadDir(filepath.Join(mp, filepath.Base(hello), "bin"))
	if err != nil || len(entries) != 1 || entries[0].Name() != "hello" {
		t.Fatalf("ls bin of %s = %v, %v", hello, entries, err)
	}
	if n := cc.count(); n != 2 {
		t.Fatalf("looking up hello fetched %d NARs (%v), want the 2 of hello's closure", n, cc.nars)
	}
}

// TestStoreCopySeededByExpression: the hello expression itself names what
// to substitute; no store path is typed.
func TestStoreCopySeededByExpression(t *testing.T) {
	dir, hello, key := helloCache(t)
	srv, _ := serveCache(t, dir)
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	expr, _ := filepath.Abs("../../scripts/hello/hello.nix")
	if _, stderr, err := run(t, env, "store", "copy", "--from", "nix+"+srv.URL, "--trusted-public-keys", key, expr); err != nil {
		t.Fatalf("copy by file: %v %s", err, stderr)
	}
	got, _, err := run(t, env, "store", "query", "--requisites", hello)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(nixtest.Text(t, "nix-store", "-qR", hello))
	sort.Strings(want)
	if strings.Join(strings.Fields(got), " ") != strings.Join(want, " ") {
		t.Fatalf("closure %q, nix-store -qR says %q", got, want)
	}
	env2 := []string{"XDG_DATA_HOME=" + t.TempDir()}
	if _, stderr, err := run(t, env2, "store", "copy", "--from", "nix+"+srv.URL, "--trusted-public-keys", key, "-E", "import "+expr); err != nil {
		t.Fatalf("copy by -E: %v %s", err, stderr)
	}
	if out, _, _ := run(t, env2, "store", "query", "--requisites", hello); strings.Join(strings.Fields(out), " ") != strings.Join(want, " ") {
		t.Fatalf("closure by -E %q", out)
	}
}
