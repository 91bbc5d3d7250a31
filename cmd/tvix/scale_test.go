package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/blobstore"
	"github.com/tvix-go/tvix/castore/chunker"
	"github.com/tvix-go/tvix/castore/s3blob"
	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/scaletest"
	"github.com/tvix-go/tvix/internal/testenv"
)

// scaleHost is one daemon of a scale-out test: a network namespace of its
// own, reaching the shared S3 server and PostgreSQL over its link, with a
// composition file naming them and nar-bridge on its own loopback.
type scaleHost struct {
	*scaletest.Host
	name, config, mount string
	// nixCache is the XDG_CACHE_HOME of nix commands run here: every
	// daemon is http://127.0.0.1:8080 in its own namespace, and Nix's
	// narinfo cache, keyed by URL, must not mix them up.
	nixCache string
	daemon   *tvixProc
}

const scaleHTTP = "127.0.0.1:8080"

// sharedStoreConfig writes the composition file of a daemon of a store
// on the S3 server and PostgreSQL.
func sharedStoreConfig(t *testing.T, s3, pg string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "store.toml")
	cfg := fmt.Sprintf(`
[blobservices.root]
type = "url"
url = %q
[directoryservices.root]
type = "url"
url = %q
[pathinfoservices.root]
type = "url"
url = %q
`, s3, pg, pg)
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newScaleHosts(t *testing.T, s3, pg string, names ...string) []*scaleHost {
	t.Helper()
	var hosts []*scaleHost
	for _, name := range names {
		h := &scaleHost{Host: scaletest.NewHost(t), name: name, nixCache: t.TempDir()}
		h.Reach(t, os.Getenv("TVIX_S3_PORT"))
		h.Reach(t, os.Getenv("TVIX_PG_PORT"))
		// The same servers, reached over this host's link.
		at := func(raw string) string { return strings.ReplaceAll(raw, "127.0.0.1", h.HostIP) }
		h.config = sharedStoreConfig(t, at(s3), at(pg))
		hosts = append(hosts, h)
	}
	return hosts
}

// start runs the daemon in the host's namespace and waits until its
// nar-bridge answers.
func (h *scaleHost) start(t *testing.T, extra ...string) {
	t.Helper()
	args := append([]string{"netns", "exec", h.NS, tvixBinary(t), "daemon", "--store-config", h.config,
		"--http-listen", scaleHTTP, "--http-allow-anonymous-uploads"}, extra...)
	p := &tvixProc{cmd: exec.Command("ip", args...)}
	p.cmd.Env = os.Environ()
	// ip execs tvix: a test that dies (a timeout) takes its daemons along.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stderr = &p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop() })
	h.daemon = p
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if h.Command("curl", "-sf", "-o", "/dev/null", "http://"+scaleHTTP+"/nix-cache-info").Run() == nil {
			return
		}
		if time.Now().After(deadline) || p.cmd.ProcessState != nil {
			t.Fatalf("daemon %s did not start:\n%s", h.name, p.log.String())
		}
	}
}

// mounted is where a file of the daemon's FUSE mount is seen from here:
// ip netns exec gives the daemon a mount namespace of its own, which
// /proc/PID/root looks into.
func (h *scaleHost) mounted(parts ...string) string {
	return filepath.Join(append([]string{"/proc", fmt.Sprint(h.daemon.cmd.Process.Pid), "root", h.mount}, parts...)...)
}

// nixCommand is nix in the host's namespace.
func (h *scaleHost) nixCommand(args ...string) *exec.Cmd {
	cmd := nixtest.Command("ip", append([]string{"netns", "exec", h.NS, "nix"}, args...)...)
	cmd.Env = append(cmd.Env, "XDG_CACHE_HOME="+h.nixCache)
	return cmd
}

