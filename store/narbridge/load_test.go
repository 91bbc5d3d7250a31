package narbridge

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tvix-go/tvix/nix/narinfo"
)

// TestLoad runs 32 clients fetching (and verifying) NARs while 8 upload
// new ones, for TVIX_LOAD_SECONDS (default 3; scripts/bench-narbridge runs
// 60), and checks that nothing failed and that goroutines and heap come
// back to where they were.
func TestLoad(t *testing.T) {
	secs := 3
	if s := os.Getenv("TVIX_LOAD_SECONDS"); s != "" {
		secs, _ = strconv.Atoi(s)
	}
	f := newFixture(t, Options{MaxPending: 10000})
	var seed []*upload
	for i := 0; i < 64; i++ {
		u := newUpload(t, fmt.Sprintf("seed-%d", i), "", fmt.Sprintf("seed %d %s", i, bytes.Repeat([]byte{byte(i)}, 20_000+i*997)))
		f.do(t, "PUT", "/"+u.url, u.file)
		if st, b, _ := f.do(t, "PUT", "/"+u.path.HashPart()+".narinfo", []byte(u.narinfo.String())); st != 200 {
			t.Fatalf("seed: %d %s", st, b)
		}
		seed = append(seed, u)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutinesBefore := runtime.NumGoroutine()

	stop := time.Now().Add(time.Duration(secs) * time.Second)
	var fetched, uploaded atomic.Int64
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	get := func(path string) ([]byte, error) {
		resp, err := client.Get(f.srv.URL + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return b, err
	}
	for c := 0; c < 32; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(c)))
			for time.Now().Before(stop) {
				u := seed[rng.Intn(len(seed))]
				body, err := get("/" + u.path.HashPart() + ".narinfo")
				if err != nil {
					errs <- err
					return
				}
				ni, err := narinfo.Parse(bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				n, err := get("/" + ni.URL)
				if err != nil {
					errs <- err
					return
				}
				if sum := sha256.Sum256(n); !bytes.Equal(sum[:], ni.NarHash.Digest) {
					errs <- fmt.Errorf("NAR of %s does not match its NarHash", u.path)
					return
				}
				fetched.Add(1)
			}
		}(c)
	}
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				u := newUpload(t, fmt.Sprintf("up-%d-%d", c, i), []string{"", ".xz", ".zst"}[i%3], fmt.Sprintf("upload %d %d", c, i))
				for _, req := range []struct {
					path string
					body []byte
				}{{"/" + u.url, u.file}, {"/" + u.path.HashPart() + ".narinfo", []byte(u.narinfo.String())}} {
					r, _ := http.NewRequest("PUT", f.srv.URL+req.path, bytes.NewReader(req.body))
					resp, err := client.Do(r)
					if err != nil {
						errs <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						errs <- fmt.Errorf("PUT %s: %s", req.path, resp.Status)
						return
					}
				}
				uploaded.Add(1)
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	client.CloseIdleConnections()
	f.srv.CloseClientConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutinesBefore+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > goroutinesBefore+2 {
		t.Errorf("goroutines grew from %d to %d", goroutinesBefore, g)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// Uploaded contents stay in the memory store; anything beyond them and
	// a fixed slack is a leak.
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d s: %d NARs fetched and verified, %d uploaded; heap %+d KiB; goroutines %d -> %d",
		secs, fetched.Load(), uploaded.Load(), growth/1024, goroutinesBefore, runtime.NumGoroutine())
	if limit := 64<<20 + uploaded.Load()*8<<10; growth > limit {
		t.Errorf("heap grew by %d bytes for %d uploads", growth, uploaded.Load())
	}
	if fetched.Load() == 0 || uploaded.Load() == 0 {
		t.Errorf("no progress: %d fetched, %d uploaded", fetched.Load(), uploaded.Load())
	}
}
