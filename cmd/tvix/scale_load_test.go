package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tvix-go/tvix/castore/castoregrpc"
	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/scaletest"
	"github.com/tvix-go/tvix/nix/narinfo"
)

// TestScaleLoad is scripts/bench-scale's memory figure: three daemons on
// one S3+PostgreSQL store, 32 readers fetching NARs (each checked against
// its NarHash) and 8 writers putting 1 MiB blobs over gRPC, spread over
// the three, for TVIX_SCALE_LOAD_SECONDS; it reports each daemon's peak
// resident memory. It only runs when asked.
func TestScaleLoad(t *testing.T) {
	secs := scaletest.Asked(t, "TVIX_SCALE_LOAD_SECONDS")
	nixtest.Require(t)
	s3, pg := scaletest.S3URL(t), scaletest.PGURL(t)
	config := sharedStoreConfig(t, s3, pg)
	const basePort = 22960
	var daemons []*tvixProc
	for i := range 3 {
		d := startTvix(t, nil, "daemon", "--store-config", config,
			"--http-listen", fmt.Sprintf("127.0.0.1:%d", basePort+i), "--http-allow-anonymous-uploads",
			"--listen", fmt.Sprintf("tcp://127.0.0.1:%d", basePort+10+i))
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/nix-cache-info", basePort+i)); err == nil {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("daemon %d did not start:\n%s", i, d.log.String())
			}
		}
		daemons = append(daemons, d)
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	var hashes []string
	for i := range 8 {
		dir := filepath.Join(t.TempDir(), "p")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "data"), randomData(rng, 4<<20), 0o644)
		os.WriteFile(filepath.Join(dir, "n"), []byte(fmt.Sprint(i)), 0o644)
		p := nixtest.Text(t, "nix-store", "--add", dir)
		nixtest.Run(t, "nix", "copy", "--to", fmt.Sprintf("http://127.0.0.1:%d?compression=none", basePort), p)
		hashes = append(hashes, strings.SplitN(filepath.Base(p), "-", 2)[0])
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	var reads, readBytes, writes, failures atomic.Int64
	var wg sync.WaitGroup
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 5 {
			t.Errorf(format, args...)
		}
	}
	for r := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := fmt.Sprintf("http://127.0.0.1:%d", basePort+r%3)
			for i := r; ctx.Err() == nil; i++ {
				n, err := fetchNAR(ctx, base, hashes[i%len(hashes)])
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					fail("reader %d: %v", r, err)
					continue
				}
				reads.Add(1)
				readBytes.Add(n)
			}
		}()
	}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", basePort+10+w%3), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				fail("writer %d: %v", w, err)
				return
			}
			defer conn.Close()
			blobs := castoregrpc.NewBlobClient(conn, nil)
			wrng := rand.New(rand.NewSource(int64(w) + time.Now().UnixNano()))
			for ctx.Err() == nil {
				bw, err := blobs.Put(ctx)
				if err == nil {
					_, err = bw.Write(randomData(wrng, 1<<20))
				}
				if err == nil {
					_, err = bw.Close()
				}
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					fail("writer %d: %v", w, err)
					continue
				}
				writes.Add(1)
			}
		}()
	}
	peak := make([]int64, len(daemons))
	tick := time.NewTicker(500 * time.Millisecond)
	for ctx.Err() == nil {
		<-tick.C
		for i, d := range daemons {
			peak[i] = max(peak[i], rssKiB(d.cmd.Process.Pid))
		}
	}
	wg.Wait()
	fmt.Printf("load %d s: %d NAR reads (%.0f MB/s), %d blob writes of 1 MiB (%.1f MB/s), %d failures\n",
		secs, reads.Load(), float64(readBytes.Load())/float64(secs)/1e6, writes.Load(), float64(writes.Load())*(1<<20)/float64(secs)/1e6, failures.Load())
	for i, p := range peak {
		fmt.Printf("load daemon %d: peak RSS %d MiB\n", i, p/1024)
	}
}

// fetchNAR fetches a path's narinfo and NAR from a nar-bridge and checks
// the NAR against the narinfo's NarHash.
func fetchNAR(ctx context.Context, base, hash string) (int64, error) {
	get := func(u string) (io.ReadCloser, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		return resp.Body, nil
	}
	body, err := get(base + "/" + hash + ".narinfo")
	if err != nil {
		return 0, err
	}
	ni, err := narinfo.Parse(body)
	body.Close()
	if err != nil {
		return 0, err
	}
	nar, err := get(base + "/" + ni.URL)
	if err != nil {
		return 0, err
	}
	defer nar.Close()
	h := sha256.New()
	n, err := io.Copy(h, nar)
	if err != nil {
		return n, err
	}
	if !bytes.Equal(h.Sum(nil), ni.NarHash.Digest) {
		return n, fmt.Errorf("NAR of %s does not match its NarHash", hash)
	}
	return n, nil
}

func rssKiB(pid int) int64 {
	out, err := exec.Command("ps", "-o", "rss=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	return n
}