func (h *scaleHost) nix(args ...string) ([]byte, error) {
	cmd := h.nixCommand(args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("nix %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (h *scaleHost) copyTo(paths ...string) error {
	_, err := h.nix(append([]string{"copy", "--to", "http://" + scaleHTTP + "?compression=none"}, paths...)...)
	return err
}

// copyFrom fetches paths into a fresh store; Nix checks each NAR's hash.
func (h *scaleHost) copyFrom(t *testing.T, paths ...string) error {
	_, err := h.nix(append([]string{"copy", "--from", "http://" + scaleHTTP, "--to", "local?root=" + t.TempDir(),
		"--option", "require-sigs", "false", "--option", "narinfo-cache-negative-ttl", "0"}, paths...)...)
	return err
}

// addTree makes a store path of files with the given contents.
func addTree(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	os.MkdirAll(dir, 0o755)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return nixtest.Text(t, "nix-store", "--add", dir)
}

func randomData(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	rng.Read(b)
	return b
}

// chunkSet is the chunks tvix cuts data into.
func chunkSet(into map[castore.Digest]bool, data []byte) {
	cdc := chunker.MustNew(chunker.Default)
	for len(data) > 0 {
		n := cdc.Cut(data)
		into[castore.HashBlob(data[:n])] = true
		data = data[n:]
	}
}

func digestFromHex(s string) (castore.Digest, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return castore.Digest{}, err
	}
	return castore.DigestFromBytes(b)
}

func openBucket(t *testing.T, s3 string) *s3blob.Bucket {
	t.Helper()
	u, _ := url.Parse(s3)
	cfg, err := s3blob.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3blob.NewBucket(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cutUpload starts an upload to h of a new path, a 48 MB file beside
// shared, and kills h's daemon (kill -9) once the upload is under way: a
// chunk of the file, some way in, is in the bucket. It returns the path,
// the chunks of the file's first 8 MB, and whether the upload failed.
// The daemon stays down.
func cutUpload(t *testing.T, h *scaleHost, bucket *s3blob.Bucket, rng *rand.Rand, shared []byte) (string, map[castore.Digest]bool, bool) {
	t.Helper()
	big := randomData(rng, 48<<20)
	w := addTree(t, map[string][]byte{"big": big, "shared": shared})
	up := h.nixCommand("copy", "--option", "download-attempts", "1", "--to", "http://"+scaleHTTP+"?compression=none", w)
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	early := map[castore.Digest]bool{}
	chunkSet(early, big[:8<<20])
	waitForChunks(t, bucket, early, 1)
	h.daemon.cmd.Process.Kill()
	h.daemon.cmd.Wait()
	return w, early, up.Wait() != nil
}

// objectTimes is every object in the bucket with its modification time.
func objectTimes(t *testing.T, b *s3blob.Bucket) map[string]time.Time {
	t.Helper()
	times := map[string]time.Time{}
	for o, err := range b.List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		times[o.Key] = o.Modified
	}
	return times
}

// waitForChunks waits until at least n of chunks are in the bucket.
func waitForChunks(t *testing.T, b *s3blob.Bucket, chunks map[castore.Digest]bool, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		found := 0
		for d := range chunks {
			if ok, _ := b.Exists(context.Background(), blobstore.ObjectKey(blobstore.ChunkObjects, d)); ok {
				found++
			}
		}
		if found >= n {
			return
		}
	}
	t.Fatal("the upload did not start within 30 s")
}

// bucketChecks lists the chunks in the test's prefix and checks that every
// chunk list names only chunks that are there: no blob is half-visible.
func bucketChecks(t *testing.T, s3 string) map[castore.Digest]bool {
	t.Helper()
	ctx := context.Background()
	u, _ := url.Parse(s3)
	cfg, err := s3blob.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3blob.NewBucket(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	chunks := map[castore.Digest]bool{}
	var manifests []string
	for o, err := range b.List(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		key := o.Key
		d, err := digestFromHex(filepath.Base(key))
		if err != nil {
			t.Fatalf("bucket key %s: %v", key, err)
		}
		switch {
		case strings.HasPrefix(key, blobstore.ChunkObjects+"/"):
			chunks[d] = true
		case strings.HasPrefix(key, blobstore.BlobObjects+"/"):
			manifests = append(manifests, key)
		}
	}
	store, err := s3blob.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, key := range manifests {
		d, _ := digestFromHex(filepath.Base(key))
		list, err := store.Chunks(ctx, d)
		if err != nil {
			t.Fatalf("chunk list %s: %v", key, err)
		}
		for _, c := range list {
			if !chunks[c.Digest] {
				t.Fatalf("blob %s is visible but its chunk %s is not stored", d, c.Digest)
			}
		}
	}
	return chunks
}

// Three daemons, each in its own network namespace, share one store on
// the S3 server and PostgreSQL: what is uploaded to one is fetched from
// another and read through the FUSE mount of the third; overlapping
// uploads to two of them at once store each chunk once; a daemon killed
// mid-upload leaves nothing half-visible; restarts of the S3 server and
// of PostgreSQL during traffic cost retries, not errors or wrong bytes.
func TestScaleOutThreeDaemons(t *testing.T) {
	nixtest.Require(t)
	testenv.FUSE(t)
	testenv.Tool(t, "curl", "curl")
	s3, pg := scaletest.S3URL(t), scaletest.PGURL(t)
	hosts := newScaleHosts(t, s3, pg, "a", "b", "c")
	a, b, c := hosts[0], hosts[1], hosts[2]
	c.mount = t.TempDir()
	start := time.Now()
	step := func(what string) {
		t.Logf("%5.1f s: %s", time.Since(start).Seconds(), what)
	}
	a.start(t)
	b.start(t)
	c.start(t, "--mount", c.mount)
	step("three daemons up")

	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	shared := randomData(rng, 3<<20)
	own := [][]byte{randomData(rng, 2<<20), randomData(rng, 2<<20), randomData(rng, 2<<20)}
	var paths []string
	for i, data := range own {
		paths = append(paths, addTree(t, map[string][]byte{"shared": shared, fmt.Sprintf("own%d", i): data}))
	}
	x, y, z := paths[0], paths[1], paths[2]

	// Overlapping uploads to A and B at once.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = a.copyTo(x, y) }()
	go func() { defer wg.Done(); errs[1] = b.copyTo(y, z) }()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("upload to %s: %v\n%s", hosts[i].name, err, hosts[i].daemon.log.String())
		}
	}
	step("overlapping uploads to A and B")
	want := map[castore.Digest]bool{}
	chunkSet(want, shared)
	for _, data := range own {
		chunkSet(want, data)
	}
	got := bucketChecks(t, s3)
	if len(got) != len(want) {
		t.Fatalf("bucket holds %d chunks, want the %d distinct chunks of the uploaded files", len(got), len(want))
	}
	for d := range want {
		if !got[d] {
			t.Fatalf("chunk %s of the uploads is not in the bucket", d)
		}
	}

	// Uploaded to A, fetched from B, read on C's mount.
	if err := b.copyFrom(t, x); err != nil {
		t.Fatalf("nix copy --from B of a path uploaded to A: %v", err)
	}
	onMount, err := os.ReadFile(c.mounted(filepath.Base(x), "shared"))
	if err != nil || !bytes.Equal(onMount, shared) {
		t.Fatalf("C's mount: %v (equal: %v)\n%s", err, bytes.Equal(onMount, shared), c.daemon.log.String())
	}

	step("fetched from B, read on C")
	bucket := openBucket(t, s3)
	// Killing A mid-upload: the path is visible everywhere whole or not
	// at all, and a restarted A takes the upload again.
	cutOff, visible := 0, 0
	for i := 0; i < 3; i++ {
		w, _, cut := cutUpload(t, a, bucket, rng, shared)
		if cut {
			cutOff++
		}
		bucketChecks(t, s3)
		_, infoErr := b.nix("path-info", "--store", "http://"+scaleHTTP, "--option", "narinfo-cache-negative-ttl", "0", w)
		if infoErr == nil {
			visible++
			if err := b.copyFrom(t, w); err != nil {
				t.Fatalf("kill %d: B lists %s but cannot serve it whole: %v", i, w, err)
			}
		}
		a.start(t)
		if err := a.copyTo(w); err != nil {
			t.Fatalf("upload to the restarted A: %v", err)
		}
		if err := b.copyFrom(t, w); err != nil {
			t.Fatalf("B after A's upload was redone: %v", err)
		}
	}
	step(fmt.Sprintf("%d of 3 uploads cut off by kill -9 (%d visible, whole, on B afterwards)", cutOff, visible))
	if cutOff == 0 {
		t.Fatal("no upload was cut off by the kill: the test killed nothing mid-way")
	}

	// Restarts of each server while B serves and C reads, in loops that
	// run from before the restart until after it: retries, the same
	// bytes, and nobody needs restarting. Reads write nothing to the
	// bucket (a write cut off by the server's crash can lose an object on
	// MinIO): the objects' times stay as they were.
	before := objectTimes(t, bucket)
	for _, svc := range []string{"s3", "pg"} {
		var wg sync.WaitGroup
		var copyErr, readErr error
		copies, reads := 0, 0
		stop := make(chan struct{})
		running := func() bool {
			select {
			case <-stop:
				return false
			default:
				return true
			}
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			for running() && copyErr == nil {
				if copyErr = b.copyFrom(t, x, y, z); copyErr == nil {
					copies++
				}
			}
		}()
		go func() {
			defer wg.Done()
			for running() && readErr == nil {
				for _, p := range []string{x, y, z} {
					got, err := os.ReadFile(c.mounted(filepath.Base(p), "shared"))
					if err == nil && !bytes.Equal(got, shared) {
						err = fmt.Errorf("wrong bytes read from the mount")
					}
					if readErr = err; err != nil {
						return
					}
					reads++
				}
			}
		}()
		time.Sleep(500 * time.Millisecond)
		scaletest.Services(t, "restart", svc)
		time.Sleep(time.Second)
		close(stop)
		wg.Wait()
		if copyErr != nil {
			t.Fatalf("nix copy --from B across a restart of %s: %v\n%s", svc, copyErr, b.daemon.log.String())
		}
		if readErr != nil {
			t.Fatalf("C's mount across a restart of %s: %v", svc, readErr)
		}
		step(fmt.Sprintf("restart of %s: %d copies from B and %d reads on C's mount around it", svc, copies, reads))
		if after := objectTimes(t, bucket); !maps.Equal(after, before) {
			t.Fatalf("reads across the restart of %s changed the bucket: %d objects before, %d after, or their times", svc, len(before), len(after))
		}
		if err := a.copyTo(addTree(t, map[string][]byte{"after-" + svc: randomData(rng, 1<<20)})); err != nil {
			t.Fatalf("A after the restart of %s: %v", svc, err)
		}
		before = objectTimes(t, bucket)
	}
}

