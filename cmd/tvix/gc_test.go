package main

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tvix-go/tvix/internal/testenv"
)

// dirBytes sums the sizes of the files under dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// randomTree writes files random files of size bytes each under dir.
func randomTree(t *testing.T, rng *rand.Rand, dir string, files, size int) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	for i := range files {
		rng.Read(b)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustRun(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, stderr, err := run(t, env, args...)
	if err != nil {
		t.Fatalf("tvix %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

func verifyClean(t *testing.T, env []string, what string) {
	t.Helper()
	out, stderr, err := run(t, env, append([]string{"store", "verify", "--check-contents"}, storeArg(env)...)...)
	if err != nil || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify %s: %v\n%s%s", what, err, out, stderr)
	}
}

// storeArg is nothing: the tests' store is the XDG default.
func storeArg([]string) []string { return nil }

var freedRE = regexp.MustCompile(`(?:freed|would free) ([0-9.]+) (bytes|kB|MB|GB)`)

// freedBytes reads the figure gc prints.
func freedBytes(t *testing.T, stderr string) float64 {
	t.Helper()
	m := freedRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no freed figure in %q", stderr)
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return f * map[string]float64{"bytes": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[m[2]]
}

// An import killed part way leaves hundreds of megabytes in packs that
// nothing names; gc takes the store back to its live size. (The benchmark,
// scripts/bench-gc, does this with 1 GB.)
func TestGCAfterKilledImportReturnsToLiveSize(t *testing.T) {
	data := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + data}
	rng := rand.New(rand.NewSource(17))
	live := randomTree(t, rng, filepath.Join(t.TempDir(), "live"), 20, 300<<10)
	mustRun(t, env, "store", "import", live)
	// The pack files themselves: index.db keeps its pages when entries go.
	packs := filepath.Join(data, "tvix", "packs", "packs")
	liveSize := dirBytes(t, packs)

	big := randomTree(t, rng, filepath.Join(t.TempDir(), "big"), 16, 16<<20) // 256 MiB
	cmd := exec.Command(tvixBinary(t), "store", "import", big)
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); dirBytes(t, packs) < liveSize+120<<20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the import wrote nothing")
		}
	}
	cmd.Process.Kill()
	if err := cmd.Wait(); err == nil {
		t.Fatal("the import finished before the kill")
	}
	orphaned := dirBytes(t, packs) - liveSize
	if orphaned < 100<<20 {
		t.Fatalf("only %d bytes orphaned", orphaned)
	}
	verifyClean(t, env, "after the kill")
	_, dry, err := run(t, env, "store", "gc", "--dry-run", "--grace", "0")
	if err != nil || freedBytes(t, dry) < float64(orphaned)*0.99 || dirBytes(t, packs)-liveSize != orphaned {
		t.Fatalf("dry run: %v %s", err, dry)
	}
	_, stderr, err := run(t, env, "store", "gc", "--grace", "0")
	if err != nil {
		t.Fatalf("gc: %v %s", err, stderr)
	}
	after := dirBytes(t, packs)
	t.Logf("live %d bytes, %d orphaned by the kill, %d after gc: %s", liveSize, orphaned, after, strings.TrimSpace(stderr))
	if after != liveSize {
		t.Fatalf("packs hold %d bytes after gc, the live size is %d", after, liveSize)
	}
	if f := freedBytes(t, stderr); f < float64(orphaned)*0.99 {
		t.Errorf("gc says it freed %.0f bytes of %d", f, orphaned)
	}
	verifyClean(t, env, "after gc")
	// What the killed import had written is not needed to import it again.
	mustRun(t, env, "store", "import", big)
	verifyClean(t, env, "after importing again")
}

