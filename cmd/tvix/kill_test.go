package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/testenv"
	"github.com/tvix-go/tvix/nix/narinfo"
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
	out, stderr, err := run(t, env, "store", "verify", "--check-contents")
	if err != nil || !strings.Contains(out, fmt.Sprintf("checked %d paths", runs)) || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("final verify: %v\n%s%s; want %d paths, no problems", err, out, stderr, runs)
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

// serveSlowCache serves a binary cache directory with NAR bodies sent at
// about rate bytes a second, so that kills land while they download.
func serveSlowCache(t *testing.T, dir string, rate int) *httptest.Server {
	fs := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/nar/") {
			w = &slowWriter{ResponseWriter: w, rate: rate}
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

type slowWriter struct {
	http.ResponseWriter
	rate int
}

func (s *slowWriter) Write(p []byte) (int, error) {
	const step = 64 << 10
	n := 0
	for len(p) > 0 {
		k := min(len(p), step)
		m, err := s.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		time.Sleep(time.Duration(k) * time.Second / time.Duration(s.rate))
		p = p[k:]
	}
	return n, nil
}

// cachePaths lists the store paths a binary cache directory holds.
func cachePaths(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ni, err := narinfo.Parse(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, ni.StorePath.String())
	}
	sort.Strings(out)
	if len(out) < 3 {
		t.Fatalf("cache %s holds %d paths, want hello's closure and the unrelated ones", dir, len(out))
	}
	return out
}

// largestFile is the path in paths that is the biggest regular file (the
// cache's unrelated 32 MB one), and its sha256 as Nix has it.
func largestFile(t *testing.T, paths []string) (string, [32]byte) {
	t.Helper()
	var best string
	var size int64
	for _, p := range paths {
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() && fi.Size() > size {
			best, size = p, fi.Size()
		}
	}
	if best == "" {
		t.Fatal("no single-file path in the cache")
	}
	b, err := os.ReadFile(best)
	if err != nil {
		t.Fatal(err)
	}
	return best, sha256.Sum256(b)
}

// TestKill9Substitution kills `tvix store copy --from` a binary cache
// made by real Nix at random points, 20 times mid-way, each in a store of
// its own; then a daemon whose FUSE read of a path makes it substitute
// the path, 20 times during the read. After each kill the store verifies
// clean with --check-contents (no path without its closure, no blob
// half there), and the copy, or the read through a restarted daemon,
// succeeds.
func TestKill9Substitution(t *testing.T) {
	testenv.FUSE(t)
	dir, hello, key := helloCache(t)
	paths := cachePaths(t, dir)
	large, largeSum := largestFile(t, paths)
	// 32 MB at 24 MB/s: long enough for most random kills to land in it.
	srv := serveSlowCache(t, dir, 24<<20)
	from := "nix+" + srv.URL
	rng := rand.New(rand.NewSource(16))
	stores := map[int][]string{}
	store := func(i int) []string {
		if stores[i] == nil {
			stores[i] = []string{"XDG_DATA_HOME=" + t.TempDir()}
		}
		return stores[i]
	}
	copyArgs := append([]string{"store", "copy", "--from", from, "--trusted-public-keys", key}, paths...)
	wantClosure := strings.Fields(nixtest.Text(t, "nix-store", "-qR", hello))
	sort.Strings(wantClosure)
	checkCopied := func(env []string, i int) {
		t.Helper()
		got, stderr, err := run(t, env, "store", "query", "--requisites", hello)
		if err != nil || strings.Join(strings.Fields(got), " ") != strings.Join(wantClosure, " ") {
			t.Fatalf("closure of hello after rerun %d: %v %s%s, want %v", i, err, got, stderr, wantClosure)
		}
		verifyClean(t, env, fmt.Sprintf("after rerun %d", i))
	}

	// How long a whole copy takes here: kills land in its first half,
	// where most of the downloading and ingesting is (a later kill mostly
	// finds the work done, and only makes the matrix longer).
	begin := time.Now()
	if _, stderr, err := run(t, store(-1), copyArgs...); err != nil {
		t.Fatalf("copy: %v %s", err, stderr)
	}
	span := time.Since(begin)
	checkCopied(store(-1), -1)
	t.Logf("a whole copy takes %s", span)

	killMatrix(t, "copies", store, 20, 60, func(i int) bool {
		cmd := exec.Command(tvixBinary(t), copyArgs...)
		cmd.Env = append(os.Environ(), store(i)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return killAfter(cmd, time.Duration(rng.Int63n(int64(span/2))))
	}, func(i int) {
		if _, stderr, err := run(t, store(i), copyArgs...); err != nil {
			t.Fatalf("copy again after kill %d: %v %s", i, err, stderr)
		}
		checkCopied(store(i), i)
	})

	// The daemon: a read through its mount substitutes the path.
	read := func(mp string) error {
		if _, err := os.ReadDir(filepath.Join(mp, filepath.Base(hello), "bin")); err != nil {
			return err
		}
		f, err := os.Open(filepath.Join(mp, filepath.Base(large)))
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		if !bytes.Equal(h.Sum(nil), largeSum[:]) {
			return fmt.Errorf("%s read through the mount differs from Nix's", large)
		}
		return nil
	}
	startDaemon := func(env []string, mp string) *tvixProc {
		t.Helper()
		d := startTvix(t, env, "daemon", "--mount", mp, "--substituters", from, "--trusted-public-keys", key)
		d.waitForFunc(t, "mount at "+mp, func() bool { return isMounted(mp) })
		return d
	}
	mounts := map[int]string{}
	killMatrix(t, "substituting reads", func(i int) []string { return store(100 + i) }, 20, 60, func(i int) bool {
		mp := t.TempDir()
		mounts[i] = mp
		unmountAtEnd(t, mp)
		d := startDaemon(store(100+i), mp)
		done := make(chan error, 1)
		go func() { done <- read(mp) }()
		killAfter(d.cmd, time.Duration(rng.Int63n(int64(span/2))))
		err := <-done
		exec.Command("umount", "-l", mp).Run()
		return err != nil
	}, func(i int) {
		d := startDaemon(store(100+i), mounts[i])
		if err := read(mounts[i]); err != nil {
			t.Fatalf("read through a restarted daemon after kill %d: %v\n%s", i, err, d.log.String())
		}
		if err := stopOrDump(d); err != nil {
			t.Fatalf("daemon: %v\n%s", err, d.log.String())
		}
		verifyClean(t, store(100+i), fmt.Sprintf("after the read %d", i))
	})
}

// stopOrDump stops p as Ctrl-C does; if it has not exited within 15 s it
// is made to print its goroutines (SIGQUIT) into its log before it dies.
func stopOrDump(p *tvixProc) error {
	p.cmd.Process.Signal(os.Interrupt)
	stopped := make(chan struct{})
	go func() {
		select {
		case <-stopped:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Signal(syscall.SIGQUIT)
		}
	}()
	err := p.stop()
	close(stopped)
	return err
}
