package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/castore/castoretest"
	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/testenv"
	"github.com/tvix-go/tvix/nix/nar/nartest"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
)

// putNAR uploads a NAR and the narinfo of a content-addressed path for it
// to a nar-bridge, as nix copy --to does; it returns the path and the
// status and body of the first refused request (0 if none was).
func putNAR(t *testing.T, base, name string, body []byte) (storepath.StorePath, int, string) {
	t.Helper()
	sum := sha256.Sum256(body)
	sp, err := storepath.MakeSource(name, sum[:], nil, false)
	if err != nil {
		t.Fatal(err)
	}
	nh, _ := nixhash.New(nixhash.SHA256, sum[:])
	url := "nar/" + nixbase32.EncodeToString(sum[:]) + ".nar"
	ca := nixhash.CA{Method: nixhash.Recursive, Hash: nh}
	ni := narinfo.NarInfo{StorePath: sp, URL: url, Compression: "none", NarHash: nh, NarSize: uint64(len(body)), CA: &ca}
	for _, put := range []struct {
		path string
		body []byte
	}{{"/" + url, body}, {"/" + sp.HashPart() + ".narinfo", []byte(ni.String())}} {
		req, _ := http.NewRequest("PUT", base+put.path, bytes.NewReader(put.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", put.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return sp, resp.StatusCode, string(b)
		}
	}
	return sp, 0, ""
}

// peakRSS is the most memory the process has held, from /proc.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// A NAR of 100,000 nested directories (16.8 MB) made the daemon take
// 20 GB serving it, and a million levels never finished uploading. With
// the depth limit lifted, the daemon takes it, serves it back, mounts it
// and verifies it in a few hundred MB; with the default limit, it refuses
// it at once with 413 naming --max-depth, and a million levels likewise.
func TestDaemonDeepNesting(t *testing.T) {
	testenv.FUSE(t)
	env := []string{"XDG_DATA_HOME=" + t.TempDir()}
	const depth = 100_000
	var deep bytes.Buffer
	if err := nartest.Nested(&deep, depth, "d"); err != nil {
		t.Fatal(err)
	}
	mp := t.TempDir()
	unmountAtEnd(t, mp)
	const addr = "127.0.0.1:24101"
	daemon := startTvix(t, env, "daemon", "--http-listen", addr, "--http-allow-anonymous-uploads", "--mount", mp, "--max-depth", "0")
	base := "http://" + addr
	waitHTTP(t, daemon, base)
	sp, code, msg := putNAR(t, base, "nested", deep.Bytes())
	if code != 0 {
		t.Fatalf("upload of a NAR %d deep: %d %s", depth, code, msg)
	}
	resp, err := http.Get(base + "/" + sp.HashPart() + ".narinfo")
	if err != nil {
		t.Fatal(err)
	}
	ni, err := narinfo.Parse(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(base + "/" + ni.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, deep.Bytes()) {
		t.Fatalf("NAR served back: %d bytes, %v; want the %d uploaded", len(got), err, deep.Len())
	}
	if err := castoretest.WalkNested(filepath.Join(mp, sp.Basename()), depth, "d"); err != nil {
		t.Fatalf("walking the mounted path to its bottom: %v", err)
	}
	if rss := peakRSS(t, daemon.cmd.Process.Pid); rss > 1<<30 {
		t.Errorf("the daemon's peak RSS was %d MB after taking, serving and mounting it", rss>>20)
	} else {
		t.Logf("daemon peak RSS %d MB", rss>>20)
	}
	if err := daemon.stop(); err != nil {
		t.Fatalf("daemon: %v\n%s", err, daemon.log.String())
	}
	out, stderr, err := run(t, env, "store", "verify", "--check-contents")
	if err != nil || !strings.Contains(out, "checked 1 paths") || !strings.Contains(out, ": 0 problems") {
		t.Fatalf("verify: %v\n%s%s", err, out, stderr)
	}

	fresh := []string{"XDG_DATA_HOME=" + t.TempDir()}
	daemon = startTvix(t, fresh, "nar-bridge", "--listen", addr, "--http-allow-anonymous-uploads")
	waitHTTP(t, daemon, base)
	if _, code, msg := putNAR(t, base, "nested", deep.Bytes()); code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, castore.LimitDepth) {
		t.Errorf("upload %d deep under the default limit: %d %q, want 413 naming %s", depth, code, msg, castore.LimitDepth)
	}
	// A million levels (168 MB) sent as fast as they can be made.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(nartest.Nested(pw, 1_000_000, "d")) }()
	req, _ := http.NewRequest("PUT", base+"/nar/"+strings.Repeat("0", 52)+".nar", pr)
	resp, err = http.DefaultClient.Do(req)
	pr.Close()
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), castore.LimitDepth) {
			t.Errorf("upload 1,000,000 deep: %d %q, want 413 naming %s", resp.StatusCode, b, castore.LimitDepth)
		}
	}
	daemon.stop()
	if out, _, err := run(t, fresh, "store", "ls"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("store after refused uploads: %v %q, want empty", err, out)
	}
}

