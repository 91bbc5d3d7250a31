package main

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tvix-go/tvix/castore"
	"github.com/tvix-go/tvix/internal/nixtest"
	"github.com/tvix-go/tvix/internal/scaletest"
)

// A collection of the shared store (S3 and PostgreSQL), run by a process
// of its own while daemon A takes uploads that deduplicate against old
// chunks and daemon B serves: it takes what a killed upload left behind,
// and every path recorded before, during and after it is still served
// whole (Nix checks each NAR's hash). The touch refresh and the grace are
// seconds here so that what the test made is old enough to collect; the
// grace still exceeds the time one upload takes, as it must.
func TestScaleOutGC(t *testing.T) {
	nixtest.Require(t)
	const refresh, grace = time.Second, 12 * time.Second
	s3 := scaletest.S3URL(t) + "&touch-refresh=" + refresh.String()
	pg := scaletest.PGURL(t)
	hosts := newScaleHosts(t, s3, pg, "a", "b")
	a, b := hosts[0], hosts[1]
	a.start(t)
	b.start(t)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	shared := randomData(rng, 3<<20)
	var recorded []string
	for i := range 3 {
		p := addTree(t, map[string][]byte{"shared": shared, fmt.Sprintf("own%d", i): randomData(rng, 1<<20)})
		if err := a.copyTo(p); err != nil {
			t.Fatal(err)
		}
		recorded = append(recorded, p)
	}

	// Garbage another upload will count on: a path deleted (its chunks
	// and directory are then named by nothing), whose NAR is uploaded
	// again below, during the collections, without its narinfo; a dedup
	// against its old chunks must keep them until the narinfo names them.
	config := sharedStoreConfig(t, s3, pg)
	again := addTree(t, map[string][]byte{"again": randomData(rng, 2<<20), "small": randomData(rng, 300<<10), "tiny": randomData(rng, 20<<10)})
	if err := a.copyTo(again); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	nixtest.Run(t, "nix", "copy", "--to", "file://"+cache+"?compression=none", again)
	mustRun(t, nil, "store", "delete", "--store-config", config, "--grace", grace.String(), again)
	narinfo := filepath.Join(cache, strings.SplitN(filepath.Base(again), "-", 2)[0]+".narinfo")
	narURL := ""
	if text, err := os.ReadFile(narinfo); err == nil {
		for _, line := range strings.Split(string(text), "\n") {
			if u, ok := strings.CutPrefix(line, "URL: "); ok {
				narURL = u
			}
		}
	}
	if narURL == "" {
		t.Fatalf("no URL in %s", narinfo)
	}

	// Garbage: an upload cut off by kill -9 leaves chunks nothing names.
	bucket := openBucket(t, s3)
	var orphans map[castore.Digest]bool
	for try := 0; orphans == nil; try++ {
		if try == 3 {
			t.Fatal("three uploads finished before the kill: nothing was cut off")
		}
		w, early, cutOff := cutUpload(t, a, bucket, rng, shared)
		a.start(t)
		if _, err := b.nix("path-info", "--store", "http://"+scaleHTTP, "--option", "narinfo-cache-negative-ttl", "0", w); err == nil || !cutOff {
			continue // whole after all: its chunks are live
		}
		orphans = map[castore.Digest]bool{}
		for d := range bucketChecks(t, s3) {
			if early[d] {
				orphans[d] = true
			}
		}
	}
	if len(orphans) == 0 {
		t.Fatal("the killed upload left no chunk of its big file in the bucket")
	}
	time.Sleep(grace + 2*refresh) // all of it old

	// The NAR of the deleted path again, its narinfo only after the first
	// collection; three collections one after another, so that some run
	// while an upload is half done, while A takes uploads that
	// deduplicate against the old shared chunks and B serves.
	put := func(file, at string) {
		t.Helper()
		if out, err := a.Command("curl", "-sSf", "-T", filepath.Join(cache, file), "http://"+scaleHTTP+"/"+at).CombinedOutput(); err != nil {
			t.Fatalf("upload %s to A: %v\n%s", at, err, out)
		}
	}
	put(narURL, narURL)
	var mu sync.Mutex
	ok, errs := scaletest.While(func() {
		for i := range 3 {
			_, report, err := run(t, nil, "store", "gc", "--store-config", config, "--grace", grace.String())
			if err != nil {
				t.Fatalf("collection %d: %v\n%s", i, err, report)
			}
			t.Logf("collection %d: %s", i, strings.TrimSpace(report))
			if i == 0 {
				// The upload of the deleted path's NAR is done once a
				// collection came between its NAR and its narinfo (well
				// within the grace, as an upload must be).
				put(filepath.Base(narinfo), filepath.Base(narinfo))
			}
		}
	}, 2, func(worker, i int) error {
		if worker == 1 {
			mu.Lock()
			some := append([]string(nil), recorded[:3]...)
			mu.Unlock()
			if err := b.copyFrom(t, some...); err != nil {
				return fmt.Errorf("nix copy --from B during the collection: %w", err)
			}
			return nil
		}
		p := addTree(t, map[string][]byte{"shared": shared, fmt.Sprintf("during%d", i): randomData(rand.New(rand.NewSource(int64(i))), 256<<10)})
		if err := a.copyTo(p); err != nil {
			return fmt.Errorf("upload to A during the collection: %w", err)
		}
		mu.Lock()
		recorded = append(recorded, p)
		mu.Unlock()
		return nil
	})
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	t.Logf("%d uploads to A and copies from B during the collections", ok)

	recorded = append(recorded, again)

	// The orphans are gone, everything recorded is whole and served.
	left := bucketChecks(t, s3)
	for d := range orphans {
		if left[d] {
			t.Fatalf("chunk %s of the killed upload survived the collection", d)
		}
	}
	mu.Lock()
	all := append([]string(nil), recorded...)
	mu.Unlock()
	if err := b.copyFrom(t, all...); err != nil {
		t.Fatalf("nix copy --from B of the %d recorded paths after the collection: %v", len(all), err)
	}
	if err := a.copyTo(addTree(t, map[string][]byte{"shared": shared, "after": randomData(rng, 1<<20)})); err != nil {
		t.Fatalf("upload after the collection: %v", err)
	}
}
