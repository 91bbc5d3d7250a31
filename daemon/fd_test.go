package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tvix-go/tvix/nix/nar"
	"github.com/tvix-go/tvix/nix/narinfo"
	"github.com/tvix-go/tvix/nix/nixbase32"
	"github.com/tvix-go/tvix/nix/nixhash"
	"github.com/tvix-go/tvix/nix/storepath"
	"github.com/tvix-go/tvix/store/registry"
)

// A daemon on the embedded pack store takes many more large uploads (a
// pack each) than its descriptor limit would allow if every pack stayed
// open, keeps accepting connections, and serves them all back.
func TestDaemonUnderLowFDLimit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	db := "bbolt://" + filepath.Join(dir, "db.bolt")
	d, err := Start(ctx, Config{
		Store: registry.Addrs{Blob: "pack+file://" + filepath.Join(dir, "packs"), Directory: db, PathInfo: db},
		HTTP:  HTTPConfig{Listen: "127.0.0.1:0", AllowAnonymousUploads: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Stop(); d.Wait() }()
	base := "http://" + d.Addrs("http")[0].String()

	fds, _ := os.ReadDir("/proc/self/fd")
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = uint64(len(fds) + 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)

	// Each upload a new connection, as many clients would.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	put := func(path string, body []byte) {
		t.Helper()
		req, _ := http.NewRequest("PUT", base+path, bytes.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", path, resp.StatusCode, b)
		}
	}
	const n = 150 // well past the 64 descriptors left
	var paths []storepath.StorePath
	for i := range n {
		content := make([]byte, 1<<20+64<<10)
		rand.New(rand.NewSource(int64(i))).Read(content)
		var buf bytes.Buffer
		w := nar.NewWriter(&buf)
		if err := w.File(false, uint64(len(content)), bytes.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(buf.Bytes())
		sp, err := storepath.MakeSource(fmt.Sprintf("big-%d", i), sum[:], nil, false)
		if err != nil {
			t.Fatal(err)
		}
		nh, _ := nixhash.New(nixhash.SHA256, sum[:])
		url := "nar/" + nixbase32.EncodeToString(sum[:]) + ".nar"
		ca := nixhash.CA{Method: nixhash.Recursive, Hash: nh}
		ni := narinfo.NarInfo{StorePath: sp, URL: url, Compression: "none", NarHash: nh, NarSize: uint64(buf.Len()), CA: &ca}
		put("/"+url, buf.Bytes())
		put("/"+sp.HashPart()+".narinfo", []byte(ni.String()))
		paths = append(paths, sp)
	}
	for _, sp := range paths {
		resp, err := client.Get(base + "/" + sp.HashPart() + ".narinfo")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ni, err := narinfo.Parse(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("narinfo of %s: %d %v", sp, resp.StatusCode, err)
		}
		resp, err = client.Get(base + "/" + ni.URL)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(h.Sum(nil), ni.NarHash.Digest) {
			t.Fatalf("NAR of %s: %v", sp, err)
		}
	}
}