// waitHTTP waits for a nar-bridge to answer.
func waitHTTP(t *testing.T, p *tvixProc, base string) {
	t.Helper()
	p.waitForFunc(t, base, func() bool {
		resp, err := http.Get(base + "/nix-cache-info")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
}

// Each limit refuses a real Nix client's upload (nix copy --to) with its
// name, and a gRPC client's directory put (tvix castore import against the
// daemon); the store keeps nothing of either.
func TestDaemonUploadLimits(t *testing.T) {
	nixtest.Require(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	tree := func(name string, fill func(dir string)) string {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		fill(dir)
		return dir
	}
	write := func(p string, n int) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte("x"), n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range []struct {
		limit, value string
		src          string
		grpc         bool // a directory tree the gRPC put can be refused for
	}{
		{castore.LimitDepth, "3", tree("deep", func(d string) { write(filepath.Join(d, "a/b/c/f"), 1) }), true},
		{castore.LimitEntries, "4", tree("wide", func(d string) {
			for j := range 5 {
				write(filepath.Join(d, fmt.Sprint(j)), 1)
			}
		}), true},
		{castore.LimitNameLen, "20", tree("long", func(d string) { write(filepath.Join(d, strings.Repeat("n", 21)), 1) }), true},
		{"max-nar-size", "100000", tree("big", func(d string) { write(filepath.Join(d, "f"), 100_001) }), false},
		{"max-narinfo-size", "200", tree("small", func(d string) { write(filepath.Join(d, "f"), 1) }), false},
	} {
		t.Run(tc.limit, func(t *testing.T) {
			p := nixtest.Text(t, "nix-store", "--add", tc.src)
			env := []string{"XDG_DATA_HOME=" + t.TempDir()}
			addr := fmt.Sprintf("127.0.0.1:%d", 24110+i)
			sock := filepath.Join(t.TempDir(), "tvix.sock")
			daemon := startTvix(t, env, "daemon", "--listen", "unix://"+sock, "--http-listen", addr,
				"--http-allow-anonymous-uploads", "--"+tc.limit, tc.value)
			waitHTTP(t, daemon, "http://"+addr)
			_, err := nixtest.RunErr("nix", "copy", "--option", "download-attempts", "1", "--to", "http://"+addr+"?compression=none", p)
			if err == nil {
				t.Fatalf("nix copy over --%s %s succeeded", tc.limit, tc.value)
			}
			// Nix shows the response body, which names the limit.
			if !strings.Contains(err.Error(), "413") || !strings.Contains(err.Error(), tc.limit) {
				t.Errorf("nix copy over --%s: %v; want HTTP 413 naming the limit", tc.limit, err)
			}
			if !strings.Contains(daemon.log.String(), tc.limit) && tc.limit != "max-narinfo-size" {
				t.Errorf("daemon log does not name %s:\n%s", tc.limit, daemon.log.String())
			}
			if tc.grpc {
				remote := []string{"BLOB_SERVICE_ADDR=grpc+unix://" + sock, "DIRECTORY_SERVICE_ADDR=grpc+unix://" + sock, "PATH_INFO_SERVICE_ADDR=grpc+unix://" + sock}
				_, stderr, err := run(t, remote, "castore", "import", tc.src)
				if err == nil || !strings.Contains(stderr, tc.limit) || !strings.Contains(stderr, "InvalidArgument") {
					t.Errorf("castore import over gRPC past --%s: %v %s; want InvalidArgument naming the limit", tc.limit, err, stderr)
				}
			}
			if err := daemon.stop(); err != nil {
				t.Fatalf("daemon: %v\n%s", err, daemon.log.String())
			}
			if out, stderr, err := run(t, env, "store", "verify"); err != nil || !strings.Contains(out, "checked 0 paths") {
				t.Errorf("store after the refused uploads: %v %s%s; want no paths", err, out, stderr)
			}
		})
	}
}