// TestKill9GC kills `tvix store gc` (deleting paths, sweeping, compacting)
// at random points until 10 were killed mid-way; after each kill verify
// --check-contents is clean and every root's closure is still there, and
// a complete gc then brings the packs to what the roots need.
func TestKill9GC(t *testing.T) {
	data := t.TempDir()
	env := []string{"XDG_DATA_HOME=" + data}
	rng := rand.New(rand.NewSource(18))
	rootsFile := filepath.Join(t.TempDir(), "roots")
	var roots []string
	killed, runs := 0, 0
	// The kill lands a random time after the collection first changes
	// the store, within a spread that follows how long the changing
	// takes here: a kill after the end narrows it, one mid-way widens it.
	// (Timing the kill from the process's start missed on a loaded CI
	// host, where start-up and reading the roots varied by more than the
	// collection itself takes: 5 kills mid-way in 150 tries.)
	spread := 20 * time.Millisecond
	for i := 0; killed < 10 && i < 150; i++ {
		runs++
		// A kept path and a junk one imported together share packs: once
		// the junk goes, those packs are compacted.
		keep := randomTree(t, rng, filepath.Join(t.TempDir(), fmt.Sprintf("keep-%d", i)), 40, 24<<10)
		junk := randomTree(t, rng, filepath.Join(t.TempDir(), fmt.Sprintf("junk-%d", i)), 120, 24<<10)
		randomTree(t, rng, filepath.Join(junk, "big"), 3, 3<<20)
		out := strings.Fields(mustRun(t, env, "store", "import", keep, junk))
		roots = append(roots, out[0])
		if err := os.WriteFile(rootsFile, []byte(strings.Join(roots, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := dirBytes(t, data)
		cmd := exec.Command(tvixBinary(t), "store", "gc", "--roots", rootsFile, "--grace", "0", "--compact-below", "0.9")
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		finished := false
	watch:
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			select {
			case err = <-done:
				finished = true
				break watch
			default:
			}
			if dirBytes(t, data) != before {
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		if !finished {
			time.Sleep(time.Duration(rng.Int63n(int64(spread) + 1)))
			cmd.Process.Kill()
			err = <-done
		}
		late := true // finished, or killed with nothing left to do
		switch {
		case err == nil || !strings.Contains(err.Error(), "killed"):
			// It had finished.
		case dirBytes(t, data) == before:
			// killed before it changed anything
			late = false
		default:
			// Mid-way: the collection changed the store, and a dry
			// run still finds work left.
			_, dry, err := run(t, env, "store", "gc", "--dry-run", "--roots", rootsFile, "--grace", "0", "--compact-below", "0.9")
			if err != nil {
				t.Fatalf("dry run after kill %d: %v %s", i, err, dry)
			}
			if freedBytes(t, dry) > 0 {
				killed++
				late = false
			}
		}
		if late {
			spread = max(spread*3/4, time.Millisecond)
		} else {
			spread = min(spread*5/4+time.Millisecond, 500*time.Millisecond)
		}
		verifyClean(t, env, fmt.Sprintf("after kill %d", i))
		ls := mustRun(t, env, "store", "ls")
		for _, r := range roots {
			if !strings.Contains(ls, r) {
				t.Fatalf("root %s went (kill %d)", r, i)
			}
		}
	}
	if killed < 10 {
		t.Fatalf("only %d of %d collections were killed before finishing", killed, runs)
	}
	_, stderr, err := run(t, env, "store", "gc", "--roots", rootsFile, "--grace", "0", "--compact-below", "0.9")
	if err != nil {
		t.Fatalf("final gc: %v %s", err, stderr)
	}
	verifyClean(t, env, "after the final gc")
	if ls := strings.TrimSpace(mustRun(t, env, "store", "ls")); strings.Count(ls, "\n")+1 != len(roots) {
		t.Fatalf("after the final gc the store holds\n%s\nwant the %d roots", ls, len(roots))
	}
	// The roots' files are 40 × 24 KiB each; compaction leaves little more.
	need := int64(len(roots) * 40 * 24 << 10)
	if got := dirBytes(t, filepath.Join(data, "tvix", "packs", "packs")); got > need*11/10 {
		t.Errorf("packs hold %d bytes, the roots need %d", got, need)
	}
	t.Logf("%d of %d collections killed mid-way; %s", killed, runs, strings.TrimSpace(stderr))
}

// TestGCOnDaemonUnderLoad: a daemon imports over gRPC, substitutes from a
// binary cache and serves a FUSE mount while `tvix store gc` (through the
// daemon) and `tvix store delete` run again and again; every path that
// stays reads back whole, and the junk is freed.
func TestGCOnDaemonUnderLoad(t *testing.T) {
	testenv.FUSE(t)
	dir, hello, key := helloCache(t)
	srv, _ := serveCache(t, dir)
	data := t.TempDir()
	sock := filepath.Join(t.TempDir(), "tvix.sock")
	mp := t.TempDir()
	unmountAtEnd(t, mp)
	d := startTvix(t, []string{"XDG_DATA_HOME=" + data}, "daemon", "--listen", "unix://"+sock, "--mount", mp,
		"--substituters", "nix+"+srv.URL, "--trusted-public-keys", key)
	d.waitFor(t, sock)
	env := []string{"TVIX_STORE=" + sock}
	// Uploads over gRPC have no session: the grace covers them (each import
	// here takes well under a second, but the machine may be loaded).
	const grace = "10s"
	rng := rand.New(rand.NewSource(19))
	var (
		mu    sync.Mutex
		kept  = map[string]string{} // store path → source tree
		stop  atomic.Bool
		wg    sync.WaitGroup
		freed atomic.Int64
	)
	fail := func(format string, args ...any) {
		stop.Store(true)
		t.Errorf(format, args...)
	}
	shared := randomTree(t, rng, filepath.Join(t.TempDir(), "shared"), 4, 200<<10)
	wg.Add(1)
	go func() { // uploads: a kept path and a junk one, the junk deleted at once
		defer wg.Done()
		for i := 0; !stop.Load() && i < 40; i++ {
			keep := randomTree(t, rand.New(rand.NewSource(int64(100+i))), filepath.Join(t.TempDir(), fmt.Sprintf("keep-%d", i)), 6, 50<<10)
			junk := randomTree(t, rand.New(rand.NewSource(int64(900+i))), filepath.Join(t.TempDir(), fmt.Sprintf("junk-%d", i)), 6, 300<<10)
			// Both deduplicate against blobs of earlier junk.
			for _, d := range []string{keep, junk} {
				os.Link(filepath.Join(shared, fmt.Sprintf("f%03d", i%4)), filepath.Join(d, "shared"))
			}
			out, stderr, err := run(t, env, "store", "import", keep, junk)
			if err != nil {
				fail("import %d: %v %s", i, err, stderr)
				return
			}
			paths := strings.Fields(out)
			mu.Lock()
			kept[paths[0]] = keep
			mu.Unlock()
			if _, stderr, err := run(t, env, "store", "delete", paths[1]); err != nil {
				fail("delete %s: %v %s", paths[1], err, stderr)
				return
			}
		}
	}()
	wg.Add(1)
	go func() { // reads through the mount, hello first (substituted on lookup)
		defer wg.Done()
		for !stop.Load() {
			if b, err := os.ReadFile(filepath.Join(mp, filepath.Base(hello), "bin", "hello")); err != nil || len(b) == 0 {
				fail("read hello through the mount: %v", err)
				return
			}
			mu.Lock()
			var ps []string
			for p := range kept {
				ps = append(ps, p)
			}
			mu.Unlock()
			for _, p := range ps {
				mu.Lock()
				src := kept[p]
				mu.Unlock()
				for _, f := range []string{"f000", "f005", "shared"} {
					want, _ := os.ReadFile(filepath.Join(src, f))
					got, err := os.ReadFile(filepath.Join(mp, filepath.Base(p), f))
					if err != nil || !bytes.Equal(got, want) {
						fail("read %s/%s through the mount: %v", p, f, err)
						return
					}
				}
			}
		}
	}()
	rounds := 0
	for start := time.Now(); !stop.Load() && time.Since(start) < 30*time.Second; rounds++ {
		_, stderr, err := run(t, env, "store", "gc", "--grace", grace, "--compact-below", "0.8")
		if err != nil {
			fail("gc round %d: %v %s", rounds, err, stderr)
			break
		}
		freed.Add(int64(freedBytes(t, stderr)))
	}
	stop.Store(true)
	wg.Wait()
	if t.Failed() {
		t.Fatalf("daemon log:\n%s", d.log.String())
	}
	verifyClean(t, env, "after the load")
	if freed.Load() == 0 {
		t.Errorf("%d gc rounds under load freed nothing", rounds)
	}
	t.Logf("%d gc rounds under load freed %d bytes; %d paths kept", rounds, freed.Load(), len(kept))
	// Refused through the daemon: hello's dependency is referred to.
	deps := strings.Fields(mustRun(t, env, "store", "query", "--references", hello))
	for _, dep := range deps {
		if dep == hello {
			continue
		}
		if _, stderr, err := run(t, env, "store", "delete", dep); err == nil || !strings.Contains(stderr, "still alive") {
			t.Fatalf("deleting %s, referred to by hello: %v %s", dep, err, stderr)
		}
	}
}

// --max-size through a daemon evicts the least recently used path: the
// daemon records when each path was put or looked up.
func TestGCMaxSizeThroughDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "tvix.sock")
	d := startTvix(t, []string{"XDG_DATA_HOME=" + t.TempDir()}, "daemon", "--listen", "unix://"+sock)
	d.waitFor(t, sock)
	env := []string{"TVIX_STORE=" + sock}
	rng := rand.New(rand.NewSource(20))
	var paths []string
	for i := range 3 {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond) // access times are in seconds
		}
		src := randomTree(t, rng, filepath.Join(t.TempDir(), fmt.Sprintf("p%d", i)), 2, 100<<10)
		paths = append(paths, strings.TrimSpace(mustRun(t, env, "store", "import", src)))
	}
	ls := mustRun(t, env, "store", "ls")
	var total uint64
	for _, line := range strings.Split(strings.TrimSpace(ls), "\n") {
		f := strings.Fields(line)
		n, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			t.Fatalf("store ls line %q", line)
		}
		total += n
	}
	out, stderr, err := run(t, env, "store", "gc", "--max-size", strconv.FormatUint(total-1, 10), "--grace", "0")
	if err != nil || strings.TrimSpace(out) != paths[0] {
		t.Fatalf("gc --max-size evicted %q (want %s): %v %s", out, paths[0], err, stderr)
	}
	verifyClean(t, env, "after eviction")
}
