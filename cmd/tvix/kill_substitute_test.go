package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
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

	// How long a whole copy takes here, for the range of kill points.
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
		return killAfter(cmd, time.Duration(rng.Int63n(int64(span))))
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
		killAfter(d.cmd, time.Duration(rng.Int63n(int64(span))))
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