// --store-config replaces the store flags, and a broken file is refused
// at start naming the entry (by the daemon and by gc).
func TestDaemonStoreConfigErrors(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "store.toml")
	os.WriteFile(cfg, []byte(`
[blobservices.root]
type = "memory"
[directoryservices.root]
type = "memory"
[pathinfoservices.root]
type = "cache"
near = "root"
far = "upstream"
`), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--store-config", cfg, "--store", "memory://"}, "--store-config and --store both name the store's services"},
		{[]string{"--store-config", cfg}, `pathinfoservices.root: far = "upstream": no pathinfoservices entry of that name`},
		{[]string{"--store-config", "/nonexistent.toml"}, "store config: open /nonexistent.toml"},
	} {
		_, stderr, err := run(t, nil, append([]string{"daemon", "--listen", "unix://" + filepath.Join(t.TempDir(), "s.sock")}, tc.args...)...)
		if err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("tvix daemon %v: %v, stderr %q; want it to say %q", tc.args, err, stderr, tc.want)
		}
		// gc takes the same file, with the same checks, and changes
		// nothing when refused.
		_, stderr, err = run(t, nil, append([]string{"store", "gc", "--dry-run"}, tc.args...)...)
		if err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("tvix store gc %v: %v, stderr %q; want it to say %q", tc.args, err, stderr, tc.want)
		}
	}
}
